"""Schedule-Free optimizers (https://github.com/facebookresearch/schedule_free) as a trainer-optim plugin."""

__version__ = "0.1.0"
