"""torch.optim.lr_scheduler schedulers (https://pytorch.org/docs/stable/optim.html) as a trainer-optim plugin."""

__version__ = "0.1.0"
