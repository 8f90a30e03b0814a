"""Edges of target-module selection that the other tests leave open (found by `nox -s mutants`).

When `optim_target_modules` selects no `nn.Linear`, the error is the user's only guide: it names the
setting and its value, what it did match, what the model's Linear layers are called, and how to write it.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from trainer_optim import OptimizerSpec, TargetModules, compat
from trainer_optim._params import build_param_groups, check_target_modules, resolve_target_modules
from trainer_optim.errors import TargetModulesError

ADVICE = "Use names such as ['attn', 'mlp'], a regex, or 'all-linear'."


class Model(nn.Module):
    """Five norms and six Linear layers, so the lists in the message are visibly cut."""

    def __init__(self, linear: int = 6) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(2) for _ in range(5))
        self.projs = nn.ModuleList(nn.Linear(2, 2) for _ in range(linear))


def _message(model: nn.Module, target: object, *args: str) -> str:
    with pytest.raises(TargetModulesError) as info:
        resolve_target_modules(model, target, *args)
    return str(info.value)


def test_matching_only_non_linear_modules_says_so() -> None:
    assert _message(Model(), ["norms."]) == (
        "optim_target_modules=['norms.'] selects no nn.Linear layer of the model. It matched only non-Linear "
        "modules (norms.0, norms.1, norms.2); this optimizer needs nn.Linear layers. Linear layers look like: "
        f"projs.0, projs.1, projs.2, projs.3, projs.4. {ADVICE}"
    )


def test_the_optimizer_is_named_when_given() -> None:
    assert "(norms.0); galore_adamw needs nn.Linear layers." in _message(Model(), r"norms\.0", "galore_adamw")


def test_matching_nothing_lists_the_linear_layers() -> None:
    assert _message(Model(linear=2), ["attn"]) == (
        "optim_target_modules=['attn'] selects no nn.Linear layer of the model. "
        f"Linear layers look like: projs.0, projs.1. {ADVICE}"
    )


def test_no_target_modules_select_nothing() -> None:
    assert resolve_target_modules(Model(), None) == []


def test_building_groups_names_the_optimizer() -> None:
    spec = OptimizerSpec(
        "edge_target",
        lambda request: torch.optim.SGD(request.param_groups(), lr=request.lr),
        "SGD.",
        target_modules=TargetModules.REQUIRED,
    )
    with pytest.raises(TargetModulesError, match=r"\(norms\.0\); edge_target needs nn\.Linear layers\."):
        build_param_groups(Model(), 0.0, spec, r"norms\.0")


def test_a_model_without_linear_layers_says_so() -> None:
    assert _message(Model(linear=0), "attn") == (
        "optim_target_modules='attn' selects no nn.Linear layer of the model. "
        f"Linear layers look like: (the model has none). {ADVICE}"
    )


def _spec(name: str) -> OptimizerSpec:
    return OptimizerSpec(name, lambda request: torch.optim.SGD(request.param_groups(), lr=request.lr), "SGD.")


def test_target_modules_on_a_transformers_name_warn_and_are_dropped() -> None:
    # Stock transformers ignores optim_target_modules for `sgd`, so we only warn (issue 12).
    compat.reset_warnings()
    with pytest.warns(compat.CompatibilityWarning, match="'sgd' does not use optim_target_modules"):
        assert check_target_modules(_spec("sgd"), ["attn"]) is None
    compat.reset_warnings()


def test_without_transformers_no_name_is_a_stock_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Plain PyTorch use, transformers not importable: nothing to be compatible with, so it is an error.
    monkeypatch.setitem(sys.modules, "transformers.training_args", None)
    with pytest.raises(TargetModulesError, match="'sgd' does not use optim_target_modules"):
        check_target_modules(_spec("sgd"), ["attn"])
    assert check_target_modules(_spec("sgd"), None) is None
    assert TargetModules.NONE is _spec("sgd").target_modules
