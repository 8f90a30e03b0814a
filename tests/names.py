"""Which optimizer names the cross-plugin suites (resume, DDP) train.

Every registered name, except that of pytorch-optimizer's ~100 names only a representative set trains
here: each of them passes the conformance kit, exact resume included, in its own plugin session, and
training all of them here again would add minutes to every run.
"""

from __future__ import annotations

import trainer_optim

#: Kinds of state: Adam-like, three betas, LR-free, averaged weights (train/eval), preconditioners, a
#: schedule from the run length, factored moments, sign updates.
PYTORCH_OPTIMIZER_REPRESENTATIVE = frozenset(
    {"po_lamb", "po_adan", "po_prodigy", "po_schedulefreeadamw", "po_soap", "po_ranger21", "po_came", "po_lion"}
)


def trained_names() -> list[str]:
    return [
        name
        for name in trainer_optim.available_optimizers()
        if not name.startswith("po_") or name in PYTORCH_OPTIMIZER_REPRESENTATIVE
    ]
