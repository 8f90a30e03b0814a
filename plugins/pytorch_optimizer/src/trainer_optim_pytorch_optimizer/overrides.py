"""What a signature cannot say: the short table `scripts/generate.py` applies on top of the signatures.

Plain data, no imports: the generator reads it at development time, and `plugin.py` reads `REFUSED` to
list what is not registered. Keys are pytorch-optimizer's own lower-case names (`load_optimizer`).
"""

from __future__ import annotations

from typing import Any

#: The naming rule: `po_` + pytorch-optimizer's own name (`pytorch_optimizer.load_optimizer(name)`).
PREFIX = "po_"

_UNLOADABLE = (
    "its state_dict holds Python objects torch.load(weights_only=True) refuses: a Trainer checkpoint would not resume"
)

#: Optimizers of pytorch-optimizer that cannot run under `Trainer`, and why. Never registered.
REFUSED: dict[str, str] = {
    "a2grad": "sets its own step size and keeps no learning rate in its parameter groups: learning_rate would be "
    "ignored and Trainer's schedulers fail",
    "adahessian": "needs loss.backward(create_graph=True) for its Hessian estimate; Trainer's backward builds no graph",
    "sophiah": "needs loss.backward(create_graph=True) for its Hessian estimate; Trainer's backward builds no graph",
    "alig": "step() needs a closure returning the loss; Trainer calls step() without one",
    "bsam": "step() needs a closure that recomputes the loss (two forward-backward passes per step)",
    "lomo": "updates weights inside backward (fused); use trainer-optim-lomo's `lomo`, which Trainer drives",
    "adalomo": "updates weights inside backward (fused); use trainer-optim-lomo's `adalomo`, which Trainer drives",
    "adammini": "builds its own parameter groups from the model's attention layout (num_heads, num_embeds)",
    "distributedmuon": "needs an initialised torch.distributed process group and Muon-flagged parameter groups",
    "demo": "exchanges compressed updates itself over torch.distributed (an initialised process group; einops)",
    "conda": _UNLOADABLE,
    "scalableshampoo": _UNLOADABLE,
    "adashift": "keeps a collections.deque in its state; " + _UNLOADABLE,
    "splus": (
        "swaps in averaged weights with train()/eval(), and its eval() fails before the first step "
        "(KeyError 'ema'), where Trainer may evaluate or save"
    ),
    "spectralsphere": "updates 2-D parameters only; biases and norm weights make it fail",
    "lorarite": "updates LoRA factor pairs (A, B) together; on ordinary weights the shapes do not match",
    "kron": (
        "at its default memory_save_mode, 4.1's Kron builds a tensor of d**4 elements for a d x d weight in its "
        "first step (256 GiB for one 512 x 512 layer): out of memory on any transformer"
    ),
    "magma": "wraps another optimizer (its first argument is the optimizer to mask)",
    "muon": "needs `use_muon` flags in its parameter groups (hidden matrices vs. the rest); use trainer-optim-muon",
    "muonclip": "needs `use_muon` flags and the model's attention layout for QK-clip; use trainer-optim-muon",
    "adamuon": "needs `use_muon` flags in its parameter groups (hidden matrices vs. the rest); use trainer-optim-muon",
    "adago": "needs `use_muon` flags in its parameter groups (hidden matrices vs. the rest); use trainer-optim-muon",
    "normuon": "needs `use_muon` flags in its parameter groups (hidden matrices vs. the rest); use trainer-optim-muon",
}

#: Wrappers around another optimizer (not in pytorch-optimizer's registry either); not registered.
WRAPPERS: dict[str, str] = {
    "Lookahead": "wraps another optimizer; po_ranger and po_ranger21 include it",
    "OrthoGrad": "wraps another optimizer",
    "TRAC": "wraps another optimizer",
    "ScheduleFreeWrapper": "wraps another optimizer; po_schedulefreeadamw / radam / sgd are registered",
    "SAM, GSAM, WSAM, FriendlySAM, LookSAM": "need a closure that recomputes the loss (two forward-backward passes)",
    "PCGrad, RotoGrad": "multi-task gradient surgery over several losses",
    "SafeFP16Optimizer": "fp16 master-weight wrapper; Trainer's mixed precision does this",
}

#: Classes pytorch-optimizer re-exports from torch.optim: transformers already names them.
FROM_TORCH = ("lbfgs", "sgd", "adam", "adamw", "nadam", "rmsprop")

#: Parameters no optimizer exposes: Trainer minimises the loss.
SKIP: dict[str, str] = {"maximize": "Trainer minimises the loss"}

