"""torch-optimi (https://github.com/warner-benjamin/optimi) as a trainer-optim plugin."""

__version__ = "0.1.0"
