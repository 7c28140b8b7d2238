"""Reusable model parts: attention, the ST-transformer, patching, positional encodings, MLP, VQ.

Everything public is re-exported here::

    from worldmodels.layers import STTransformer, VectorQuantizer, PatchEmbed
"""

from worldmodels.layers.attention import Attention, KVPair, make_norm, shifted_causal_mask
from worldmodels.layers.fsq import FiniteScalarQuantizer
from worldmodels.layers.mlp import FlatLinear, Mlp
from worldmodels.layers.patch import PatchEmbed, image_hw, patch_grid, patchify, unpatchify
from worldmodels.layers.pos_embed import POS_EMBED_KINDS, FactorizedPosEmbed, sinusoidal_table
from worldmodels.layers.st_transformer import (
    ATTENTION_MODES,
    STBlock,
    STCache,
    STTransformer,
    frame_causal_mask,
    init_transformer_weights,
)
from worldmodels.layers.vector_quantizer import QuantizerOutput, VectorQuantizer, usage_statistics

__all__ = [
    "ATTENTION_MODES",
    "POS_EMBED_KINDS",
    "Attention",
    "FactorizedPosEmbed",
    "FiniteScalarQuantizer",
    "FlatLinear",
    "KVPair",
    "Mlp",
    "PatchEmbed",
    "QuantizerOutput",
    "STBlock",
    "STCache",
    "STTransformer",
    "VectorQuantizer",
    "frame_causal_mask",
    "image_hw",
    "init_transformer_weights",
    "make_norm",
    "patch_grid",
    "patchify",
    "shifted_causal_mask",
    "sinusoidal_table",
    "unpatchify",
    "usage_statistics",
]
