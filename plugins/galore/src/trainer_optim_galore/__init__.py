"""GaLore (https://github.com/jiaweizzhao/GaLore) as a trainer-optim plugin."""

__version__ = "0.1.0"
