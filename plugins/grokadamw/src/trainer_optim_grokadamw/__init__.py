"""GrokAdamW (https://github.com/cognitivecomputations/grokadamw) as a trainer-optim plugin."""

__version__ = "0.1.0"
