"""Genie model presets: ``genie-tiny`` (CPU), ``genie-small`` (one GPU) and ``genie-large`` (the paper's sizes).

Each preset is a short function returning a model config; keyword arguments are merged over it
(the caller wins), so ``genie_tiny(num_frames=8, sampler={"steps": 8})`` is a valid variant. Build
one with ``worldmodels.build("genie-tiny")``; inspect the large one without allocating memory with
``worldmodels show genie-large`` (the meta device).

Layer counting: the paper quotes depths in *attention layers*. An ST block holds two attention
layers (spatial and temporal, 4 D^2 parameters each) and one feed-forward layer of hidden width
4 D (8 D^2), about 16 D^2 parameters. The published parameter counts are reproduced by
``blocks = layers / 2``: the dynamics' "48 layers" are 24 ST blocks (24 x 16 x 5120^2 = 10.1B), the
tokenizer's 12 + 20 layers are 6 + 10 blocks (25M + 168M, about 200M) and the LAM's 20 + 20 layers
are 10 + 10 blocks (about 340M, quoted as ~300M). The ``depth`` settings below count ST blocks.
"""

from __future__ import annotations

from typing import Any

from worldmodels import register
from worldmodels.build_config import deep_merge

_GENIE_BASE: dict[str, Any] = {
    "in_channels": 3,
    "tokenizer": {"name": "st-vivit"},
    "action_model": {"name": "genie-lam"},
    "dynamics": {"name": "maskgit"},
    "sampler": {"name": "maskgit", "steps": 25, "temperature": 2.0, "order": "random"},
}


def _genie_config(model_args: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge a preset's settings over the Genie base config, then the caller's overrides over both."""
    return deep_merge(deep_merge(_GENIE_BASE, model_args), overrides)


@register("model", "genie-tiny")
def genie_tiny(**kwargs: Any) -> dict[str, Any]:
    """CPU Genie: 64x64 frames, 16x16 tokens, 8-frame clips, ~5M parameters; trains in minutes on 2 cores.

    Departures from the paper's architecture, each a setting measured on CoinRun on a 2-core CPU
    (``docs/design.rst``, ``docs/experiments.rst``): a per-frame convolutional FSQ tokenizer
    (``frame-vq``) with 4x4-pixel tokens and an L1 + gradient + hard-patch loss, so the player
    survives tokenisation; MaskGIT dynamics on 2x2 groups of tokens (``token_patch=2``); a narrow
    latent action model on 8x8-pixel patches whose decoder warps the last frame
    (``decoder_output="warp"``); an 8-step sampler at temperature 0.5, most confident tokens first;
    rotary temporal positions, so play appends each frame to the key/value cache (every preset).
    """
    model_args = dict(
        image_size=64,
        num_frames=8,
        tokenizer=dict(
            name="frame-vq", quantizer="fsq", levels=[5, 5, 5], downsample=4, channels=32, res_blocks=1,
            recon_loss="l1+grad", hard_patch_fraction=0.05,
        ),
        action_model=dict(
            patch_size=8, num_actions=8, action_dim=32, decoder_output="warp",
            encoder_dim=64, encoder_depth=2, encoder_heads=2, decoder_dim=64, decoder_depth=2, decoder_heads=2,
        ),
        dynamics=dict(
            dim=160, depth=4, num_heads=5, token_patch=2, copy_prior=True, mask_mode="frame", mask_rate_min=0.0,
            temporal_pos="rope",
        ),
        sampler=dict(steps=8, temperature=0.5, order="confidence"),
    )
    return _genie_config(model_args, kwargs)


@register("model", "genie-small")
def genie_small(**kwargs: Any) -> dict[str, Any]:
    """Single-GPU Genie at CoinRun scale: 64x64 frames, 16x16 tokens, ~180M parameters in total."""
    model_args = dict(
        image_size=64,
        num_frames=16,
        tokenizer=dict(
            patch_size=4, vocab_size=1024, code_dim=32,
            encoder_dim=256, encoder_depth=4, encoder_heads=4, decoder_dim=512, decoder_depth=8, decoder_heads=8,
        ),
        action_model=dict(
            patch_size=8, num_actions=8, action_dim=32,
            encoder_dim=512, encoder_depth=4, encoder_heads=8, decoder_dim=512, decoder_depth=4, decoder_heads=8,
        ),
        dynamics=dict(dim=768, depth=12, num_heads=12, temporal_pos="rope"),
    )
    return _genie_config(model_args, kwargs)


@register("model", "genie-large")
def genie_large(**kwargs: Any) -> dict[str, Any]:
    """The paper's Genie: 160x90 frames x 16, tokenizer ~200M, LAM ~340M, dynamics ~10.1B (24 ST blocks = 48 layers).

    Sizes (paper, section 3 and appendix; depths in ST blocks = attention layers / 2): tokenizer
    patch 4, 1024 codes of width 32, encoder 6 blocks d512 8 heads, decoder 10 blocks d1024 16 heads;
    LAM patch 16, 8 codes of width 32, encoder and decoder 10 blocks d1024 16 heads; dynamics
    24 blocks d5120 36 heads of width 144 (5120 is not a multiple of 36; 144 keeps the attention
    at ~d^2 and is a multiple of 16 for fused kernels). Frames are 90 high and 160 wide, so the
    tokenizer pads the height to 92 (a 23x40 grid) and the LAM to 96 (6x10).
    """
    model_args = dict(
        image_size=[90, 160],
        num_frames=16,
        tokenizer=dict(
            patch_size=4, vocab_size=1024, code_dim=32,
            encoder_dim=512, encoder_depth=6, encoder_heads=8, decoder_dim=1024, decoder_depth=10, decoder_heads=16,
        ),
        action_model=dict(
            patch_size=16, num_actions=8, action_dim=32,
            encoder_dim=1024, encoder_depth=10, encoder_heads=16, decoder_dim=1024, decoder_depth=10, decoder_heads=16,
        ),
        dynamics=dict(dim=5120, depth=24, num_heads=36, head_dim=144, temporal_pos="rope"),
    )
    return _genie_config(model_args, kwargs)
