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
from trainer_optim._params import (
    build_param_groups,
    check_target_modules,
    decay_parameter_names,
    normalize_target_modules,
    param_groups,
    resolve_target_modules,
)
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


TARGET_SPEC = OptimizerSpec(
    "edge_target",
    lambda request: torch.optim.SGD(request.param_groups(), lr=request.lr),
    "SGD.",
    target_modules=TargetModules.REQUIRED,
)


def test_building_groups_names_the_optimizer() -> None:
    spec = TARGET_SPEC
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


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["attn", 3], "got ['attn', 3]."),
        (["attn", ""], "got ['attn', '']."),
        (3, "got 3."),
        ("  ", "optim_target_modules is an empty string; give module names, a regex or 'all-linear'."),
        ([], "optim_target_modules is an empty list; give module names, a regex or 'all-linear'."),
    ],
)
def test_malformed_target_modules_are_refused(value: object, message: str) -> None:
    with pytest.raises(TargetModulesError) as info:
        normalize_target_modules(value)
    assert str(info.value).endswith(message)


def test_a_root_modules_own_bias_gets_no_decay() -> None:
    # As Trainer.get_decay_parameter_names: names are matched in lower case at every level, the root too.
    assert decay_parameter_names(nn.Linear(2, 2)) == {"weight"}


def test_param_groups_without_a_name_says_this_optimizer() -> None:
    with pytest.raises(TargetModulesError, match=r"; this optimizer needs nn\.Linear layers\."):
        param_groups(Model(), 0.0, ["norms."])


def test_frozen_targets_are_refused_with_the_layers_named() -> None:
    model = Model()
    model.projs.requires_grad_(False)
    with pytest.raises(TargetModulesError) as info:
        build_param_groups(model, 0.0, TARGET_SPEC, ["projs"])
    assert str(info.value) == (
        "optim_target_modules=['projs'] selects only frozen nn.Linear layers (projs.0, projs.1, projs.2, projs.3, "
        "projs.4): nothing for 'edge_target' to train there. Unfreeze them (requires_grad=True) or target other "
        "modules."
    )


class Tied(nn.Module):
    """Seven Linear layers sharing one weight with `emb`, then one layer of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(2, 2)
        self.tied = nn.ModuleList(nn.Linear(2, 2) for _ in range(7))
        for layer in self.tied:
            layer.weight = self.emb.weight
        self.own = nn.Linear(2, 2)


def test_tied_targets_are_refused_and_counted() -> None:
    with pytest.raises(TargetModulesError) as info:
        build_param_groups(Tied(), 0.0, TARGET_SPEC, ["tied"])
    problems = "; ".join(f"tied.{i} (its weight is tied to emb.weight)" for i in range(5))
    assert str(info.value) == (
        "optim_target_modules selects layers whose weight is not a trainable parameter of their own, so they "
        f"cannot be projected: {problems} and 2 more. Leave them out of optim_target_modules (untie / remove the "
        "parametrization to project them)."
    )


def test_all_linear_projects_every_layer_of_its_own_and_warns_about_the_rest() -> None:
    compat.reset_warnings()
    model = Tied()
    with pytest.warns(compat.SuspiciousValueWarning) as record:
        groups, _ = build_param_groups(model, 0.0, TARGET_SPEC, "all-linear")
    (target,) = [g for g in groups if g.target]
    assert [id(p) for p in target.params] == [id(model.own.weight)]
    message = str(record[0].message)
    assert "so they are trained without projection: tied.0 (its weight is tied to emb.weight);" in message
    assert "cannot be projected" not in message
    compat.reset_warnings()


def test_a_weight_that_is_not_a_parameter_is_named() -> None:
    model = Model(linear=2)
    del model.projs[0].weight
    model.projs[0].weight = torch.ones(2, 2)  # a plain tensor: nothing an optimizer could update
    with pytest.raises(TargetModulesError, match=r"projs\.0 \(its weight is not a parameter of the model\)\."):
        build_param_groups(model, 0.0, TARGET_SPEC, ["projs"])


def test_a_parametrized_weight_is_named_but_a_parametrized_bias_is_fine() -> None:
    from torch.nn.utils import parametrize

    class Double(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

    model = Model(linear=2)
    parametrize.register_parametrization(model.projs[1], "bias", Double())
    groups, targets = build_param_groups(model, 0.0, TARGET_SPEC, ["projs"])
    assert targets == ["projs.0", "projs.1"]
    (target,) = [g for g in groups if g.target]
    assert [id(p) for p in target.params] == [id(model.projs[0].weight), id(model.projs[1].weight)]

    parametrize.register_parametrization(model.projs[0], "weight", Double())
    with pytest.raises(TargetModulesError, match=r"projs\.0 \(its weight is parametrized"):
        build_param_groups(model, 0.0, TARGET_SPEC, ["projs"])
