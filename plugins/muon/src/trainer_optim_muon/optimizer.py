"""`muon` as a hybrid optimizer: torch.optim.Muon for hidden 2-D weights, torch.optim.AdamW for the rest.

Routing: with `optim_target_modules`, Muon takes exactly the weights of the selected `nn.Linear` layers;
without, it takes every 2-D weight except embeddings and the output head (tied or not). AdamW takes the
rest. Both sides get Trainer's decay / no-decay groups; AdamW's settings default to TrainingArguments'.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer_optim import OptimizerRequest
from trainer_optim.hybrid import HybridOptimizer, Route, build_hybrid, hidden_matrices

MUON_TAKES = "the 2-D weights of hidden layers (not embeddings or the output head)"
EMPTY_HINT = (
    "Name the hidden nn.Linear layers in optim_target_modules, or use an AdamW-family optimizer for this model."
)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def build_muon(request: OptimizerRequest) -> HybridOptimizer:
    args = request.args

    def muon(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        return torch.optim.Muon(
            groups,
            lr=request.lr,
            weight_decay=request.weight_decay,
            momentum=args["momentum"],
            nesterov=args["nesterov"],
            ns_coefficients=tuple(args["ns_coefficients"]),
            eps=args["eps"],
            ns_steps=args["ns_steps"],
            adjust_lr_fn=args["adjust_lr_fn"],
        )

    def adamw(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            groups,
            lr=_or(args["adamw_lr"], request.lr),
            betas=(_or(args["adamw_beta1"], request.betas[0]), _or(args["adamw_beta2"], request.betas[1])),
            eps=_or(args["adamw_eps"], request.eps),
        )

    if request.target_modules:  # the user's choice, exactly (the core selected nn.Linear weights only)
        select = lambda name, param, target: target and param.ndim == 2  # noqa: E731
    else:
        select = hidden_matrices(request.model)
    routes = [
        Route("muon", muon, select=select, required=True, takes=MUON_TAKES, hint=EMPTY_HINT),
        Route("adamw", adamw, weight_decay=args["adamw_weight_decay"]),
    ]
    return build_hybrid(request, routes)
