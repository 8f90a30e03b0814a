"""The `trainer-optim` command: list, show and check registered optimizers and schedulers.

`list` and `show` read specs only, so they import neither torch nor transformers nor any optimizer
library; `check` runs the same validation as `TrainingArguments`, less the checks that need the rest of
the training setup. `python -m trainer_optim` runs the same command.

`list` prints a table in a terminal (the summary wraps to the terminal's width) and plain rows when its
output is not a terminal (a pipe, a file) or with `--plain`: one name per line, tab-separated fields
`name, kind, plugin, version, summary`. `--json` gives the same rows as JSON. A plugin that failed to
load is reported once, on stderr, before the output of `list`, `show` and `check`.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib.metadata
import json
import os
import re
import shlex
import sys
import textwrap
import warnings
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ._api import check_optimizer, check_scheduler
from ._args import load_json_object
from ._params import check_target_modules
from .distributed import engine_capabilities
from .errors import OptimArgsError, TargetModulesError, TrainerOptimError, shorten
from .plugins import CORE_DISTRIBUTION, PluginLoadWarning, Registered, Registry, get_registry
from .specs import MISSING, Arg, OptimizerSpec, SchedulerSpec, TargetModules, type_name

__all__ = ["main", "show_json"]

#: From this many columns on, `show` prints the arguments as a table; below, one block per argument.
WIDE = 120
#: The fields of a plain `list` row, in order (tab-separated; the summary last, as it may hold spaces).
PLAIN_FIELDS = ("name", "kind", "plugin", "version", "summary")


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
        print(json.dumps({"names": rows, "errors": registry.errors}, indent=2), file=console.file)
    elif options.plain or not console.is_terminal:
        # Plain rows for pipes and files: `cut -f1`, `grep`, `sort` work, and nothing is cut to a width.
        for row in rows:
            console.file.write("\t".join(" ".join(row[f].split()) for f in PLAIN_FIELDS) + "\n")
    else:
        _print_list_table(rows, console)
    return 0


def _print_list_table(rows: list[dict[str, Any]], console: Console) -> None:
    """One block per plugin: a bold `plugin version` heading, then `name  kind  summary` rows.

    The plugin moves into the heading so the summary keeps most of a narrow terminal and wraps there;
    names and kinds are never cut (every block gives them the same width, so the columns line up).
    """
    if not rows:
        console.print("no names registered: install a trainer-optim plugin (pip install trainer-optim-<name>)")
        return
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["plugin"] != CORE_DISTRIBUTION, r["plugin"])):
        groups.setdefault((row["plugin"], row["version"]), []).append(row)
    name_width = max(len(row["name"]) for row in rows)
    kind_width = max(len(row["kind"]) for row in rows)
    for index, ((plugin, version), group) in enumerate(groups.items()):
        if index:
            console.print()
        console.print(Text(f"{plugin} {version}", style="bold"))
        table = Table(box=box.SIMPLE_HEAD, show_header=index == 0, pad_edge=False, show_edge=False, padding=(0, 1))
        table.add_column("name", no_wrap=True, min_width=name_width, style="cyan")
        table.add_column("kind", no_wrap=True, min_width=kind_width)
        table.add_column("summary", overflow="fold", ratio=1)
        for row in group:
            table.add_row(row["name"], row["kind"], escape(row["summary"]))
        console.print(table)


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
        *engine_capabilities(spec),
        ("bf16", yes_no[spec.bf16]),
        ("fused backward (LOMO-style)", yes_no[spec.fused_backward]),
        ("train()/eval() modes", yes_no[spec.train_eval_modes]),
        ("reads train/eval loss", yes_no[spec.loss_feedback]),
        ("does its own warm-up", yes_no[spec.uses_warmup]),
        ("recommended schedulers", ", ".join(spec.recommended_schedulers) or "any"),
        *(
            [("hybrid routing", "; then ".join(f"{inner}: {what}" for inner, what in spec.routes.items()))]
            if spec.routes
            else []
        ),
    ]


def _bounds(arg: Arg) -> str:
    words = (">=", arg.minimum), (">", arg.above), ("<=", arg.maximum), ("<", arg.below)
    return ", ".join(f"{word} {bound}" for word, bound in words if bound is not None)


def _allowed(arg: Arg) -> str:
    return ", ".join(map(str, arg.choices)) if arg.choices else _bounds(arg)


def _install_line(entry: Registered[Any]) -> str | None:
    """`pip install <plugin>` for a name a plugin provides (none for the core's built-ins)."""
    return None if entry.plugin == CORE_DISTRIBUTION else f"pip install {entry.plugin}"


_OMIT = object()  # a spec field that is no plain data (a function, an object): left out of the JSON


def _plain(value: Any) -> Any:
    """A spec field as JSON data: enums by value, tuples as lists; callables and other objects are left out."""
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | frozenset | set):
        items = [_plain(item) for item in value]
        return _OMIT if any(item is _OMIT for item in items) else items
    return _OMIT


