"""Fixtures of the Genie plug-in tests: tiny seeded components and clips (much smaller than genie-tiny)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import worldmodels

TINY_TOKENIZER: dict[str, Any] = dict(
    image_size=32, num_frames=4, patch_size=4, vocab_size=32, code_dim=8,
    encoder_dim=32, encoder_depth=2, encoder_heads=2, decoder_dim=32, decoder_depth=2, decoder_heads=2,
)  # fmt: skip
TINY_LAM: dict[str, Any] = dict(
    image_size=32, num_frames=4, patch_size=8, num_actions=4, action_dim=8,
    encoder_dim=32, encoder_depth=2, encoder_heads=2, decoder_dim=32, decoder_depth=2, decoder_heads=2,
)  # fmt: skip
TINY_DYNAMICS: dict[str, Any] = dict(
    vocab_size=16, token_grid=[3, 4], max_frames=5, action_dim=8, dim=32, depth=2, num_heads=4
)


def _builder(kind: str, name: str, defaults: dict[str, Any]) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return worldmodels.build(name, kind=kind, **{**defaults, **overrides})

    return make


@pytest.fixture
def make_tokenizer() -> Callable[..., Any]:
    """Build a tiny ``st-vivit`` tokenizer (32x32 frames, 8x8 tokens); keyword arguments override."""
    return _builder("tokenizer", "st-vivit", TINY_TOKENIZER)


@pytest.fixture
def make_lam() -> Callable[..., Any]:
    """Build a tiny ``genie-lam`` (32x32 frames, patch 8, 4 actions); keyword arguments override."""
    return _builder("action_model", "genie-lam", TINY_LAM)


@pytest.fixture
def make_dynamics() -> Callable[..., Any]:
    """Build a tiny ``maskgit`` dynamics (vocabulary 16, 3x4 tokens, 5 frames); keyword arguments override."""
    return _builder("dynamics", "maskgit", TINY_DYNAMICS)


@pytest.fixture
def clips32():
    """Sixteen 4-frame 32x32 sprite clips with true actions."""
    from worldmodels.data.synthetic import moving_sprites

    return moving_sprites(16, num_frames=4, image_size=32, seed=0)


@pytest.fixture
def random_tokens() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``make(batch, frames)``: random tokens ``B T 3 4`` and action embeddings ``B T-1 8`` for TINY_DYNAMICS."""

    def make(batch: int = 2, frames: int = 5, actions: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(7)
        tokens = torch.randint(0, 16, (batch, frames, 3, 4), generator=g)
        emb = torch.randn(batch, frames - 1 if actions is None else actions, 8, generator=g)
        return tokens, emb

    return make
