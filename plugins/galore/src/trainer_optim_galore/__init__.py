"""GaLore (https://github.com/jiaweizzhao/GaLore) as a trainer-optim plugin."""
