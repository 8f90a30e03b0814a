"""The transformers API the integration relies on beyond its stable public surface, in one place.

`trainer_optim.integrations.transformers` wraps or calls these; each has changed (or appeared) within
transformers 5.x, and together they set the oldest release we support: `transformers>=5.23` in
core/pyproject.toml (the newest `since` below). Before 5.2 there is no `Trainer._get_learning_rate`;
before 5.3 neither `Trainer._prepare_for_training` (where the optimizer is built) nor
`create_optimizer(model=None)`; before 5.4 no `transformers.optimization.GreedyLR`; before 5.23
`HfArgumentParser` copies field metadata with `.copy()`, which the integration's help-text Mapping lacks.
`nox -s lowest` runs this file (and the core's and the plugins' tests) at the floor; the default sessions
run it at the pinned release. A new transformers release that renames or reshapes one of these fails
here, naming it, rather than deep inside a training run.

When the integration starts to use another private name (or a public one whose shape is new), add it
to `PRIVATE_API` (and, if it raises the floor, change core/pyproject.toml and constraints-lowest.txt).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import pytest
import transformers

from trainer_optim.integrations import transformers as integration


@dataclass(frozen=True)
class Api:
    """A transformers callable (or class) the integration depends on, and the parameters it passes."""

    path: str  # "module:attribute.attribute"
    parameters: tuple[str, ...] | None  # the leading parameters, in order; None for a class
    why: str
    since: str  # the first transformers 5.x release with this shape

    def resolve(self) -> Any:
        module, _, attributes = self.path.partition(":")
        value: Any = importlib.import_module(module)
        for attribute in attributes.split("."):
            value = inspect.getattr_static(value, attribute) if attribute.startswith("_") else getattr(value, attribute)
        return value.__func__ if isinstance(value, staticmethod) else value


PRIVATE_API: tuple[Api, ...] = (
    Api(
        "transformers:Trainer._prepare_for_training",
        ("self", "max_steps", "train_dataloader", "resume_from_checkpoint"),
        "wrapped: records max_steps for optimizers that need the run length; the optimizer is built inside",
        "5.3.0",
    ),
    Api(
        "transformers:Trainer._save_checkpoint",
        ("self", "model", "trial"),
        "wrapped: schedule-free optimizers are switched to eval() while a checkpoint is written",
        "5.0.0",
    ),
    Api(
        "transformers:Trainer._get_learning_rate",
        ("self",),
        "called: LOMO-style fused-backward optimizers need the current learning rate in backward",
        "5.2.0",
    ),
    Api(
        "transformers:Trainer._load_optimizer_and_scheduler",
        ("self", "checkpoint"),
        "wrapped: a schedule-free optimizer resuming a sharded (FSDP2) checkpoint is put in train mode first",
        "5.0.0",
    ),
    Api(
        "transformers:HfArgumentParser._parse_dataclass_field",
        ("parser", "field"),
        "patched by install(): plugin names for --optim / --lr_scheduler_type, several --optim_target_modules. "
        "The help of --optim / --lr_scheduler_type is a Mapping (`_NamesHelp`, names listed when the parser is "
        "built), which this reads as `dict(field.metadata)` from 5.23; before, `field.metadata.copy()` fails "
        "(test_parser_takes_our_arguments)",
        "5.23.0",
    ),
    Api(
        "transformers:Trainer.create_optimizer",
        ("self", "model"),
        "wrapped; the `model` argument is passed on",
        "5.3.0",
    ),
    Api(
        "transformers:Trainer.create_scheduler",
        ("self", "num_training_steps", "optimizer"),
        "wrapped; both arguments are passed on",
        "5.0.0",
    ),
    Api(
        "transformers:TrainingArguments.set_optimizer",
        ("self", "name"),
        "wrapped: plugin names accepted",
        "5.0.0",
    ),
    Api(
        "transformers:TrainingArguments.set_lr_scheduler",
        ("self", "name"),
        "wrapped: plugin names accepted",
        "5.0.0",
    ),
    Api(
        "transformers:TrainingArguments.get_warmup_steps",
        ("self", "num_training_steps"),
        "called: the warm-up a plugin scheduler receives",
        "5.0.0",
    ),
    Api(
        "transformers.optimization:get_scheduler",
        ("name", "optimizer", "num_warmup_steps", "num_training_steps", "scheduler_specific_kwargs"),
        "called: the core's specs of transformers' own schedulers build through it",
        "5.0.0",
    ),
    Api(
        "transformers.optimization:GreedyLR",
        None,
        "metric-driven schedulers: Trainer steps GreedyLR with the metric; the adapter is skipped for it",
        "5.4.0",
    ),
)

# Attributes a Trainer instance has from its __init__ that the integration reads or sets.
TRAINER_ATTRIBUTES = (
    "_created_lr_scheduler",  # set when a plugin scheduler is created, as transformers' create_scheduler does
    "is_in_train",  # reset by the NaN guard when it stops a run
    "optimizer_cls_and_kwargs",  # a user-given optimizer class wins over the plugin
    "callback_handler",  # the NaN guard is added once
)


@pytest.fixture(autouse=True)
def _stock_transformers() -> Any:
    """Check transformers' own methods, not install()'s wrappers (should another test have left them)."""
    installed = bool(integration._originals)
    integration.uninstall()
    yield
    if installed:
        integration.install()


@pytest.mark.parametrize("api", PRIVATE_API, ids=lambda api: api.path)
def test_api_exists_with_the_expected_parameters(api: Api) -> None:
    try:
        value = api.resolve()
    except AttributeError as error:
        pytest.fail(f"transformers {transformers.__version__} has no {api.path} ({api.why}): {error}")
    if api.parameters is None:
        assert inspect.isclass(value), f"{api.path} is no longer a class"
        return
    parameters = tuple(inspect.signature(value).parameters)
    assert parameters[: len(api.parameters)] == api.parameters, (
        f"transformers {transformers.__version__}: {api.path}{parameters} no longer starts with "
        f"{api.parameters} ({api.why})"
    )


def test_the_integration_wraps_exactly_the_listed_trainer_methods() -> None:
    """Every Trainer / TrainingArguments method the integration overrides is either listed here or public
    and stable since 5.0 (`train`, `__post_init__`): a new override must be added to PRIVATE_API."""
    listed = {api.path.rpartition(".")[2] for api in PRIVATE_API}
    overridden = set(integration.TRAINER_OVERRIDES) | set(integration.ARGUMENT_OVERRIDES)
    assert overridden - listed <= {"train", "__post_init__"}


def test_trainer_instance_attributes(tmp_path: Any) -> None:
    from trainer_optim.testing import tiny_trainer, tiny_training_args

    trainer = tiny_trainer(tiny_training_args(tmp_path, stock=True))
    missing = [name for name in TRAINER_ATTRIBUTES if not hasattr(trainer, name)]
    assert not missing, f"transformers {transformers.__version__} Trainer has no {missing}"


def test_parser_takes_our_arguments() -> None:
    """`HfArgumentParser` builds from our `TrainingArguments`, and from stock ones after install()."""
    transformers.HfArgumentParser(integration.TrainingArguments)
    integration.install()
    try:
        transformers.HfArgumentParser(transformers.TrainingArguments)
    finally:
        integration.uninstall()


def test_prepare_for_training_builds_the_optimizer() -> None:
    """The wrapper records max_steps before calling the original, which must be where the optimizer is
    built (else a plugin that needs the run length gets None)."""
    source = inspect.getsource(transformers.Trainer._prepare_for_training)
    assert "create_optimizer" in source, "Trainer._prepare_for_training no longer builds the optimizer"


def test_the_declared_floor_is_the_newest_since() -> None:
    """core/pyproject.toml's transformers floor is the newest `since` above, so the floor moves with the list."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).parents[1] / "core" / "pyproject.toml").read_text())
    requirement = next(
        Requirement(line) for line in pyproject["project"]["dependencies"] if line.startswith("transformers")
    )
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert floors == [max(Version(api.since) for api in PRIVATE_API)]
