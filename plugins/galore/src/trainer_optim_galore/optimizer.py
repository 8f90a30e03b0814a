"""The GaLore optimizers with checkpoints that load under `weights_only=True`.

Each subclass changes nothing in the update: it only stores the projector objects of the optimizer
state as plain data (see `checkpoint.py`).
"""

from __future__ import annotations

from galore_torch import GaLoreAdafactor, GaLoreAdamW, GaLoreAdamW8bit
from galore_torch.galore_projector import GaLoreProjector

from .checkpoint import ProjectorStateMixin

__all__ = ["CheckpointableGaLoreAdamW", "CheckpointableGaLoreAdafactor", "CheckpointableGaLoreAdamW8bit"]

_PROJECTORS = {"svd": GaLoreProjector}


class CheckpointableGaLoreAdamW(ProjectorStateMixin, GaLoreAdamW):
    projector_classes = _PROJECTORS


class CheckpointableGaLoreAdafactor(ProjectorStateMixin, GaLoreAdafactor):
    projector_classes = _PROJECTORS


class CheckpointableGaLoreAdamW8bit(ProjectorStateMixin, GaLoreAdamW8bit):
    projector_classes = _PROJECTORS
