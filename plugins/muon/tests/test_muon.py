"""muon: which parameters Muon and AdamW get on a tiny Llama, one schedule for both, exact resume, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

import trainer_optim
from trainer_optim import HybridOptimizer
from trainer_optim.testing import tiny_llama, tiny_lm_dataset

# Only this plugin loads: the tests do not depend on what else is installed.
pytestmark = pytest.mark.trainer_optim_plugins("muon")

HIDDEN = [
    f"model.layers.{i}.{name}.weight"
    for i in (0, 1)
    for name in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    )
]
NORMS = [
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.1.input_layernorm.weight",
    "model.layers.1.post_attention_layernorm.weight",
    "model.norm.weight",
]


def routed(model: torch.nn.Module, optimizer: HybridOptimizer) -> dict[str, list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        route: [names[id(p)] for g in inner.param_groups for p in g["params"]]
        for route, inner in optimizer.optimizers.items()
    }


def trainer_for(tmp_path: Path, model: Any = None, **overrides: Any) -> Any:
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        optim="muon",
        learning_rate=0.02,
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    settings.update(overrides)
    return trainer_optim.Trainer(
        model=model if model is not None else tiny_llama(),
        args=trainer_optim.TrainingArguments(**settings),
        train_dataset=tiny_lm_dataset(size=32),
    )


def test_default_routing_on_llama_keeps_embeddings_head_and_1d_parameters_on_adamw(tmp_path: Path) -> None:
    model = tiny_llama()
    optimizer = trainer_for(tmp_path, model, weight_decay=0.1).create_optimizer()
    assert isinstance(optimizer, HybridOptimizer)
    assert isinstance(optimizer.optimizers["muon"], torch.optim.Muon)
    assert isinstance(optimizer.optimizers["adamw"], torch.optim.AdamW)
    assert routed(model, optimizer) == {
        "muon": HIDDEN,
        "adamw": ["model.embed_tokens.weight", "lm_head.weight", *NORMS],
    }
    # Trainer's decay split on both sides: norms never decay.
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.1, 0.0]


def test_a_tied_head_stays_on_adamw(tmp_path: Path) -> None:
    model = tiny_llama(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    optimizer = trainer_for(tmp_path, model).create_optimizer()
    assert routed(model, optimizer) == {"muon": HIDDEN, "adamw": ["model.embed_tokens.weight", *NORMS]}


def test_optim_target_modules_choose_muons_layers(tmp_path: Path) -> None:
    model = tiny_llama()
    optimizer = trainer_for(tmp_path, model, optim_target_modules=["mlp"]).create_optimizer()
    routes = routed(model, optimizer)
    assert routes["muon"] == [name for name in HIDDEN if ".mlp." in name]
    assert set(routes["adamw"]) == {n for n, _ in model.named_parameters()} - set(routes["muon"])


def test_muon_arguments_reach_torch_and_adamw_defaults_to_training_arguments(tmp_path: Path) -> None:
    trainer = trainer_for(
        tmp_path,
        adam_beta1=0.8,
        adam_beta2=0.95,
        adam_epsilon=1e-6,
        weight_decay=0.05,
        optim_args="momentum=0.9,nesterov=false,ns_steps=3,adjust_lr_fn=match_rms_adamw,eps=1e-6",
    )
    optimizer = trainer.create_optimizer()
    muon = optimizer.optimizers["muon"].param_groups[0]
    assert {k: muon[k] for k in ("lr", "momentum", "nesterov", "ns_steps", "adjust_lr_fn", "eps", "weight_decay")} == {
        "lr": 0.02,
        "momentum": 0.9,
        "nesterov": False,
        "ns_steps": 3,
        "adjust_lr_fn": "match_rms_adamw",
        "eps": 1e-6,
        "weight_decay": 0.05,
    }
    assert muon["ns_coefficients"] == (3.4445, -4.775, 2.0315)  # torch's default
    adamw = optimizer.optimizers["adamw"].param_groups
    assert [(g["lr"], g["betas"], g["eps"], g["weight_decay"]) for g in adamw] == [
        (0.02, (0.8, 0.95), 1e-6, 0.05),
        (0.02, (0.8, 0.95), 1e-6, 0.0),
    ]
    # The AdamW side's own settings; weight decay still spares norms and biases, even with weight_decay=0.
    own = trainer_for(
        tmp_path / "own",
        optim_args="adamw_lr=3e-3,adamw_beta1=0.7,adamw_beta2=0.9,adamw_eps=1e-7,adamw_weight_decay=0.2",
    ).create_optimizer()
    assert [(g["lr"], g["betas"], g["eps"], g["weight_decay"]) for g in own.optimizers["adamw"].param_groups] == [
        (3e-3, (0.7, 0.9), 1e-7, 0.2),
        (3e-3, (0.7, 0.9), 1e-7, 0.0),
    ]
    assert own.optimizers["muon"].param_groups[0]["weight_decay"] == 0.0  # weight_decay (0) is Muon's


class RecordLearningRates(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []

    def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        inner = optimizer.optimizer.optimizers
        self.seen.append((inner["muon"].param_groups[0]["lr"], inner["adamw"].param_groups[0]["lr"]))


def test_trains_under_trainer_with_one_schedule_for_both_sides(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, max_steps=12, warmup_steps=2, optim_args="adamw_lr=3e-3")
    record = RecordLearningRates()
    trainer.add_callback(record)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses[-1] < 0.9 * losses[0], losses
    logged = [log["learning_rate"] for log in trainer.state.log_history if "loss" in log]
    # Trainer logs the learning rate a step used, Muon's: the one set after the step before.
    assert [muon for muon, _ in record.seen[:-1]] == pytest.approx(logged[1:])
    # Warm-up then linear decay, on both sides, each from its own learning rate.
    assert record.seen[:2] == [pytest.approx((0.01, 1.5e-3)), pytest.approx((0.02, 3e-3))]
    assert record.seen[-1] == pytest.approx((0.0, 0.0))
    for muon, adamw in record.seen:
        assert adamw == pytest.approx(muon * 3e-3 / 0.02)


def test_a_checkpoint_resumes_exactly(tmp_path: Path) -> None:
    def run(out: Path, seed: int, resume: Path | None = None) -> Any:
        trainer = trainer_for(
            out,
            tiny_llama(seed=seed),
            save_strategy="steps",
            save_steps=3,
            weight_decay=0.1,
            optim_args="adamw_lr=3e-3",
        )
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        return trainer

    full = run(tmp_path / "full", seed=0)
    resumed = run(tmp_path / "resumed", seed=1, resume=tmp_path / "full" / "checkpoint-3")

    def after(trainer: Any) -> list[tuple[int, float, float]]:
        return [
            (g["step"], g["loss"], g["learning_rate"])
            for g in trainer.state.log_history
            if g.get("step", 0) > 3 and "loss" in g
        ]

    assert after(resumed) == after(full) and len(after(full)) == 3
    saved = torch.load(tmp_path / "full" / "checkpoint-3" / "optimizer.pt", weights_only=True)
    assert saved["routes"] == [["muon", 1], ["adamw", 2]]
    assert set(saved["state"][0]) == {"momentum_buffer"} and set(saved["state"][14]) == {
        "step",
        "exp_avg",
        "exp_avg_sq",
    }
    a, b = full.optimizer.optimizer.state_dict(), resumed.optimizer.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for key in a["state"]:
        for name, value in a["state"][key].items():
            assert torch.equal(value, b["state"][key][name]), (key, name)
    for (name, x), y in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(x, y), name


def test_bad_adjust_lr_fn_is_refused_when_the_arguments_are_built(tmp_path: Path) -> None:
    with pytest.raises(
        trainer_optim.OptimArgsError,
        match=r"adjust_lr_fn='moonshot' is not one of the allowed values: original, match_rms_adamw",
    ):
        trainer_optim.TrainingArguments(output_dir=str(tmp_path), optim="muon", optim_args="adjust_lr_fn=moonshot")
    with pytest.raises(trainer_optim.OptimArgsError, match=r"ns_steps='100' must be at most 99"):
        trainer_optim.TrainingArguments(output_dir=str(tmp_path), optim="muon", optim_args="ns_steps=100")


@pytest.mark.parametrize(
    ("optim_args", "problem"),
    [
        (
            "ns_coefficients=(1,1,1)",
            r"diverge \(a singular value reaches 3.17; it must stay within 3.0\) in ns_steps=5",
        ),
        ("ns_coefficients=(-1,0,0)", r"cancel or flip the sign of part of the update \(a singular value ends at -1\)"),
        ("ns_coefficients=(0,0,0),ns_steps=1", r"cancel or flip .* ends at 0\)"),
    ],
)
def test_newton_schulz_coefficients_that_do_not_orthogonalize_are_refused(optim_args: str, problem: str) -> None:
    with pytest.raises(
        trainer_optim.OptimArgsError, match=r"ns_coefficients=\(.*\) make the Newton-Schulz .*" + problem
    ):
        trainer_optim.check_optimizer("muon", optim_args)
    # Convergent sets pass, for any number of steps: torch's default and the classic quintic.
    trainer_optim.check_optimizer("muon", "ns_steps=99")
    trainer_optim.check_optimizer("muon", "ns_coefficients=(1.875,-1.25,0.375),ns_steps=1")


def test_a_model_without_hidden_matrices_is_refused_before_training(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, tiny_llama(layers=0))
    with pytest.raises(trainer_optim.IncompatibleSetupError, match=r"'muon' routes the 2-D weights of hidden layers"):
        trainer.train()
    assert trainer.state.global_step == 0
