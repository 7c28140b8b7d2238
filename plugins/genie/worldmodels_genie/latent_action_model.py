"""Genie's latent action model (LAM): discrete actions learned from pixels without labels.

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels, ``p`` patch side, ``N`` patches per
frame, ``D`` transformer width, ``E`` action code width, ``A`` number of latent actions.

Information flow (paper, section 2.2), which the tests check:

* the **encoder** is a causal ST-transformer over ``x_1..x_T``; the latent of transition ``t``
  (from frame ``t`` to ``t+1``) is read at position ``t+1``, which has seen ``x_1..x_{t+1}``:
  it sees the future frame it has to explain (a causal encoder read at position ``t`` would not);
* the latent is quantised with a small codebook (``A = 8`` in the paper);
* the **decoder** is a causal ST-transformer over ``x_1..x_{T-1}``; the quantised action of
  transition ``t`` is added to the tokens of frame ``t`` and the output at position ``t``
  reconstructs ``x_{t+1}``. It never sees ``x_{t+1}`` itself, only the action.

At inference only the codebook is used: :meth:`LatentActionModel.embed` turns action indices
into the vectors the dynamics model is conditioned on.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor, nn

from worldmodels import ActionModel, register
from worldmodels.interfaces import LossOutput, Metrics
from worldmodels.layers import (
    FactorizedPosEmbed,
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


LATENT_STD = 0.1
"""Per-feature standard deviation of the LAM's latents under ``latent_norm="batch"``."""


