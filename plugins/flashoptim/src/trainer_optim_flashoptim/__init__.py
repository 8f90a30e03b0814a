"""FlashOptim (https://github.com/databricks/flashoptim) as a trainer-optim plugin."""

__version__ = "0.1.0"
