"""Muon (torch.optim.Muon for hidden matrices, AdamW for the rest) as a trainer-optim plugin."""

__version__ = "0.1.0"
