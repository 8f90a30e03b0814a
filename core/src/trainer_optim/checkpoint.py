"""Optimizer state that `torch.load(weights_only=True)` accepts, for optimizers that keep projector objects.

A helper for plugins (trainer-optim-galore and trainer-optim-apollo use it); it imports torch, so a
plugin imports it from its optimizer module, never from its entry-point module.

GaLore and APOLLO keep a Python object per projected parameter in `optimizer.state[p]["projector"]`.
`Trainer` loads checkpoints with `torch.load(..., weights_only=True)`, which refuses such objects, so a
run cannot resume. `ProjectorStateMixin.state_dict()` writes each projector as a plain dict (its kind plus
its attributes: tensors, numbers, strings) and `load_state_dict()` rebuilds the object. Only the classes
listed in `projector_classes` are ever rebuilt: a checkpoint names a kind, never an importable class.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

__all__ = ["ProjectorStateMixin"]

_PLAIN = (torch.Tensor, int, float, str, bool, type(None))


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, _PLAIN) for v in value)
    return isinstance(value, _PLAIN)


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


class ProjectorStateMixin:
    """Put first in the bases of a subclass of an upstream optimizer; set `projector_classes`."""

    #: kind written to the checkpoint -> projector class (exact type, not subclasses).
    projector_classes: ClassVar[dict[str, type]] = {}

    def state_dict(self) -> dict[str, Any]:
        state_dict: dict[str, Any] = super().state_dict()  # type: ignore[misc]
        # torch's state_dict() shares the per-parameter dicts with the live state: copy before editing.
        state_dict["state"] = {
            key: {**value, "projector": self._pack(value["projector"])}
            if isinstance(value, dict) and "projector" in value
            else value
            for key, value in state_dict["state"].items()
        }
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        packed: dict[Any, dict[str, Any]] = {}
        state: dict[Any, Any] = {}
        for key, value in state_dict["state"].items():
            if isinstance(value, dict) and isinstance(value.get("projector"), dict):
                value = dict(value)
                packed[key] = value.pop("projector")
            state[key] = value
        # torch casts every value of the per-parameter state (and mangles strings), so the packed
        # projectors stay out of the upstream load and are attached afterwards.
        super().load_state_dict({**state_dict, "state": state}, *args, **kwargs)  # type: ignore[misc]
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]  # type: ignore[attr-defined]
        by_id = dict(zip(saved_ids, params))
        for key, data in packed.items():
            param = by_id[key]
            self.state[param]["projector"] = self._unpack(data, param.device)  # type: ignore[attr-defined]

    @classmethod
    def _pack(cls, projector: Any) -> dict[str, Any]:
        kind = next((k for k, c in cls.projector_classes.items() if type(projector) is c), None)
        if kind is None:
            raise TypeError(f"{cls.__name__} cannot checkpoint a projector of type {type(projector).__qualname__}")
        attributes = vars(projector)
        odd = [name for name, value in attributes.items() if not _is_plain(value)]
        if odd:
            raise TypeError(f"{type(projector).__qualname__} holds non-tensor attributes {odd}; cannot checkpoint")
        return {"kind": kind, **attributes}

    @classmethod
    def _unpack(cls, data: dict[str, Any], device: torch.device) -> Any:
        attributes = dict(data)
        kind = attributes.pop("kind", None)
        projector_cls = cls.projector_classes.get(kind)
        if projector_cls is None:
            raise ValueError(
                f"checkpoint holds a projector of kind {kind!r}; {cls.__name__} knows "
                f"{', '.join(cls.projector_classes)}. Was it written by another optimizer?"
            )
        projector = projector_cls(attributes["rank"])
        projector.__dict__.update({k: _to_device(v, device) for k, v in attributes.items()})
        return projector