def _arg_json(arg: Arg) -> dict[str, Any]:
    default = None if arg.default is MISSING else _plain(arg.default)
    return {
        "name": arg.name,
        "type": type_name(arg.type),
        "required": arg.required,
        "default": repr(arg.default) if default is _OMIT else default,
        "choices": None if arg.choices is None else [_plain(c) for c in arg.choices],
        "minimum": arg.minimum,
        "maximum": arg.maximum,
        "above": arg.above,
        "below": arg.below,
        "help": arg.help,
    }


def show_json(entry: Registered[Any]) -> dict[str, Any]:
    """What `trainer-optim show NAME --json` prints (a stable shape; documented in the authoring guide).

    Keys: `name`, `kind` ("optimizer" or "scheduler"), `field` (the TrainingArguments field that takes
    the name: "optim" or "lr_scheduler_type"), `args_field` ("optim_args" or "lr_scheduler_kwargs"),
    `summary`, `url`, `plugin` and `version` (the distribution that registers it; "local" for an
    in-process plugin), `install` (the pip line, or null), `layerwise_of` (for a derived layer-wise
    name, the name it runs layer-wise, else null), `args` (one object per key: `name`, `type`,
    `required`, `default`, `choices`, `minimum`, `maximum`, `above`, `below`, `help`), `capabilities`
    (what `show` prints, as an object of label -> value), `spec` (every other field of the spec whose
    value is plain data, by its dataclass field name) and `notes`.
    """
    spec = entry.spec
    kind = "optimizer" if isinstance(spec, OptimizerSpec) else "scheduler"
    skip = {"name", "summary", "url", "args", "notes", "build", "validate"}  # shown above, or functions
    fields = {}
    for f in dataclasses.fields(spec):
        value = _plain(getattr(spec, f.name))
        if f.name not in skip and value is not _OMIT:
            fields[f.name] = value
    return {
        "name": spec.name,
        "kind": kind,
        "field": "optim" if kind == "optimizer" else "lr_scheduler_type",
        "args_field": "optim_args" if kind == "optimizer" else "lr_scheduler_kwargs",
        "summary": spec.summary,
        "url": spec.url or None,
        "plugin": entry.plugin,
        "version": entry.version,
        "install": _install_line(entry),
        "layerwise_of": entry.layerwise_of.name if entry.layerwise_of is not None else None,
        "args": [_arg_json(arg) for arg in spec.args],
        "capabilities": dict(capabilities(spec)),
        "spec": fields,
        "notes": spec.notes or None,
    }


