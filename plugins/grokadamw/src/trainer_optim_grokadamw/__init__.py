"""GrokAdamW (https://github.com/cognitivecomputations/grokadamw) as a trainer-optim plugin."""
