"""FlashOptim (https://github.com/databricks/flashoptim) as a trainer-optim plugin."""