def cmd_show(options: argparse.Namespace, console: Console) -> int:
    entry = _lookup(options.name)
    if options.json:
        print(json.dumps(show_json(entry), indent=2, default=repr), file=console.file)
        return 0
    spec = entry.spec
    kind = "optimizer" if isinstance(spec, OptimizerSpec) else "scheduler"
    console.print(f"[bold]{escape(spec.name)}[/] ({kind}) — {escape(spec.summary)}", highlight=False)
    if spec.url:
        console.print(spec.url, highlight=False)
    console.print(f"plugin: {entry.plugin} {entry.version}", highlight=False)
    install = _install_line(entry)
    if install:
        console.print(f"install: {install}", highlight=False)
    title = "optim_args" if kind == "optimizer" else "lr_scheduler_kwargs"
    if not spec.args:
        console.print("takes no arguments")
    elif console.width >= WIDE:
        args_table = Table(title=title, title_justify="left")
        for column in ("key", "type", "default", "allowed", "help"):
            args_table.add_column(column, overflow="fold", no_wrap=column == "key")
        for arg in spec.args:
            cells = (arg.name, type_name(arg.type), _format_default(arg.default), _allowed(arg), arg.help)
            args_table.add_row(*(escape(cell) for cell in cells))
        console.print(args_table)
    else:  # a narrow terminal: one block per key, its help wrapped below it, so no column is squeezed
        console.print(Text(title, style="bold"))
        for arg in spec.args:
            allowed = f"  ({_allowed(arg)})" if _allowed(arg) else ""
            line = Text.assemble(("  " + arg.name, "bold cyan"), f"  {type_name(arg.type)} = ")
            console.print(line + Text(f"{_format_default(arg.default)}{allowed}"))
            if arg.help:
                console.print(Padding(Text(arg.help), (0, 0, 0, 6)))
    caps = Table(title="capabilities", title_justify="left", show_header=False)
    caps.add_column()
    caps.add_column(overflow="fold")
    for key, value in capabilities(spec):
        caps.add_row(escape(key), escape(value))
    console.print(caps)
    if spec.notes:
        console.print(spec.notes, highlight=False, markup=False)
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
    from ._scaffold import new_plugin, plugin_names

    names = plugin_names(options.name)
    root = new_plugin(options.name, options.directory)
    print(
        f'created {root}: distribution {names.distribution}, import package {names.package}, optim="{names.name}"',
        file=console.file,
    )
    # The test extra brings pytest, so the line works as printed in a fresh environment.
    install, tests = shlex.quote(f"{root}[test]"), shlex.quote(str(root / "tests"))
    print(
        f"next: pip install -e {install} && trainer-optim show {names.name} && pytest {tests}",
        file=console.file,
    )
    return 0


def version_text() -> str:
    """`trainer-optim --version`: the core's version, then each plugin's, and the libraries bug reports need."""
    lines = [f"trainer-optim {_distribution_version(CORE_DISTRIBUTION)}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # the failures are listed below
        try:
            registry = get_registry()
        except TrainerOptimError as exc:  # e.g. a bad TRAINER_OPTIM_PLUGINS: still say what is installed
            return "\n".join([*lines, f"plugins: not loaded ({exc})"])
    found = {(e.plugin, e.version) for t in (registry.optimizers, registry.schedulers) for e in t.values()}
    found = {pair for pair in found if pair[0] != CORE_DISTRIBUTION}
    lines += [f"plugin {plugin} {version}" for plugin, version in sorted(found)]
    lines += [f"plugin {failure.plugin} {failure.version} (skipped: {failure.error})" for failure in registry.failures]
    if not found and not registry.failures:
        lines.append("no plugins installed (pip install trainer-optim-<name>)")
    python = ".".join(map(str, sys.version_info[:3]))
    libraries = ", ".join(f"{name} {_distribution_version(name)}" for name in ("torch", "transformers"))
    return "\n".join([*lines, f"python {python}, {libraries}"])


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class _VersionAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: str | None = None) -> None:
        print(version_text())
        parser.exit()


def _report_skipped(registry: Registry) -> None:
    """Each plugin that failed to load, and each name two plugins claim: one line each on stderr."""
    for failure in registry.failures:
        print(f"warning: trainer-optim skipped a plugin: {failure}", file=sys.stderr)
    for (kind, name), owners in registry.conflicts.items():
        print(
            f"warning: the {kind} name {name!r} is registered by {' and '.join(owners)}; it cannot be used until "
            "one of them is uninstalled.",
            file=sys.stderr,
        )


