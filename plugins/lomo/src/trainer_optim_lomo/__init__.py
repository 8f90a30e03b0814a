"""LOMO and AdaLomo (https://github.com/OpenLMLab/LOMO) as a trainer-optim plugin."""

__version__ = "0.1.0"
