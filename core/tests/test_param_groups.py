"""Parameter groups: stock's group count where our split adds nothing; target weights that are not parameters
of their own are refused by name, never silently left unprojected."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from fakes import SGDPlugin, TargetPlugin
from torch import nn
from torch.nn.utils import parametrizations

import trainer_optim
from trainer_optim import TargetModulesError
from trainer_optim._params import build_param_groups
from trainer_optim.compat import SuspiciousValueWarning, reset_warnings
from trainer_optim.testing import tiny_llama


@pytest.fixture(autouse=True)
def fakes(register: Callable[..., str]) -> None:
    register(SGDPlugin(), "trainer-optim-sgd")
    register(TargetPlugin(), "trainer-optim-target")
    reset_warnings()


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.attn = nn.Linear(6, 6)
        self.norm = nn.LayerNorm(6)
        self.mlp = nn.Linear(6, 6)
        self.head = nn.Linear(6, 10, bias=False)


def groups_of(model: nn.Module, weight_decay: float, name: str, targets: object = None) -> list[dict[str, object]]:
    spec = trainer_optim.get_optimizer_spec(name)
    groups, _ = build_param_groups(model, weight_decay, spec, targets)
    return [{"wd": g.weight_decay, "target": g.target, "names": g.names} for g in groups]


def test_low_rank_split_without_weight_decay_has_stocks_two_groups() -> None:
    groups = groups_of(Block(), 0.0, "fake_target", ["attn", "mlp"])
    assert [(g["target"], g["wd"]) for g in groups] == [(False, 0.0), (True, 0.0)]
    # model order inside the merged group, as stock's low-rank path builds it
    assert groups[0]["names"] == ["embed.weight", "attn.bias", "norm.weight", "norm.bias", "mlp.bias", "head.weight"]
    assert groups[1]["names"] == ["attn.weight", "mlp.weight"]
    optimizer = trainer_optim.create_optimizer(Block(), "fake_target", lr=0.1, target_modules=["attn", "mlp"])
    assert len(optimizer.param_groups) == 2


def test_low_rank_split_with_weight_decay_keeps_biases_and_norms_undecayed() -> None:
    groups = groups_of(Block(), 0.1, "fake_target", ["attn", "mlp"])
    assert [(g["target"], g["wd"]) for g in groups] == [(False, 0.1), (False, 0.0), (True, 0.1)]


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_plain_optimizer_keeps_trainers_decay_split(weight_decay: float) -> None:
    # Trainer.create_optimizer always builds decay / no-decay groups, even with weight_decay=0.
    groups = groups_of(Block(), weight_decay, "fake_sgd")
    assert [g["wd"] for g in groups] == [weight_decay, 0.0]


def test_tied_target_weight_is_refused_by_name() -> None:
    model = Block()
    model.head.weight = model.embed.weight = nn.Parameter(torch.randn(10, 6))
    with pytest.raises(TargetModulesError, match=r"head \(its weight is tied to embed.weight\)"):
        groups_of(model, 0.0, "fake_target", ["attn", "head"])


def test_tied_weight_under_all_linear_is_trained_unprojected_with_a_warning() -> None:
    model = Block()
    model.head.weight = model.embed.weight = nn.Parameter(torch.randn(10, 6))
    with pytest.warns(SuspiciousValueWarning, match="head"):
        groups = groups_of(model, 0.0, "fake_target", "all-linear")
    assert groups[1]["names"] == ["attn.weight", "mlp.weight"]
    assert "embed.weight" in groups[0]["names"]


def test_parametrized_target_weight_is_refused_by_name() -> None:
    model = Block()
    parametrizations.weight_norm(model.mlp)
    with pytest.raises(TargetModulesError, match=r"mlp \(its weight is parametrized"):
        groups_of(model, 0.0, "fake_target", ["attn", "mlp"])


def test_frozen_target_layer_is_simply_not_trained() -> None:
    model = Block()
    model.attn.weight.requires_grad_(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = groups_of(model, 0.0, "fake_target", ["attn", "mlp"])
    assert groups[1]["names"] == ["mlp.weight"]
    assert all("attn.weight" not in g["names"] for g in groups)


def test_only_frozen_target_layers_is_an_error() -> None:
    model = Block()
    model.attn.weight.requires_grad_(False)
    with pytest.raises(TargetModulesError, match="only frozen"):
        groups_of(model, 0.0, "fake_target", ["attn"])


def test_tiny_llama_all_linear_targets_every_linear_weight() -> None:
    model = tiny_llama()
    groups = groups_of(model, 0.0, "fake_target", "all-linear")
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert set(groups[1]["names"]) == linear
