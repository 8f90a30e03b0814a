"""Tiny, deterministic models and data for tests, the conformance kit and the demo (no downloads)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TinyLMDataset", "tiny_llama", "tiny_lm_dataset"]


def tiny_llama(seed: int = 0, vocab_size: int = 64, hidden_size: int = 32, layers: int = 2, **config: Any) -> Any:
    """A LlamaForCausalLM small enough for a CPU test (about 40k parameters by default)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    settings: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    settings.update(config)
    return LlamaForCausalLM(LlamaConfig(**settings))


class TinyLMDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Sequences with learnable structure (arithmetic progressions mod vocab), so the loss can go down."""

    def __init__(self, size: int = 64, seq_len: int = 16, vocab_size: int = 64, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, vocab_size, (size, 1), generator=generator)
        strides = torch.randint(1, 4, (size, 1), generator=generator)
        self.input_ids = (starts + strides * torch.arange(seq_len)) % vocab_size

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.input_ids[index]
        return {"input_ids": ids, "labels": ids.clone()}


def tiny_lm_dataset(size: int = 64, seq_len: int = 16, vocab_size: int = 64, seed: int = 0) -> TinyLMDataset:
    return TinyLMDataset(size=size, seq_len=seq_len, vocab_size=vocab_size, seed=seed)
