"""LOMO and AdaLomo (https://github.com/OpenLMLab/LOMO) as a trainer-optim plugin."""
