"""IRIS model presets: ``iris-tiny`` (CPU).

The preset is a short function returning a model config; keyword arguments are merged over it
(the caller wins), e.g. ``iris_tiny(action_model={"num_actions": 4})`` for Breakout's four actions.
"""

from __future__ import annotations

from typing import Any

from worldmodels import register
from worldmodels.build_config import deep_merge


@register("model", "iris-tiny")
def iris_tiny(**kwargs: Any) -> dict[str, Any]:
    """CPU IRIS: 64x64 frames, 8x8 tokens of a per-frame FSQ tokenizer, 8-frame sequences, the recorded actions.

    The tokenizer is the core's ``frame-vq`` (IRIS's per-frame VQ-VAE; FSQ codes and the sprite
    loss of ``genie-tiny``), the actions the data set's (``recorded``: 15 for Procgen, set
    ``action_model.num_actions`` for other environments), the world model a 4-block GPT over
    64 tokens and one action per frame with reward and episode-end heads, sampled token by token.
    """
    model_args = dict(
        image_size=64,
        in_channels=3,
        num_frames=8,
        tokenizer=dict(
            name="frame-vq", quantizer="fsq", levels=[8, 8, 8], downsample=8, channels=32, res_blocks=1,
            recon_loss="l1+grad", hard_patch_fraction=0.05,
        ),
        action_model=dict(name="recorded", num_actions=15),
        dynamics=dict(name="iris-transformer", dim=128, depth=4, num_heads=4),
        sampler=dict(name="autoregressive", temperature=0.5),
    )
    return deep_merge(model_args, kwargs)
