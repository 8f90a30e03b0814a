"""Schedule-Free optimizers (https://github.com/facebookresearch/schedule_free) as a trainer-optim plugin."""
