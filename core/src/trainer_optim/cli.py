"""The `trainer-optim` command: list, show and check registered optimizers and schedulers.

`list` and `show` read specs only, so they import neither torch nor transformers nor any optimizer
library; `check` runs the same validation as `TrainingArguments`, less the checks that need the rest of
the training setup.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._api import check_optimizer, check_scheduler
from ._args import load_json_object
from ._params import check_target_modules
from .errors import OptimArgsError, TargetModulesError, TrainerOptimError, shorten
from .plugins import Registered, get_registry
from .specs import MISSING, OptimizerSpec, SchedulerSpec, TargetModules, type_name

__all__ = ["main"]


def _rows() -> list[dict[str, Any]]:
    registry = get_registry()
    rows = []
    for kind, table in (("optimizer", registry.optimizers), ("scheduler", registry.schedulers)):
        for name in sorted(table):
            entry = table[name]
            rows.append(
                {
                    "name": name,
                    "kind": kind,
                    "summary": entry.spec.summary,
                    "plugin": entry.plugin,
                    "version": entry.version,
                }
            )
    return rows


def cmd_list(options: argparse.Namespace, console: Console) -> int:
    rows = [r for r in _rows() if options.kind in (None, r["kind"])]
    registry = get_registry()
    if options.json:
        print(json.dumps({"names": rows, "errors": registry.errors}, indent=2))
        return 0
    table = Table(title="trainer-optim: registered names", title_justify="left")
    for column in ("name", "kind", "summary", "plugin", "version"):
        table.add_column(column, overflow="fold", no_wrap=column != "summary", ratio=1 if column == "summary" else None)
    for row in rows:
        table.add_row(*(row[c] for c in ("name", "kind", "summary", "plugin", "version")))
    console.print(table)
    for line in registry.errors:
        console.print(f"[yellow]skipped:[/] {line}", highlight=False)
    for (kind, name), owners in registry.conflicts.items():
        console.print(f"[red]conflict:[/] {kind} {name} is registered by {' and '.join(owners)}", highlight=False)
    return 0


def _lookup(name: str) -> Registered[Any]:
    registry = get_registry()
    if registry.has("optimizer", name):
        return registry.optimizer(name)
    if registry.has("scheduler", name):
        return registry.scheduler(name)
    return registry.optimizer(name)  # raises UnknownOptimizerError with suggestions


def _format_default(value: Any) -> str:
    return "(required)" if value is MISSING else repr(value)


def capabilities(spec: OptimizerSpec | SchedulerSpec) -> list[tuple[str, str]]:
    """(capability, value) pairs shown by `show` and in the generated docs."""
    if isinstance(spec, SchedulerSpec):
        return [
            ("stepped with an eval metric", "yes" if spec.metric_driven else "no"),
            ("warm-up steps", "supported" if spec.supports_warmup else "refused"),
        ]
    target = {
        TargetModules.NONE: "not used",
        TargetModules.OPTIONAL: "optional",
        TargetModules.REQUIRED: "required (optim_target_modules)",
    }[spec.target_modules]
    yes_no = {True: "yes", False: "no"}
    return [
        ("target modules", target),
        ("runs on", "CUDA only" if spec.requires_cuda else "CPU and CUDA"),
        ("layer-wise variant", f"{spec.name}_layerwise" if spec.layerwise else "no"),
        ("DDP", yes_no[spec.ddp]),
        ("bf16", yes_no[spec.bf16]),
        ("fused backward (LOMO-style)", yes_no[spec.fused_backward]),
        ("train()/eval() modes", yes_no[spec.train_eval_modes]),
        ("reads train/eval loss", yes_no[spec.loss_feedback]),
        ("does its own warm-up", yes_no[spec.uses_warmup]),
        ("recommended schedulers", ", ".join(spec.recommended_schedulers) or "any"),
    ]


def cmd_show(options: argparse.Namespace, console: Console) -> int:
    entry = _lookup(options.name)
    spec = entry.spec
    kind = "optimizer" if isinstance(spec, OptimizerSpec) else "scheduler"
    console.print(f"[bold]{spec.name}[/] ({kind}) — {spec.summary}", highlight=False)
    if spec.url:
        console.print(spec.url, highlight=False)
    console.print(f"plugin: {entry.plugin} {entry.version}", highlight=False)
    if entry.plugin not in ("trainer-optim",):
        console.print(f"install: pip install {entry.plugin}", highlight=False)
    args_table = Table(title="optim_args" if kind == "optimizer" else "lr_scheduler_kwargs", title_justify="left")
    for column in ("key", "type", "default", "allowed", "help"):
        args_table.add_column(column, overflow="fold")
    for arg in spec.args:
        allowed = ", ".join(map(str, arg.choices)) if arg.choices else ""
        bounds = " ".join(
            f"{word} {bound}" for word, bound in ((">=", arg.minimum), ("<=", arg.maximum)) if bound is not None
        )
        cells = (arg.name, type_name(arg.type), _format_default(arg.default), allowed or bounds, arg.help)
        args_table.add_row(*(escape(cell) for cell in cells))
    if spec.args:
        console.print(args_table)
    else:
        console.print("takes no arguments")
    caps = Table(title="capabilities", title_justify="left", show_header=False)
    caps.add_column()
    caps.add_column()
    for key, value in capabilities(spec):
        caps.add_row(key, value)
    console.print(caps)
    if spec.notes:
        console.print(spec.notes, highlight=False)
    return 0


def _transformers_builtin_optimizer(name: str) -> bool:
    """Whether stock transformers handles `name` itself (imported only for a name no plugin registers)."""
    try:
        from transformers.training_args import OptimizerNames
    except ImportError:
        return False
    return name in {o.value for o in OptimizerNames}


# `check NAME --target-modules a b rank=2` hands "rank=2" to --target-modules, not to ARGS.
_SWALLOWED_ARGS = re.compile(r"\s*[A-Za-z_]\w*\s*=")


def _target_modules(options: argparse.Namespace) -> Any:
    """--target-modules as TrainingArguments.optim_target_modules: one value is a str, several a list."""
    targets = options.target_modules
    if targets is None:
        return None  # as TrainingArguments: an optimizer that requires target modules is refused
    if options.args is None and any(_SWALLOWED_ARGS.match(t) for t in targets):
        raise OptimArgsError(
            f"--target-modules {' '.join(map(shorten, targets))} holds what looks like optim_args. "
            "Give the optim_args string before --target-modules: "
            f'trainer-optim check {options.name} "key=value,..." --target-modules MODULE [MODULE ...]'
        )
    return targets[0] if len(targets) == 1 else list(targets)


def cmd_check(options: argparse.Namespace, console: Console) -> int:
    """Run the checks `TrainingArguments(optim=NAME, optim_args=ARGS, optim_target_modules=...)` runs.

    The verdict is TrainingArguments' for the same input: a name only transformers knows is accepted
    unchecked (transformers reads its optim_args when Trainer builds it), and an optimizer that needs
    target modules is refused without --target-modules. There is no training setup here, so the checks
    that read one (a value against the learning rate or max_steps, evaluation for a metric-driven
    scheduler, DDP) run when TrainingArguments is built.
    """
    registry = get_registry()
    name = options.name
    raw = options.args or ""
    if (
        not registry.has("optimizer", name)
        and not registry.has("scheduler", name)
        and _transformers_builtin_optimizer(name)
    ):
        _target_modules(options)  # only the argv-order check: TrainingArguments checks nothing more here
        print(json.dumps({"name": name, "handled_by": "transformers", "args": raw}))
        print(
            f"note: {name!r} is a transformers built-in that no installed plugin handles; transformers reads "
            "its optim_args when Trainer builds the optimizer, so they are not checked here.",
            file=sys.stderr,
        )
        return 0
    entry = _lookup(name)
    if isinstance(entry.spec, OptimizerSpec):
        targets = _target_modules(options)
        try:
            parsed = check_optimizer(entry.spec.name, raw, target_modules=targets)
        except TargetModulesError as exc:
            if targets is None and entry.spec.target_modules is TargetModules.REQUIRED:
                raise TargetModulesError(f"{exc} On the command line: --target-modules attn mlp") from None
            raise
        # The target modules the optimizer will use (None where it takes none), as Trainer will pass them.
        used = check_target_modules(entry.spec, targets)
        result: dict[str, Any] = {"name": entry.spec.name, "args": dict(parsed), "given": sorted(parsed.explicit)}
        result["target_modules"] = used
    else:
        if options.target_modules is not None:
            raise TargetModulesError(
                f"--target-modules belongs to an optimizer; {entry.spec.name!r} is a scheduler (lr_scheduler_type). "
                "Drop --target-modules, or check the optimizer with it."
            )
        # As TrainingArguments: transformers reads a '{...}' lr_scheduler_kwargs as JSON before anything else
        # sees it, so malformed JSON is refused even for a scheduler that ignores its kwargs.
        kwargs = load_json_object(raw, f"lr_scheduler_kwargs for {entry.spec.name!r}") if raw.startswith("{") else raw
        parsed = check_scheduler(entry.spec.name, kwargs)
        result = {"name": entry.spec.name, "args": dict(parsed), "given": sorted(parsed.explicit)}
    print(json.dumps(result, default=repr))
    return 0


def cmd_new_plugin(options: argparse.Namespace, console: Console) -> int:
    from ._scaffold import new_plugin

    root = new_plugin(options.name, options.directory)
    console.print(f"created {root}", highlight=False)
    console.print(f"next: pip install -e {root} && trainer-optim show {options.name} && pytest {root / 'tests'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainer-optim",
        description="Inspect the optimizers and LR schedulers that trainer-optim plugins register.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    list_parser = commands.add_parser("list", help="list every registered name")
    list_parser.add_argument("--json", action="store_true", help="machine-readable output")
    kind = list_parser.add_mutually_exclusive_group()
    kind.add_argument("--optimizers", dest="kind", action="store_const", const="optimizer", help="optimizers only")
    kind.add_argument("--schedulers", dest="kind", action="store_const", const="scheduler", help="schedulers only")
    list_parser.set_defaults(run=cmd_list, kind=None)
    show_parser = commands.add_parser("show", help="arguments, capabilities and install line of one name")
    show_parser.add_argument("name")
    show_parser.set_defaults(run=cmd_show)
    check_parser = commands.add_parser(
        "check",
        help="validate an optim_args / lr_scheduler_kwargs string as TrainingArguments would",
        description="Validate NAME's arguments with the checks TrainingArguments runs, without a model "
        "(checks against the rest of the training setup, such as the learning rate, run in TrainingArguments). "
        'Example: trainer-optim check galore_adamw "rank=128,proj=random" --target-modules q_proj v_proj',
    )
    check_parser.add_argument("name")
    check_parser.add_argument("args", nargs="?", default=None, help='e.g. "rank=128,proj=random"')
    check_parser.add_argument(
        "--target-modules",
        nargs="+",
        default=None,
        metavar="MODULE",
        help="optim_target_modules, after ARGS: several names separated by spaces (a list, as "
        "optim_target_modules=['q_proj', 'v_proj']), or one value: a regex matched against whole module "
        "names, or all-linear. Required for optimizers that need target modules.",
    )
    check_parser.set_defaults(run=cmd_check)
    new_parser = commands.add_parser("new-plugin", help="create a working plugin package to start from")
    new_parser.add_argument("name", help="short name, e.g. my_adamw (distribution trainer-optim-my_adamw)")
    new_parser.add_argument("--directory", default=".", help="where to create the folder (default: here)")
    new_parser.set_defaults(run=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    console = Console()
    try:
        return int(options.run(options, console))
    except TrainerOptimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
