"""Which distributed engine a run uses, and whether an optimizer may train under it.

DDP hands every process the full weights and averaged gradients: the single-process situation. FSDP and
DeepSpeed ZeRO do not. FSDP2 (`fully_shard`) hands the optimizer DTensor row shards of each weight; FSDP1
with `use_orig_params` hands it views into flat shards; ZeRO hands it one flat fp32 partition per
parameter group. An optimizer that looks at a weight's shape, norm or spectrum (GaLore's SVD, APOLLO's
random projection, Adafactor's row/column factors, StableAdamW's update RMS) or that hooks the weights
themselves (layer-wise engines, LOMO) can then compute a different update without raising anything. So
each `OptimizerSpec` declares the engines it trains correctly under (`ddp`, `fsdp`, `deepspeed_zero`), and
the core refuses the rest before the model is wrapped: when `TrainingArguments` are built (from `fsdp`,
`fsdp_config`, `deepspeed` and accelerate's launcher variables) and again when `Trainer.train()` starts
(from the accelerator's state, which also knows what `accelerate launch` configured).

Cheap to import: no torch, transformers or accelerate here.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment import is_distributed
from .errors import IncompatibleSetupError

if TYPE_CHECKING:
    from .specs import OptimizerSpec

__all__ = [
    "ALL_ZERO_STAGES",
    "Engine",
    "EngineKind",
    "check_engine",
    "engine_capabilities",
    "engine_from_accelerator",
    "engine_from_training_args",
    "engine_verdicts",
    "supports",
]

#: Every DeepSpeed ZeRO stage (0 is DeepSpeed without partitioning): what an elementwise optimizer declares.
ALL_ZERO_STAGES = (0, 1, 2, 3)
_TRUE = ("1", "true", "yes", "on")


class EngineKind(enum.StrEnum):
    DDP = "ddp"
    FSDP = "fsdp"
    DEEPSPEED = "deepspeed"


@dataclass(frozen=True)
class Engine:
    """A distributed engine: DDP, FSDP version 1 or 2, or DeepSpeed ZeRO stage 0-3."""

    kind: EngineKind
    #: FSDP version or ZeRO stage; None for DDP, and for a DeepSpeed config whose stage could not be read.
    level: int | None = None
    #: Where the setting came from, for the message (`fsdp_config`, `deepspeed`, `accelerate launch`).
    source: str = ""
    #: DeepSpeed only: the config has an `optimizer` section, so DeepSpeed builds its own optimizer.
    replaces_optimizer: bool = False

    @property
    def label(self) -> str:
        if self.kind is EngineKind.DDP:
            return "DDP"
        if self.kind is EngineKind.FSDP:
            return f"FSDP{self.level}"
        return f"DeepSpeed ZeRO-{self.level if self.level is not None else '?'}"


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in _TRUE


def _load_json(value: Any) -> Mapping[str, Any] | None:
    """A config given as a dict or as a path to a JSON file (as transformers accepts them); else None."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
        try:
            loaded = json.loads(Path(value).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return loaded if isinstance(loaded, Mapping) else None
    return None


def _fsdp_version(config: Any) -> int:
    """`fsdp_config["version"]` (or `fsdp_version`, the prefixed spelling transformers strips); 2 by default."""
    loaded = _load_json(config) or {}
    value = loaded.get("version", loaded.get("fsdp_version", 2))
    try:
        return int(value)
    except (TypeError, ValueError):
        return 2  # transformers' own default; it rejects a malformed version itself


def _zero_stage(config: Mapping[str, Any] | None) -> int | None:
    if config is None:
        return None
    zero = config.get("zero_optimization", {})
    stage = zero.get("stage", 0) if isinstance(zero, Mapping) else None
    return stage if isinstance(stage, int) and not isinstance(stage, bool) else None


def engine_from_training_args(training_args: Any) -> Engine | None:
    """The engine `TrainingArguments` (before or after transformers processed them) ask for; None for one process.

    Reads only the raw settings, so it also works before transformers' `__post_init__`, which needs
    DeepSpeed installed as soon as `deepspeed=` is given.
    """
    deepspeed = getattr(training_args, "deepspeed", None)
    if deepspeed:
        config = _load_json(deepspeed)
        return Engine(
            EngineKind.DEEPSPEED,
            _zero_stage(config),
            "deepspeed",
            replaces_optimizer=config is not None and "optimizer" in config,
        )
    fsdp = getattr(training_args, "fsdp", None)
    if fsdp:  # True, a legacy string ("full_shard auto_wrap") or a list of options
        return Engine(EngineKind.FSDP, _fsdp_version(getattr(training_args, "fsdp_config", None)), "fsdp_config")
    # `accelerate launch --use_deepspeed / --use_fsdp` configures the engine through the environment.
    if _truthy_env("ACCELERATE_USE_DEEPSPEED"):
        config_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if config_file and config_file != "none":  # the stage is in the file (unreadable: needs every stage)
            config = _load_json(config_file)
            replaces = config is not None and "optimizer" in config
            return Engine(EngineKind.DEEPSPEED, _zero_stage(config), "accelerate launch", replaces_optimizer=replaces)
        stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")  # accelerate's default
        return Engine(EngineKind.DEEPSPEED, int(stage) if stage.isdigit() else None, "accelerate launch")
    if _truthy_env("ACCELERATE_USE_FSDP"):
        version = os.environ.get("FSDP_VERSION", "1")
        return Engine(EngineKind.FSDP, int(version) if version.isdigit() else 1, "accelerate launch")
    if is_distributed():
        return Engine(EngineKind.DDP)
    return None


def engine_from_accelerator(accelerator: Any) -> Engine | None:
    """The engine an `accelerate.Accelerator` is set up for (what `prepare` will wrap the model in)."""
    state = getattr(accelerator, "state", None)
    deepspeed = getattr(state, "deepspeed_plugin", None)
    if deepspeed is not None:
        config = getattr(deepspeed, "deepspeed_config", None)
        stage = getattr(deepspeed, "zero_stage", None)
        return Engine(
            EngineKind.DEEPSPEED,
            stage if isinstance(stage, int) else _zero_stage(config if isinstance(config, Mapping) else None),
            "the accelerator",
            replaces_optimizer=isinstance(config, Mapping) and "optimizer" in config,
        )
    fsdp = getattr(state, "fsdp_plugin", None)
    if fsdp is not None:
        return Engine(EngineKind.FSDP, int(getattr(fsdp, "fsdp_version", 1)), "the accelerator")
    if int(getattr(state, "num_processes", 1) or 1) > 1:
        return Engine(EngineKind.DDP)
    return None


def supports(spec: OptimizerSpec, engine: Engine) -> bool:
    """What `spec` declares for `engine` (a DeepSpeed stage that could not be read needs every stage)."""
    if engine.kind is EngineKind.DDP:
        return spec.ddp
    if engine.kind is EngineKind.FSDP:
        return engine.level in spec.fsdp
    if engine.level is None:
        return set(ALL_ZERO_STAGES) <= set(spec.deepspeed_zero)
    return engine.level in spec.deepspeed_zero


def _supported_labels(spec: OptimizerSpec) -> list[str]:
    labels = ["DDP"] if spec.ddp else []
    labels += [f"FSDP{version}" for version in sorted(spec.fsdp)]
    labels += [f"DeepSpeed ZeRO-{stage}" for stage in sorted(spec.deepspeed_zero)]
    return labels


def check_engine(spec: OptimizerSpec, engine: Engine | None) -> None:
    """`IncompatibleSetupError` naming the engine, the optimizer and an alternative, unless `spec` supports `engine`."""
    if engine is None:
        return
    if engine.kind is EngineKind.DEEPSPEED and engine.replaces_optimizer:
        raise IncompatibleSetupError(
            f"optim={spec.name!r} with a DeepSpeed config that has an 'optimizer' section: DeepSpeed would build "
            f"that optimizer instead and {spec.name!r} would never run. Remove the 'optimizer' section from the "
            "DeepSpeed config (Trainer then hands DeepSpeed the optimizer it builds), or drop optim=."
        )
    if supports(spec, engine):
        return
    if engine.kind is EngineKind.DDP:  # the message test_ddp.py and users of earlier versions know
        alternative = spec.name.removesuffix("_layerwise")
        hint = (
            f"Use {alternative!r} instead."
            if alternative != spec.name
            else "Train on one process, or use an optimizer that supports DDP (`trainer-optim show NAME`)."
        )
        raise IncompatibleSetupError(f"{spec.name!r} does not support distributed (DDP) training. {hint}")
    where = f" (from {engine.source})" if engine.source else ""
    if engine.kind is EngineKind.DEEPSPEED and engine.level is None:
        what = f"DeepSpeed with a config whose ZeRO stage could not be read{where}"
    else:
        what = f"{engine.label}{where}"
    why = spec.distributed_note or (
        "it does not declare support for it (OptimizerSpec.fsdp / deepspeed_zero): the engine hands the "
        "optimizer shards instead of whole weights, and the plugin has not said its update is the same on them."
    )
    supported = _supported_labels(spec)
    if not supported:
        instead = "It trains on one process only: use it there"
    else:
        instead = f"It trains under {', '.join(supported)}: use {'that' if len(supported) == 1 else 'one of those'}"
    layerwise = spec.name.removesuffix("_layerwise")
    if layerwise != spec.name:
        instead += f", or {layerwise!r}, the same optimizer without the layer-wise engine"
    raise IncompatibleSetupError(
        f"optim={spec.name!r} cannot train under {what}: {why} {instead}, or pick an optimizer "
        "that supports this engine (`trainer-optim show NAME`, docs/distributed.md)."
    )


def engine_capabilities(spec: OptimizerSpec) -> list[tuple[str, str]]:
    """The FSDP and DeepSpeed rows of `trainer-optim show` (DDP has its own row)."""
    fsdp = ", ".join(f"FSDP{version}" for version in sorted(spec.fsdp)) or "refused"
    stages = sorted(spec.deepspeed_zero)
    zero = "stages " + ", ".join(map(str, stages)) if stages else "refused"
    rows = [("FSDP", fsdp), ("DeepSpeed ZeRO", zero)]
    return rows + ([("distributed", spec.distributed_note)] if spec.distributed_note else [])


def engine_verdicts(spec: OptimizerSpec) -> list[tuple[str, bool]]:
    """(engine label, supported) for every engine: `trainer-optim show` and docs/distributed.md."""
    return [
        ("DDP", spec.ddp),
        *((f"FSDP{version}", version in spec.fsdp) for version in (1, 2)),
        *((f"DeepSpeed ZeRO-{stage}", stage in spec.deepspeed_zero) for stage in ALL_ZERO_STAGES),
    ]