EPILOG = """examples:
  trainer-optim list                       every name, with its plugin and one line on what it does
  trainer-optim list | grep galore         plain tab-separated rows when the output is not a terminal
  trainer-optim show apollo_adamw          its optim_args, capabilities and install line
  trainer-optim check galore_adamw "rank=128" --target-modules q_proj v_proj
  trainer-optim new-plugin my-opt          a working plugin package to start from
"""


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="trainer-optim",
        description=textwrap.fill(
            "Inspect the optimizers and LR schedulers that trainer-optim plugins register, check optim_args "
            "before training, and start a new plugin. `python -m trainer_optim` runs the same command.",
            width=79,
        ),
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="print the versions of trainer-optim and every plugin"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    list_parser = commands.add_parser(
        "list",
        help="list every registered optimizer and scheduler name",
        description="List every name the installed plugins register: its kind (optimizer: give it as "
        "TrainingArguments(optim=...); scheduler: as lr_scheduler_type=...), one line on what it does, and the "
        "plugin and version it comes from. In a terminal: a table per plugin, wrapped to the terminal's width. "
        "When the output is not a terminal (a pipe, a file) or with --plain: one name per line, the fields "
        f"{', '.join(PLAIN_FIELDS)} separated by tabs, no header.",
    )
    output = list_parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help='JSON: {"names": [{name, kind, summary, plugin, version}], "errors": [...]}'
    )
    output.add_argument("--plain", action="store_true", help="tab-separated rows even in a terminal")
    kind = list_parser.add_mutually_exclusive_group()
    kind.add_argument("--optimizers", dest="kind", action="store_const", const="optimizer", help="optimizers only")
    kind.add_argument("--schedulers", dest="kind", action="store_const", const="scheduler", help="schedulers only")
    list_parser.set_defaults(run=cmd_list, kind=None)
    show_parser = commands.add_parser(
        "show",
        help="arguments, capabilities and install line of one name",
        description="Show what NAME takes (each optim_args / lr_scheduler_kwargs key with its type, default "
        "and allowed values), what it can do (target modules, CUDA, DDP, bf16, ...), and the plugin it comes "
        "from. An unknown name gets suggestions, the install line of the plugin that provides it, or the "
        "error of an installed plugin that failed to load.",
    )
    show_parser.add_argument("name", help="an optimizer (optim) or scheduler (lr_scheduler_type) name")
    show_parser.add_argument(
        "--json",
        action="store_true",
        help="JSON with the keys name, kind, field, args_field, summary, url, plugin, version, install, "
        "layerwise_of, args (each: name, type, required, default, choices, minimum, maximum, above, below, "
        "help), capabilities, spec, notes",
    )
    show_parser.set_defaults(run=cmd_show)
    check_parser = commands.add_parser(
        "check",
        help="validate an optim_args / lr_scheduler_kwargs string as TrainingArguments would",
        description="Validate NAME's arguments with the checks TrainingArguments runs, without a model "
        "(checks against the rest of the training setup, such as the learning rate, run in TrainingArguments). "
        "Prints the typed values as JSON; exits with status 2 and the error on stderr when TrainingArguments "
        'would refuse them. Example: trainer-optim check galore_adamw "rank=128,proj=random" '
        "--target-modules q_proj v_proj",
    )
    check_parser.add_argument("name", help="an optimizer (optim) or scheduler (lr_scheduler_type) name")
    check_parser.add_argument(
        "args",
        nargs="?",
        default=None,
        help='optim_args as "key=value,..." (e.g. "rank=128,proj=random"), or lr_scheduler_kwargs as '
        "key=value or JSON (e.g. '{\"num_cycles\": 0.5}'); default: none",
    )
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
    new_parser = commands.add_parser(
        "new-plugin",
        help="create a working plugin package to start from",
        description="Create a plugin package (pyproject with the entry point, plugin.py / build.py / "
        "optimizer.py, README, conformance tests) that installs, trains and passes the conformance kit as "
        "it is; then replace the example optimizer with yours. NAME may be written as a distribution name: "
        "my-opt gives the folder and distribution trainer-optim-my-opt, the import package "
        "trainer_optim_my_opt and the optimizer name my_opt.",
    )
    new_parser.add_argument(
        "name", help="the plugin's name, e.g. my-opt or my_opt (a trainer-optim- prefix is dropped)"
    )
    new_parser.add_argument(
        "--directory", default=".", help="where to create the trainer-optim-NAME folder (default: here)"
    )
    new_parser.set_defaults(run=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the command; returns the exit status (2 for an error of ours, printed on stderr as `error: ...`)."""
    options = build_parser().parse_args(argv)
    console = console or Console()
    with warnings.catch_warnings():
        # A plugin that failed to load is reported below as one plain line, not as a Python warning too.
        warnings.simplefilter("ignore", PluginLoadWarning)
        try:
            if options.command != "new-plugin":
                _report_skipped(get_registry())
            return int(options.run(options, console))
        except TrainerOptimError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            # `trainer-optim list | head`: the reader left. Point stdout at devnull so the interpreter's
            # final flush does not raise again (the recipe of Python's `signal` docs), and exit quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
