"""pytorch-optimizer (https://github.com/kozistr/pytorch_optimizer) as a trainer-optim plugin."""

__version__ = "0.1.0"
