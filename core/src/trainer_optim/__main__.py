"""`python -m trainer_optim`: the `trainer-optim` command, for environments whose scripts are not on PATH."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
