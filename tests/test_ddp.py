"""Real DDP on the CPU: `torchrun --nproc_per_node=2` (gloo) runs tests/ddp_train.py once for every name.

What a spec's `ddp` flag promises is checked against what happens:

- ddp=True: both ranks train to the last step under DistributedDataParallel on different batches (their
  own local losses differ, and Trainer logs their mean), hold bit-identical weights and optimizer state
  afterwards (the replicas did not drift: an optimizer that keeps rank-dependent state, or steps on
  unsynchronised gradients, does), and resuming from the DDP checkpoint reproduces the uninterrupted run
  on each rank (local losses, weights, optimizer state).

The logged loss is all-reduced over the ranks, so the ranks log the same losses by construction: every
comparison across ranks here is of something each rank computes on its own.
- ddp=False: `TrainingArguments` refuses the name under WORLD_SIZE=2 with an IncompatibleSetupError that
  names what to use instead, before any model or output folder exists.

All names run in one launch (a launch costs seconds). Every ddp=True name trains; TRAINER_OPTIM_DDP_QUICK=1
narrows that to a representative subset (one per plugin family and run-time capability).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from names import trained_names

import trainer_optim

SCRIPT = Path(__file__).with_name("ddp_train.py")
REPRESENTATIVE = [
    "grokadamw",  # loss feedback
    "apollo_adamw",  # target modules, random projection (must be the same on both ranks)
    "galore_adamw",  # target modules, SVD projection
    "galore_adafactor",
    "schedule_free_adamw",  # train()/eval() modes around the checkpoint
    "stable_adamw",
    "optimi_lion",
    "flash_adamw",
    "flash_sgd",
    "muon",  # hybrid: two inner optimizers stepped and checkpointed as one
    "po_lamb",  # a name generated from a signature
]
# Declared ddp=True but refused (or broken) under DDP: name -> reason. xfail(strict=True): a fix turns it red.
KNOWN_BROKEN: dict[str, str] = {}


def _cpu_names(ddp: bool) -> list[str]:
    names = []
    for name in trained_names():
        spec = trainer_optim.get_optimizer_spec(name)
        if spec.ddp is ddp and not spec.requires_cuda:
            names.append(name)
    return names


def _train_names() -> list[str]:
    declared = _cpu_names(ddp=True)
    if os.environ.get("TRAINER_OPTIM_DDP_QUICK"):
        return [name for name in REPRESENTATIVE if name in declared]
    return declared


def _marked(names: list[str], known: dict[str, str]) -> list[Any]:
    return [
        pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=known[name])] if name in known else [])
        for name in names
    ]


TRAIN = _train_names()
REFUSE = _cpu_names(ddp=False)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Launch torchrun once; return the two ranks' results."""
    out = tmp_path_factory.mktemp("ddp")
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.pop("TRAINER_OPTIM_PLUGINS", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--out",
        str(out),
        "--train",
        ",".join(TRAIN),
        "--refuse",
        ",".join(REFUSE),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"torchrun failed ({result.returncode}):\n{result.stderr[-6000:]}"
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def _result(ranks: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    per_rank = [r[kind][name] for r in ranks]
    for rank, result in enumerate(per_rank):
        assert "error" not in result, f"rank {rank}: {result['error']}\n{result.get('traceback', '')}"
    return per_rank


@pytest.mark.parametrize("name", _marked(TRAIN, KNOWN_BROKEN))
def test_ddp_trains_in_step_and_resumes(ranks: list[dict[str, Any]], name: str) -> None:
    rank0, rank1 = _result(ranks, "train", name)
    for result in (rank0, rank1):
        assert result["world_size"] == 2 and result["parallel_mode"] == "ParallelMode.DISTRIBUTED"
        assert result["model_class"] == "DistributedDataParallel"
        assert result["global_step"] == [4, 4]
        assert [step for step, _ in result["losses"]] == [1, 2, 3, 4]
    # Each rank saw its own batches (else identical replicas would prove nothing about gradient syncing),
    # and the logged loss is the mean of what the ranks computed.
    local0, local1 = rank0["local_losses"], rank1["local_losses"]
    assert len(local0) == len(local1) == 4
    assert all(a != b for a, b in zip(local0, local1)), "the ranks trained on the same batches"
    for (step, logged), a, b in zip(rank0["losses"], local0, local1):
        assert logged == pytest.approx((a + b) / 2, rel=1e-6), f"step {step}: logged {logged}, ranks {a} and {b}"
    assert rank0["weights"] == rank1["weights"], "the replicas' weights drifted apart"
    assert rank0["optimizer_state"] == rank1["optimizer_state"], "the replicas' optimizer states drifted apart"
    assert {"optimizer.pt", "scheduler.pt", "rng_state_0.pth", "rng_state_1.pth"} <= set(rank0["checkpoint_files"])
    for rank, result in enumerate((rank0, rank1)):
        assert result["resumed_losses"] == result["losses"][2:], "resuming from the DDP checkpoint changed the run"
        assert result["resumed_local_losses"] == result["local_losses"][2:], f"rank {rank}: resuming changed its run"
        assert result["resumed_weights"] == result["weights"], f"rank {rank}: resuming changed the weights"
        assert result["resumed_optimizer_state"] == result["optimizer_state"], (
            f"rank {rank}: resuming changed the optimizer state"
        )


@pytest.mark.parametrize("name", _marked(REFUSE, {}))
def test_ddp_refuses_unsupported_optimizers_before_training(ranks: list[dict[str, Any]], name: str) -> None:
    for result in _result(ranks, "refuse", name):
        assert result["refused"] == "IncompatibleSetupError", result
        assert "distributed" in result["message"] and "DDP" in result["message"]
        assert not result["created"], "the output folder was created: the refusal came too late"
        if name.endswith("_layerwise"):
            assert f"Use {name.removesuffix('_layerwise')!r} instead" in result["message"]
        else:
            assert "instead" in result["message"] or "use" in result["message"].lower()


def test_layerwise_variants_declare_no_ddp() -> None:
    layerwise = [n for n in trainer_optim.available_optimizers() if n.endswith("_layerwise")]
    assert layerwise, "no layer-wise variant registered"
    assert all(not trainer_optim.get_optimizer_spec(n).ddp for n in layerwise)
    assert set(layerwise) - {n for n in layerwise if trainer_optim.get_optimizer_spec(n).requires_cuda} <= set(REFUSE)