@register("action_model", "genie-lam")
class LatentActionModel(ActionModel):
    """Genie's latent action model on pixels: causal ST-transformer encoder, tiny VQ codebook, causal decoder.

    The defaults are CPU-sized; the paper's LAM (patch 16, 8 codes of width 32, encoder and decoder
    20 attention layers = 10 ST blocks of width 1024 with 16 heads) is the ``genie-large`` preset's.

    Shapes: ``infer``: ``B T C H W -> B T-1``; ``embed``: ``B T-1 -> B T-1 E``.

    Args:
        image_size: frame size ``H`` or ``[H, W]``.
        in_channels: ``C``.
        num_frames: the longest clip ``T``.
        patch_size: ``p``.
        num_actions: codebook size ``A``.
        action_dim: code width ``E`` (the width of :meth:`embed`'s vectors).
        encoder_dim: encoder width.
        encoder_depth: encoder ST blocks.
        encoder_heads: encoder attention heads.
        decoder_dim: decoder width.
        decoder_depth: decoder ST blocks.
        decoder_heads: decoder attention heads.
        mlp_ratio: feed-forward width as a multiple of the model width.
        qk_norm: ``"rms"``, ``"layer"`` or ``None``.
        pos_embed: ``"learned"`` or ``"sinusoidal"``.
        beta: commitment loss weight.
        ema_decay: EMA codebook updates with this decay (``None``: codebook loss).
        l2_normalize: cosine-similarity codebook lookup.
        dead_code_threshold: dead-code reset threshold (see :class:`~worldmodels.layers.VectorQuantizer`).
        grad_checkpointing: recompute ST blocks in the backward pass.
        encoder_input: ``"frames+diff"`` (default) gives the encoder, at each position ``t``, the
            frame ``x_t`` and its difference to ``x_{t-1}`` (zero at ``t = 1``); ``"frames"`` gives
            ``x_t`` alone. Both carry exactly the same information (the encoder sees
            ``x_1..x_{t+1}`` either way) and both are causal; the difference channels are an
            inductive bias towards *changes*, without which the latent tends to collapse to a
            constant early in training (see ``benchmarks/bench_lam.py``).
        latent_norm: ``"batch"`` (default) standardises each latent feature over the batch
            (``BatchNorm1d`` without affine parameters; running statistics at inference) to a
            standard deviation of :data:`LATENT_STD` before quantisation, so the codes differ in
            every direction rather than sharing one large common component (which left the codes
            within 2% of each other and the dynamics unable to tell actions apart); the small
            scale keeps the quantiser's losses from drowning the reconstruction's gradient.
            ``"none"`` leaves the latent as the encoder emits it.
        decoder_output: ``"residual"`` (default): the decoder's output is added, in logit space,
            to the last frame it sees (``x^_{t+1} = sigmoid(logit(x_t) + out)``), so copying
            the frame is free and the action pays off as soon as training starts;
            ``"sigmoid"``: ``x^_{t+1} = sigmoid(out)``. The decoder sees ``x_t`` in both cases.
    """

    conformance_config: ClassVar[dict[str, Any]] = {
        "patch_size": 4, "num_actions": 4, "action_dim": 8, "encoder_dim": 32, "encoder_depth": 1, "encoder_heads": 2,
        "decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2,
    }  # fmt: skip
    """Small settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self,
        image_size: int | list[int] = 64,
        in_channels: int = 3,
        num_frames: int = 16,
        patch_size: int = 16,
        num_actions: int = 8,
        action_dim: int = 32,
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
        encoder_input: str = "frames+diff",
        latent_norm: str = "batch",
        decoder_output: str = "residual",
    ) -> None:
        super().__init__()
        self._record_config(
            image_size=image_size, in_channels=in_channels, num_frames=num_frames, patch_size=patch_size,
            num_actions=num_actions, action_dim=action_dim, encoder_dim=encoder_dim, encoder_depth=encoder_depth,
            encoder_heads=encoder_heads, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
            decoder_heads=decoder_heads, mlp_ratio=mlp_ratio, qk_norm=qk_norm, pos_embed=pos_embed, beta=beta,
            ema_decay=ema_decay, l2_normalize=l2_normalize, dead_code_threshold=dead_code_threshold,
            grad_checkpointing=grad_checkpointing, encoder_input=encoder_input, latent_norm=latent_norm,
            decoder_output=decoder_output,
        )  # fmt: skip
        if encoder_input not in ("frames", "frames+diff"):
            raise ValueError(f"encoder_input must be 'frames' or 'frames+diff', got {encoder_input!r}.")
        if decoder_output not in ("residual", "sigmoid"):
            raise ValueError(f"decoder_output must be 'residual' or 'sigmoid', got {decoder_output!r}.")
        if latent_norm not in ("batch", "none"):
            raise ValueError(f"latent_norm must be 'batch' or 'none', got {latent_norm!r}.")
        self.encoder_input, self.decoder_output = encoder_input, decoder_output
        if num_frames < 2:
            raise ValueError(f"A latent action model needs num_frames >= 2 (one transition), got {num_frames}.")
        self.image_size = image_hw(image_size)
        self.in_channels, self.num_frames, self.patch_size = in_channels, num_frames, patch_size
        self.num_actions, self.action_dim = num_actions, action_dim
        self.grid = patch_grid(*self.image_size, patch_size)

        encoder_channels = 2 * in_channels if encoder_input == "frames+diff" else in_channels
        self.encoder_embed = PatchEmbed(encoder_channels, patch_size, encoder_dim)
        self.encoder_pos = FactorizedPosEmbed(encoder_dim, num_frames, self.grid, pos_embed)
        self.encoder = STTransformer(
            encoder_dim, encoder_depth, encoder_heads, mlp_ratio=mlp_ratio, qk_norm=qk_norm, causal=True,
            grad_checkpointing=grad_checkpointing,
        )  # fmt: skip
        self.to_latent = nn.Linear(encoder_dim, action_dim)
        self.latent_norm = nn.BatchNorm1d(action_dim, affine=False) if latent_norm == "batch" else nn.Identity()
        self.quantizer = VectorQuantizer(
            num_actions, action_dim, beta=beta, ema_decay=ema_decay, l2_normalize=l2_normalize,
            dead_code_threshold=dead_code_threshold,
        )  # fmt: skip
        self.decoder_embed = PatchEmbed(in_channels, patch_size, decoder_dim)
        self.decoder_pos = FactorizedPosEmbed(decoder_dim, num_frames - 1, self.grid, pos_embed)
        self.action_proj = nn.Linear(action_dim, decoder_dim)
        self.decoder = STTransformer(
            decoder_dim, decoder_depth, decoder_heads, mlp_ratio=mlp_ratio, qk_norm=qk_norm, causal=True,
            grad_checkpointing=grad_checkpointing,
        )  # fmt: skip
        self.to_pixels = FlatLinear(decoder_dim, in_channels * patch_size * patch_size)
        for module in (self.encoder, self.decoder, self.to_pixels):
            module.apply(init_transformer_weights)
        for bottleneck in (self.to_latent, self.action_proj):  # unit gain through the action bottleneck
            nn.init.xavier_uniform_(bottleneck.weight)
            nn.init.zeros_(bottleneck.bias)

    def _check(self, video: Tensor, min_frames: int = 2) -> None:
        who = "The genie-lam action model"
        check_frames(video, self.image_size, self.in_channels, self.num_frames, who, min_frames)

    # ------------------------------------------------------------------ encoder
    def encode_latents(self, video: Tensor) -> Tensor:
        """The continuous (pre-quantisation) latent of every transition.

        Latent ``t`` is the encoder output at frame ``t + 1`` (which has seen ``x_1..x_{t+1}``),
        averaged over the frame's patches, projected to the code width and standardised
        (``latent_norm``).

        Shapes: ``B T C H W -> B T-1 E``.
        """
        self._check(video)
        if self.encoder_input == "frames+diff":
            previous = torch.cat([video[:, :1], video[:, :-1]], dim=1)  # x_{t-1}, with x_0 := x_1
            video = torch.cat([video, video - previous], dim=2)  # B T 2C H W
        x_BTND = self.encoder_embed(video) + self.encoder_pos(video.shape[1])
        h_BTND = self.encoder(x_BTND)
        pooled_BTD = reduce(h_BTND[:, 1:], "b t n d -> b t d", "mean")
        latent_BTE = self.to_latent(pooled_BTD)
        flat_ME = rearrange(latent_BTE, "b t e -> (b t) e")
        needs_two = isinstance(self.latent_norm, nn.BatchNorm1d) and self.training and flat_ME.shape[0] < 2
        if needs_two:  # batch statistics need two vectors: use the running ones
            flat_ME = F.batch_norm(flat_ME, self.latent_norm.running_mean, self.latent_norm.running_var, training=False)
        else:
            flat_ME = self.latent_norm(flat_ME)
        if isinstance(self.latent_norm, nn.BatchNorm1d):
            flat_ME = flat_ME * LATENT_STD
        return rearrange(flat_ME, "(b t) e -> b t e", b=latent_BTE.shape[0])

    def quantize(self, video: Tensor) -> QuantizerOutput:
        """Encode and quantise (``quantized: B T-1 E``, ``indices: B T-1``) with the VQ losses and metrics."""
        return self.quantizer(self.encode_latents(video))

    def infer(self, video: Tensor) -> Tensor:
        """The latent action of every transition.

        Shapes: ``B T C H W -> B T-1`` int64 in ``[0, num_actions)``.
        """
        return self.quantizer.nearest(self.encode_latents(video))

    def embed(self, actions: Tensor) -> Tensor:
        """The codebook vectors of latent actions.

        Shapes: ``B T-1 -> B T-1 E``.
        """
        if actions.is_floating_point():
            raise ValueError(f"embed expects integer action indices, got dtype {actions.dtype}.")
        return self.quantizer.lookup(actions.long())

    # ------------------------------------------------------------------ decoder
    def predict_next(self, frames: Tensor, action_vectors: Tensor) -> Tensor:
        """Predict each next frame from the frames so far and the action vector of each transition.

        Output ``t`` predicts frame ``t + 1`` from frames ``<= t`` and action vectors ``<= t``.

        Shapes: ``frames: B T C H W``, ``action_vectors: B T E -> B T C H W`` in ``[0, 1]``.
        """
        check_frames(frames, self.image_size, self.in_channels, self.num_frames - 1, "The genie-lam decoder")
        if action_vectors.shape[:2] != frames.shape[:2] or action_vectors.shape[-1] != self.action_dim:
            raise ValueError(
                f"predict_next needs one action vector of width {self.action_dim} per input frame: frames "
                f"{tuple(frames.shape)} vs action_vectors {tuple(action_vectors.shape)}."
            )
        x_BTND = self.decoder_embed(frames) + self.decoder_pos(frames.shape[1])
        x_BTND = x_BTND + self.action_proj(action_vectors)[:, :, None, :]
        out = unpatchify(self.to_pixels(self.decoder(x_BTND)).unflatten(2, self.grid), self.patch_size, *self.image_size)
        if self.decoder_output == "residual":
            out = out + torch.logit(frames.clamp(1e-3, 1 - 1e-3))
        return torch.sigmoid(out)

    # ------------------------------------------------------------------ training
    def _loss_from(self, video: Tensor) -> tuple[Tensor, Metrics, Tensor]:
        q = self.quantize(video)
        prediction = self.predict_next(video[:, :-1], q.quantized)
        recon_mse = F.mse_loss(prediction.float(), video[:, 1:].float())
        loss = recon_mse + q.loss
        metrics: Metrics = {"loss": loss.detach(), "recon_mse": recon_mse.detach(), "vq_loss": q.loss.detach()}
        metrics.update(q.metrics)
        return loss, metrics, q.indices.detach()

    def loss(self, video: Tensor) -> LossOutput:
        """Next-frame reconstruction MSE plus the quantiser loss.

        Shapes: ``video: B T C H W`` with ``T >= 2``.

        Returns:
            ``(loss, metrics)``: ``loss``, ``recon_mse``, ``vq_loss``, ``perplexity``, ``usage``
            (fraction of actions used in the batch), ``usage_entropy`` (0 = collapse to one action,
            1 = uniform) and the other quantiser metrics.
        """
        loss, metrics, _ = self._loss_from(video)
        return loss, metrics

    def loss_and_actions(self, video: Tensor) -> tuple[Tensor, Metrics, Tensor]:
        """Loss, metrics and the actions ``B T-1`` from one encoder pass (for co-training with the dynamics)."""
        return self._loss_from(video)