_UNIT = {"minimum": 0.0, "below": 1.0}
#: Bounds by parameter name, for every optimizer that has it (the library checks most of them too, later).
BOUNDS: dict[str, dict[str, Any]] = {
    "betas": {"minimum": 0.0, "maximum": 1.0},
    "momentum": {"minimum": 0.0, "maximum": 1.0},
    # Epsilons divide or take roots: 0 or a denormal gives NaN at the first zero gradient (probed).
    "eps1": {"minimum": 1e-30},
    "eps2": {"minimum": 1e-30},
    "eps_2": {"minimum": 1e-30},
    "max_grad_norm": {"minimum": 0.0},
    "clip_threshold": {"above": 0.0},
    "n_sma_threshold": {"minimum": 0},
    "d0": {"above": 0.0},
    "growth_rate": {"minimum": 1.0},  # a growth factor per step: below 1 the distance estimate shrinks to 0
    "ns_steps": {"minimum": 1},
    "precondition_frequency": {"minimum": 1},
    "update_period": {"minimum": 1},
    "k": {"minimum": 1},
    "warmup_steps": {"minimum": 0},
    "adamw_betas": {"minimum": 0.0, "below": 1.0},
    "rho": _UNIT,
    # Iteration counts and sizes the update loops over or allocates: capped so a typo cannot hang or exhaust
    # memory (found by probing 10**12: DASH's solvers loop, its power-iteration vectors allocate).
    "newton_steps": {"minimum": 1, "maximum": 15},  # DASH's Newton iteration drifts to NaN in float32 past it (20 did)
    "power_iteration_steps": {"minimum": 1, "maximum": 1000},
    "power_iteration_vectors": {"minimum": 1, "maximum": 1024},
}

#: As trainer-optim-schedulefree bounds them: t**r and lr**weight_lr_power must stay finite and non-zero.
_SCHEDULE_FREE_ARGS = {"r": {"minimum": 0.0, "maximum": 10.0}, "weight_lr_power": {"minimum": 0.0, "maximum": 10.0}}

#: Per optimizer: `Arg` overrides by parameter (bounds, a default Trainer needs) and `OptimizerSpec` fields.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "aida": {"args": {"k": {"minimum": 1, "maximum": 100}}},  # projections per update, looped over
    # Bounds from the update's math; each value outside gave NaN weights or a raw error when probed.
    "accsgd": {
        "args": {"kappa": {"minimum": 1.0}, "xi": {"minimum": 1.0}, "constant": {"minimum": 1e-3, "maximum": 1.0}}
    },
    "adai": {"args": {"dampening": {"minimum": 0.0, "maximum": 1.0}}},
    "adalite": {"args": {"tau": {"minimum": 1e-8}}},
    "ademamix": {"args": {"t_alpha_beta3": {"minimum": 1.0}}},
    "asgd": {"args": {"theta": {"above": 0.0}, "dampening": {"minimum": 1e-3}}},
    "fadam": {"args": {"p": {"above": 0.0, "maximum": 1.0}}},
    "msvag": {"args": {"beta": {"minimum": 0.0, "below": 1.0}}},
    "srmm": {"args": {"memory_length": {"minimum": 1}}},
    "sgdp": {"args": {"momentum": {"minimum": 0.0, "below": 1.0}}},
    "sm3": {"args": {"beta": {"minimum": 0.0, "below": 1.0}}},
    "stablespam": {"args": {"gamma1": {"minimum": -1.0, "below": 1.0}, "gamma2": {"minimum": 0.0, "below": 1.0}}},
    "yogi": {"args": {"initial_accumulator": {"minimum": 0.0}}},
    "vsgd": {"args": {"ps": {"minimum": 1e-30}}},
    "adafactor": {
        "args": {
            "decay_rate": {"maximum": 0.0},  # the second moment's decay is 1 - step**decay_rate
            "relative_step": {
                "default": False,
                "help": "Compute a time-dependent step size and ignore learning_rate. Default False here, as "
                "transformers' `adafactor` does, so learning_rate and the scheduler drive it.",
            },
            "scale_parameter": {
                "default": False,
                "help": "Scale the step by the parameter's root mean square. Default False here, as transformers' "
                "`adafactor` does.",
            },
        },
    },
    "ranger21": {
        "args": {
            "beta_softplus": {"above": 0.0},  # softplus(x, beta) divides by beta; negative gave NaN weights
            "num_iterations": {
                "type": int | None,
                "default": None,
                "minimum": 1,
                "help": "Steps of its built-in warm-up / warm-down schedule; None = the run's optimizer steps.",
            },
        },
        "spec": {"uses_warmup": True},
        "steps": "num_iterations",
    },
    "schedulefreeadamw": {
        "args": _SCHEDULE_FREE_ARGS,
        "spec": {"train_eval_modes": True, "uses_warmup": True, "momentum_cycling": False},
    },
    "schedulefreeradam": {"args": _SCHEDULE_FREE_ARGS, "spec": {"train_eval_modes": True, "momentum_cycling": False}},
    "schedulefreesgd": {
        "args": _SCHEDULE_FREE_ARGS,
        "spec": {"train_eval_modes": True, "uses_warmup": True, "momentum_cycling": False},
    },
}

#: Schedulers: pytorch-optimizer's own (its re-exports of torch's are trainer-optim-torch's `step`, ...).
SCHEDULERS = ("rex", "warmup_stable_decay", "cosine_annealing_with_warmup")
