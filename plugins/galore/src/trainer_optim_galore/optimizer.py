"""The GaLore optimizers with checkpoints that load under `weights_only=True`.

Each subclass changes nothing in the update: it only stores the projector objects of the optimizer
state as plain data (see `checkpoint.py`).
"""

from __future__ import annotations

from typing import ClassVar

from galore_torch import GaLoreAdafactor, GaLoreAdamW, GaLoreAdamW8bit
from galore_torch.galore_projector import GaLoreProjector

from trainer_optim.checkpoint import ProjectorStateMixin

__all__ = ["CheckpointableGaLoreAdafactor", "CheckpointableGaLoreAdamW", "CheckpointableGaLoreAdamW8bit"]

_PROJECTORS: dict[str, type] = {"svd": GaLoreProjector}


class CheckpointableGaLoreAdamW(ProjectorStateMixin, GaLoreAdamW):
    projector_classes: ClassVar[dict[str, type]] = _PROJECTORS


class CheckpointableGaLoreAdafactor(ProjectorStateMixin, GaLoreAdafactor):
    projector_classes: ClassVar[dict[str, type]] = _PROJECTORS


class CheckpointableGaLoreAdamW8bit(ProjectorStateMixin, GaLoreAdamW8bit):
    projector_classes: ClassVar[dict[str, type]] = _PROJECTORS
