"""torch-optimi (https://github.com/warner-benjamin/optimi) as a trainer-optim plugin."""
