"""Thin subclasses of lomo_optim's `Lomo` and `AdaLomo`.

Both run LOMO's gradient-norm pass themselves when `clip_grad_norm` is set: upstream makes the caller
run `optimizer.grad_norm(loss)` before every `fused_backward(loss, lr)`, which Trainer never does, so
clipping raised a ValueError. `AdaLomo` also

- allocates its second moments on each parameter's device: upstream calls `.cuda()` in `__init__`,
  which fails on a machine without CUDA (and puts them on the current CUDA device, not the model's);
- keeps those moments in `optimizer.state` and saves its step count, so `state_dict()` carries them and
  a resumed run continues where it stopped (upstream keeps them in name-keyed dicts outside the state:
  a resumed run restarted from zero moments and step 0).
"""

from __future__ import annotations

from typing import Any

import lomo_optim
import torch
from torch.optim import Optimizer

from trainer_optim import IncompatibleSetupError, OptimizerRequest
from trainer_optim.environment import deepspeed_zero3

__all__ = ["AdaLomo", "Lomo", "build_lomo"]

_MOMENTS = ("exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col")


class Lomo(lomo_optim.Lomo):
    """`lomo_optim.Lomo` whose `fused_backward` runs the gradient-norm pass that clipping needs."""

    clip_grad_norm: float | None  # set by upstream __init__, untyped there

    def fused_backward(self, loss: torch.Tensor, lr: float) -> None:
        if self.first_backward and loss.dtype == torch.float16 and self.clip_grad_norm is None:
            # Upstream turns clipping on for fp16 losses (they get a dynamic loss scaler); keep that.
            lomo_optim.lomo.logger.warning(
                "Loss scale is recommended to be used with grad norm to get better performance. Set grad norm to 1.0."
            )
            self.clip_grad_norm = 1.0
        if self.clip_grad_norm is not None and self.clip_grad_norm > 0:
            self.grad_norm(loss)
            if self.loss_scaler is not None and self.loss_scaler.has_overflow_serial:
                return  # the scaled gradients overflowed: upstream skips this step
        super().fused_backward(loss, lr)


class AdaLomo(lomo_optim.AdaLomo):
    """`lomo_optim.AdaLomo` that runs on any device, checkpoints its moments and clips on its own."""

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 1e-3,
        loss_scale: float = 2**10,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        kwargs: dict[str, Any] = dict(
            lr=lr,
            loss_scale=loss_scale,
            eps=eps,
            clip_threshold=clip_threshold,
            decay_rate=decay_rate,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
            weight_decay=weight_decay,
        )
        if deepspeed_zero3():
            # DeepSpeed ZeRO-3 means CUDA: upstream's constructor as it is, plus the rank its update reads.
            super().__init__(model, **kwargs)
            self.dp_rank = torch.distributed.get_rank()
            return
        # Upstream's constructor, with the states allocated where each parameter lives.
        self.model = model
        self.lr = lr
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_value = clip_grad_value
        self.weight_decay = weight_decay
        self.loss_scale = loss_scale
        self.do_weight_decay = weight_decay > 0.0
        self.eps = eps
        self.step_num = 0
        self.decay_rate = decay_rate
        self.clip_threshold = clip_threshold
        if clip_grad_norm is not None and clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm should be positive, got {clip_grad_norm}.")
        self.gather_norm = False
        self.grad_norms: Any = []
        self.clip_coef: Any = None
        self.zero3_enabled = False
        self.grad_func = self.fuse_update()
        self.exp_avg_sq: dict[str, torch.Tensor] = {}
        self.exp_avg_sq_row: dict[str, torch.Tensor] = {}
        self.exp_avg_sq_col: dict[str, torch.Tensor] = {}
        for n, p in model.named_parameters():
            if not p.requires_grad:
                continue  # upstream allocates states for frozen parameters too, but never reads them
            if p.dim() == 1:
                self.exp_avg_sq[n] = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
            else:
                self.exp_avg_sq_row[n] = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
                self.exp_avg_sq_col[n] = torch.zeros(p.shape[1], dtype=torch.float32, device=p.device)
            p.register_hook(self.grad_func)  # type: ignore[no-untyped-call]
        defaults = dict(
            lr=lr,
            eps=eps,
            weight_decay=weight_decay,
            clip_grad_norm=clip_grad_norm,
            clip_grad_value=clip_grad_value,
        )
        Optimizer.__init__(self, model.parameters(), defaults)
        self._link_states()

    def _link_states(self) -> None:
        """Make `self.state[p]` hold the very tensors the update writes in place (by parameter name)."""
        for n, p in self.model.named_parameters():
            for key in _MOMENTS:
                table: dict[str, torch.Tensor] = getattr(self, key)
                if n in table:
                    self.state[p][key] = table[n]

    def fused_backward(self, loss: torch.Tensor, lr: float) -> None:
        if self.clip_grad_norm is not None and self.clip_grad_norm > 0:
            self.grad_norm(loss)
        super().fused_backward(loss, lr)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = super().state_dict()
        for group in state["param_groups"]:
            group["step_num"] = self.step_num
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # torch casts floating-point states to the parameter's dtype (bf16 for a bf16 model); the moments
        # are fp32, so keep the saved tensors and put them back exactly after the load.
        saved = {
            index: {k: v for k, v in values.items() if k in _MOMENTS}
            for index, values in state_dict.get("state", {}).items()
        }
        groups = state_dict.get("param_groups", [])
        step_num = groups[0].get("step_num") if groups else None
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group.pop("step_num", None)
        if step_num is not None:
            self.step_num = int(step_num)
        if self.zero3_enabled:
            return
        indices = [i for g in groups for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        names = {id(p): n for n, p in self.model.named_parameters()}
        for index, param in zip(indices, params):
            for key, value in saved.get(index, {}).items():
                table: dict[str, torch.Tensor] = getattr(self, key)
                name = names.get(id(param))
                if name in table:
                    table[name] = value.to(device=param.device, dtype=torch.float32, copy=True)
        self.state.clear()
        self._link_states()


def build_lomo(name: str, request: OptimizerRequest) -> Lomo | AdaLomo:
    if request.model is None:
        raise IncompatibleSetupError(f"{name!r} needs the model itself: it registers a hook on every parameter.")
    args = dict(request.args)
    if name == "lomo":
        return Lomo(request.model, lr=request.lr, weight_decay=request.weight_decay, **args)
    return AdaLomo(request.model, lr=request.lr, weight_decay=request.weight_decay, **args)
