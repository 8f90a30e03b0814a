"""`ProjectorStateMixin`: projector objects survive Trainer's `weights_only=True` checkpoint cycle.

GaLore and APOLLO rely on it to resume; here a fake projector on `torch.optim.SGD` stands in for theirs,
so the core suite covers the mixin without either library.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from trainer_optim.checkpoint import ProjectorStateMixin
from trainer_optim.testing import checkpoint_roundtrip


class Projector:
    """Shaped like GaLore's projector: built from the rank, the rest set as attributes."""

    def __init__(self, rank: int) -> None:
        if not rank >= 1:  # as upstream projectors, it needs its rank to be built
            raise ValueError(f"rank must be positive, got {rank}")
        self.rank = rank
        self.ortho_matrix: torch.Tensor | None = None
        self.scale = 0.25
        self.proj_type = "std"
        self.update_proj_gap = 200
        self.shapes: Any = None


class OtherProjector(Projector):
    """A second kind; also a subclass, to check that kinds are matched by exact type."""


class ProjectingSGD(ProjectorStateMixin, torch.optim.SGD):
    projector_classes: ClassVar[dict[str, type]] = {"plain": Projector, "other": OtherProjector}


SHAPES = [(4, 3), (3,), (2, 2)]


def _optimizer(params: list[torch.nn.Parameter]) -> ProjectingSGD:
    return ProjectingSGD([{"params": params[:2], "rank": 2}, {"params": params[2:], "rank": 1}], lr=0.1, momentum=0.9)


def _trained(seed: int = 0) -> tuple[ProjectingSGD, list[torch.nn.Parameter]]:
    """Two parameter groups, momentum state for every parameter, projectors on the matrices only."""
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in SHAPES]
    optimizer = _optimizer(params)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    first = Projector(2)
    first.ortho_matrix = torch.randn(4, 2)
    first.shapes = [torch.zeros(1), torch.ones(2)]
    second = OtherProjector(1)
    second.ortho_matrix = torch.randn(2, 1)
    second.scale = 3.0
    second.shapes = (2, 2)
    optimizer.state[params[0]]["projector"] = first
    optimizer.state[params[2]]["projector"] = second
    return optimizer, params


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_state_dict_survives_weights_only_load_and_rebuilds_each_projector() -> None:
    optimizer, params = _trained()
    saved = checkpoint_roundtrip(optimizer.state_dict())  # a projector object would fail here

    resumed, resumed_params = _trained(seed=1)
    for p in resumed_params:  # a fresh run has no projectors yet
        resumed.state[p].pop("projector", None)
    resumed.load_state_dict(saved)

    for original, p in zip(params, resumed_params):
        before, after = optimizer.state[original], resumed.state[p]
        assert set(before) == set(after)
        assert torch.equal(before["momentum_buffer"], after["momentum_buffer"])
        if "projector" in before:
            # Rebuilt as the same class, on the parameter it belonged to, with every attribute.
            assert type(after["projector"]) is type(before["projector"])
            old, new = vars(before["projector"]), vars(after["projector"])
            assert set(old) == set(new) and all(_same(old[k], new[k]) for k in old)
    assert "projector" not in resumed.state[resumed_params[1]]


def test_state_dict_leaves_the_live_state_alone() -> None:
    optimizer, params = _trained()
    projector = optimizer.state[params[0]]["projector"]
    state_dict = optimizer.state_dict()
    packed = state_dict["state"][0]["projector"]
    assert packed["kind"] == "plain" and packed["rank"] == 2 and packed["scale"] == 0.25
    assert state_dict["state"][2]["projector"]["kind"] == "other"
    assert "projector" not in state_dict["state"][1]
    # The optimizer keeps training with its own objects.
    assert optimizer.state[params[0]]["projector"] is projector
    assert optimizer.state_dict()["state"][0]["projector"]["kind"] == "plain"


def test_packed_projectors_bypass_torchs_state_casting() -> None:
    # torch casts floating-point state to the parameter's dtype; projector tensors keep their own.
    optimizer, params = _trained()
    optimizer.state[params[0]]["projector"].ortho_matrix = torch.randn(4, 2, dtype=torch.float64)
    saved = checkpoint_roundtrip(optimizer.state_dict())
    resumed, resumed_params = _trained(seed=1)
    resumed.load_state_dict(saved)
    rebuilt = resumed.state[resumed_params[0]]["projector"]
    assert rebuilt.ortho_matrix.dtype == torch.float64
    assert rebuilt.proj_type == "std"  # strings come back as strings


