"""The ST-ViViT video tokenizer of Genie: a VQ-VAE whose encoder and decoder are causal ST-transformers.

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels, ``p`` patch side, ``h w`` token grid,
``N = h * w``, ``D`` transformer width, ``E`` code width, ``V`` codebook size.

Both the encoder and the decoder are causal in time, so the tokens of frame ``t`` depend only on
frames ``<= t`` (paper, section 2.1: each token ``z_t`` holds information of ``x_1..x_t``), and the
reconstruction of frame ``t`` only on tokens ``<= t``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels import Tokenizer, register
from worldmodels.interfaces import LossOutput
from worldmodels.layers import (
    FactorizedPosEmbed,
    FiniteScalarQuantizer,
    FlatLinear,
    PatchEmbed,
    QuantizerOutput,
    STTransformer,
    VectorQuantizer,
    image_hw,
    init_transformer_weights,
    patch_grid,
    unpatchify,
)
from worldmodels_genie._checks import check_frames


@register("tokenizer", "st-vivit")
class STViViTTokenizer(Tokenizer):
    """Genie's ST-ViViT VQ-VAE tokenizer (causal ST-transformer encoder and decoder).

    The defaults are CPU-sized; the paper's tokenizer (patch 4, 1024 codes of width 32, encoder
    12 attention layers = 6 ST blocks of width 512 with 8 heads, decoder 20 attention layers =
    10 ST blocks of width 1024 with 16 heads) is the ``genie-large`` preset's.

    Shapes: ``encode``: ``B T C H W -> B T h w``; ``decode``: ``B T h w -> B T C H W`` in ``[0, 1]``.

    Args:
        image_size: frame size ``H`` or ``[H, W]``; sides that are not multiples of
            ``patch_size`` are padded (the grid rounds up).
        in_channels: ``C``.
        num_frames: the longest clip ``T`` it encodes (size of the temporal position table).
        patch_size: ``p``.
        vocab_size: codebook size ``V``.
        code_dim: code width ``E``.
        encoder_dim: encoder width.
        encoder_depth: encoder ST blocks (each has a spatial and a temporal attention layer).
        encoder_heads: encoder attention heads.
        decoder_dim: decoder width.
        decoder_depth: decoder ST blocks.
        decoder_heads: decoder attention heads.
        mlp_ratio: feed-forward width as a multiple of the model width.
        qk_norm: ``"rms"``, ``"layer"`` or ``None``.
        pos_embed: ``"learned"`` or ``"sinusoidal"``.
        beta: commitment loss weight.
        ema_decay: EMA codebook updates with this decay (``None``: codebook loss instead).
        l2_normalize: cosine-similarity codebook lookup.
        dead_code_threshold: dead-code reset threshold (see :class:`~worldmodels.layers.VectorQuantizer`).
        grad_checkpointing: recompute ST blocks in the backward pass.
        quantizer: ``"vq"`` (the paper's learned codebook) or ``"fsq"`` (finite scalar
            quantisation with ``levels``: a fixed grid that cannot collapse; ``vocab_size`` and
            ``code_dim`` then follow from ``levels``).
        levels: FSQ levels per code channel (``quantizer="fsq"`` only), e.g. ``[8, 5, 5, 5]``.
    """

    temporally_causal = True
    conformance_config: ClassVar[dict[str, Any]] = {
        "patch_size": 4, "vocab_size": 32, "code_dim": 8, "encoder_dim": 32, "encoder_depth": 1, "encoder_heads": 2,
        "decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2,
    }  # fmt: skip
    """Small settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self,
        image_size: int | list[int] = 64,
        in_channels: int = 3,
        num_frames: int = 16,
        patch_size: int = 8,
        vocab_size: int = 512,
        code_dim: int = 32,
        encoder_dim: int = 128,
        encoder_depth: int = 4,
        encoder_heads: int = 4,
        decoder_dim: int = 128,
        decoder_depth: int = 4,
        decoder_heads: int = 4,
        mlp_ratio: float = 4.0,
        qk_norm: str | None = "rms",
        pos_embed: str = "learned",
        beta: float = 0.25,
        ema_decay: float | None = None,
        l2_normalize: bool = False,
        dead_code_threshold: float = 0.03,
        grad_checkpointing: bool = False,
        quantizer: str = "vq",
        levels: list[int] | None = None,
    ) -> None:
        super().__init__()
        if quantizer not in ("vq", "fsq"):
            raise ValueError(f"quantizer must be 'vq' or 'fsq', got {quantizer!r}.")
        if quantizer == "fsq":
            if not levels:
                raise ValueError("quantizer='fsq' needs levels, e.g. levels=[8, 5, 5, 5] (1000 codes).")
            levels = [int(level) for level in levels]
            vocab_size, code_dim = math.prod(levels), len(levels)
            self._record_config(vocab_size=vocab_size, code_dim=code_dim, levels=levels)  # what the levels imply
        elif levels is not None:
            raise ValueError(f"levels={levels} is only used with quantizer='fsq' (got quantizer={quantizer!r}).")
        self.image_size = image_hw(image_size)
        self.in_channels, self.num_frames, self.patch_size = in_channels, num_frames, patch_size
        self.vocab_size, self.code_dim = vocab_size, code_dim
        grid = patch_grid(*self.image_size, patch_size)
        self.grid = grid

        self.patch_embed = PatchEmbed(in_channels, patch_size, encoder_dim)
        self.encoder_pos = FactorizedPosEmbed(encoder_dim, num_frames, grid, pos_embed)
        self.encoder = STTransformer(
            encoder_dim, encoder_depth, encoder_heads, mlp_ratio=mlp_ratio, qk_norm=qk_norm, causal=True,
            grad_checkpointing=grad_checkpointing,
        )  # fmt: skip
        self.to_code = FlatLinear(encoder_dim, code_dim)
        self.quantizer: VectorQuantizer | FiniteScalarQuantizer
        if quantizer == "fsq":
            self.quantizer = FiniteScalarQuantizer(levels or [])
        else:
            self.quantizer = VectorQuantizer(
                vocab_size, code_dim, beta=beta, ema_decay=ema_decay, l2_normalize=l2_normalize,
                dead_code_threshold=dead_code_threshold,
            )  # fmt: skip
        self.from_code = FlatLinear(code_dim, decoder_dim)
        self.decoder_pos = FactorizedPosEmbed(decoder_dim, num_frames, grid, pos_embed)
        self.decoder = STTransformer(
            decoder_dim, decoder_depth, decoder_heads, mlp_ratio=mlp_ratio, qk_norm=qk_norm, causal=True,
            grad_checkpointing=grad_checkpointing,
        )  # fmt: skip
        self.to_pixels = FlatLinear(decoder_dim, in_channels * patch_size * patch_size)
        for module in (self.encoder, self.decoder, self.to_pixels):
            module.apply(init_transformer_weights)
        for bottleneck in (self.to_code, self.from_code):  # unit gain through the code bottleneck
            nn.init.xavier_uniform_(bottleneck.weight)
            nn.init.zeros_(bottleneck.bias)

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """The token grid ``(ceil(H / p), ceil(W / p))`` of a ``height x width`` frame."""
        return patch_grid(height, width, self.patch_size)

    # ------------------------------------------------------------------ encoder
    def encode_latents(self, video: Tensor) -> Tensor:
        """Continuous encoder outputs before quantisation.

        Shapes: ``B T C H W -> B T N E``.
        """
        check_frames(video, self.image_size, self.in_channels, self.num_frames, "The st-vivit tokenizer")
        x_BTND = self.patch_embed(video) + self.encoder_pos(video.shape[1])
        return self.to_code(self.encoder(x_BTND))

    def quantize(self, video: Tensor) -> QuantizerOutput:
        """Encode and quantise, with the quantiser's losses and metrics (``quantized: B T N E``, ``indices: B T N``)."""
        return self.quantizer(self.encode_latents(video))

    def encode(self, video: Tensor) -> Tensor:
        """Tokens of a video.

        Shapes: ``B T C H W -> B T h w`` int64.
        """
        tokens_BTN = self.quantizer.nearest(self.encode_latents(video))
        return tokens_BTN.unflatten(2, self.grid)

    # ------------------------------------------------------------------ decoder
    def decode_codes(self, codes_BTNE: Tensor) -> Tensor:
        """Decode code vectors to frames.

        Shapes: ``B T N E -> B T C H W`` in ``[0, 1]``.
        """
        t = codes_BTNE.shape[1]
        x_BTND = self.from_code(codes_BTNE) + self.decoder_pos(t)
        patches = torch.sigmoid(self.to_pixels(self.decoder(x_BTND)))
        return unpatchify(patches.unflatten(2, self.grid), self.patch_size, *self.image_size)

    def decode(self, tokens: Tensor) -> Tensor:
        """Frames of tokens.

        Shapes: ``B T h w -> B T C H W`` in ``[0, 1]``.
        """
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != self.grid:
            raise ValueError(
                f"st-vivit decodes tokens shaped B T h w with a {self.grid[0]}x{self.grid[1]} grid, got shape "
                f"{tuple(tokens.shape)}."
            )
        return self.decode_codes(self.quantizer.lookup(tokens.flatten(2)))

    # ------------------------------------------------------------------ training
    def loss(self, video: Tensor) -> LossOutput:
        """Reconstruction MSE plus the quantiser loss.

        Shapes: ``video: B T C H W``.

        Returns:
            ``(loss, metrics)`` with ``loss``, ``recon_mse``, ``psnr``, ``vq_loss`` and the quantiser's
            codebook metrics (``perplexity``, ``usage``, ``usage_entropy``, ...).
        """
        q = self.quantize(video)
        recon = self.decode_codes(q.quantized)
        recon_mse = F.mse_loss(recon.float(), video.float())
        loss = recon_mse + q.loss
        metrics = {
            "loss": loss.detach(),
            "recon_mse": recon_mse.detach(),
            "psnr": (-10 * torch.log10(recon_mse.detach().clamp_min(1e-10))),
            "vq_loss": q.loss.detach(),
            **q.metrics,
        }
        return loss, metrics