def test_projector_tensors_follow_the_parameter_device() -> None:
    optimizer, _ = _trained()
    saved = checkpoint_roundtrip(optimizer.state_dict())
    # The meta device stands in for "another device than the checkpoint's" on a CPU-only machine.
    params = [torch.nn.Parameter(torch.empty(shape, device="meta")) for shape in SHAPES]
    resumed = _optimizer(params)
    resumed.load_state_dict(saved)
    first, second = resumed.state[params[0]]["projector"], resumed.state[params[2]]["projector"]
    assert first.ortho_matrix.device.type == "meta"
    assert isinstance(first.shapes, list) and all(t.device.type == "meta" for t in first.shapes)
    assert second.shapes == (2, 2) and isinstance(second.shapes, tuple)
    assert first.rank == 2 and first.scale == 0.25 and second.scale == 3.0


def test_load_passes_extra_arguments_through_to_torch() -> None:
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class Recording(torch.optim.SGD):
        def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> None:
            seen.append((args, kwargs))
            super().load_state_dict(state_dict)

    class Checkpointable(ProjectorStateMixin, Recording):
        projector_classes: ClassVar[dict[str, type]] = {"plain": Projector}

    param = torch.nn.Parameter(torch.ones(2, 2))
    optimizer = Checkpointable([param], lr=0.1)
    optimizer.load_state_dict(optimizer.state_dict(), "positional", flag=True)
    assert seen == [(("positional",), {"flag": True})]


def test_an_unknown_projector_type_is_refused_by_name() -> None:
    class Unlisted(Projector):
        pass

    optimizer, params = _trained()
    optimizer.state[params[0]]["projector"] = Unlisted(2)
    with pytest.raises(TypeError, match=r"ProjectingSGD cannot checkpoint a projector of type .*Unlisted"):
        optimizer.state_dict()


@pytest.mark.parametrize("odd", [object(), [torch.zeros(1), object()], {"a": 1}])
def test_a_projector_with_non_plain_attributes_is_refused(odd: object) -> None:
    optimizer, params = _trained()
    optimizer.state[params[0]]["projector"].extra = odd
    with pytest.raises(TypeError, match=r"^Projector holds non-tensor attributes \['extra'\]; cannot checkpoint$"):
        optimizer.state_dict()


def test_plain_attribute_values_are_accepted() -> None:
    optimizer, params = _trained()
    projector = optimizer.state[params[0]]["projector"]
    projector.values = [1, 2.5, "x", True, None, torch.ones(1)]
    projector.pair = (torch.zeros(1), 3)
    packed = optimizer.state_dict()["state"][0]["projector"]
    assert packed["values"][:5] == [1, 2.5, "x", True, None] and packed["pair"][1] == 3


def test_a_checkpoint_naming_an_unknown_kind_is_refused() -> None:
    optimizer, _ = _trained()
    saved = optimizer.state_dict()
    saved["state"][0]["projector"]["kind"] = "os.system"
    resumed, _ = _trained(seed=1)
    with pytest.raises(ValueError, match=r"kind 'os.system'; ProjectingSGD knows plain, other\. Was it written"):
        resumed.load_state_dict(saved)


def test_a_checkpoint_without_a_kind_is_refused() -> None:
    optimizer, _ = _trained()
    saved = optimizer.state_dict()
    del saved["state"][0]["projector"]["kind"]
    resumed, _ = _trained(seed=1)
    with pytest.raises(ValueError, match=r"projector of kind None"):
        resumed.load_state_dict(saved)


def test_plain_state_without_projectors_round_trips_unchanged() -> None:
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = ProjectingSGD([param], lr=0.1, momentum=0.9)
    param.grad = torch.ones(3)
    optimizer.step()
    saved = checkpoint_roundtrip(optimizer.state_dict())
    assert set(saved["state"][0]) == {"momentum_buffer"}
    resumed_param = torch.nn.Parameter(torch.ones(3))
    resumed = ProjectingSGD([resumed_param], lr=0.1, momentum=0.9)
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.state[resumed_param]["momentum_buffer"], optimizer.state[param]["momentum_buffer"])
