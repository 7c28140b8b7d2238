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

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import reduce
from torch import Tensor, nn

from worldmodels import ActionModel, register
from worldmodels.interfaces import LossOutput, Metrics
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
from worldmodels.layers.recon_loss import check_recon_loss, reconstruction_loss
from worldmodels_genie._checks import check_frames

LATENT_STD = 0.1
"""Scale of the LAM's latents under ``latent_norm="layer"``: each latent is standardised over its own
features, then multiplied by this (the quantiser's losses then stay small next to the reconstruction's)."""

DECODER_OUTPUTS: tuple[str, ...] = ("residual", "sigmoid", "warp")
"""``decoder_output`` settings (see :class:`LatentActionModel`)."""

LATENT_NORMS: tuple[str, ...] = ("layer", "none")
"""``latent_norm`` settings. Each normalises one transition's latent on its own: nothing in the
forward pass mixes transitions of a clip or clips of a batch, in training as in evaluation."""


def warp_frames(frames: Tensor, flow: Tensor) -> Tensor:
    """Sample each frame at its pixels displaced by ``flow`` (in pixels, ``x`` then ``y``), bilinearly.

    The output pixel ``(y, x)`` is the input at ``(y + flow_y, x + flow_x)``; outside the frame the
    border pixel is repeated. Each frame is warped on its own.

    Shapes: ``frames: B T C H W``, ``flow: B T 2 H W -> B T C H W``.
    """
    b, t, c, h, w = frames.shape
    ys = torch.arange(h, device=frames.device, dtype=flow.dtype)
    xs = torch.arange(w, device=frames.device, dtype=flow.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    flat = flow.flatten(0, 1)  # (B T) 2 H W
    x = (grid_x + flat[:, 0] + 0.5) * (2.0 / w) - 1.0  # align_corners=False: pixel centres
    y = (grid_y + flat[:, 1] + 0.5) * (2.0 / h) - 1.0
    grid = torch.stack([x, y], dim=-1)  # (B T) H W 2
    out = F.grid_sample(frames.flatten(0, 1).to(flow.dtype), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.unflatten(0, (b, t)).to(frames.dtype)


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
        latent_norm: ``"layer"`` (default) standardises each latent over its own features (zero
            mean, unit variance, no learned gain) and scales it by :data:`LATENT_STD`; ``"none"``
            leaves it as the encoder emits it. Either sees one transition at a time. (An earlier
            ``"batch"`` setting standardised over the batch, which leaked other transitions and
            other clips into each latent in training mode; it is gone.)
        latent_variance_weight: weight of a loss term (VICReg's variance hinge) that asks every
            latent feature to vary over the batch with a standard deviation of at least
            ``LATENT_STD`` (``latent_norm="layer"``) or 1: the protection against latents collapsing
            to one shared vector, in the loss only, never in the latents (0 disables it).
        quantizer: ``"vq"`` (a codebook of ``num_actions`` learned codes) or ``"fsq"`` (finite
            scalar quantisation with ``levels``, e.g. ``[2, 2, 2]``: the corners of a cube, fixed and
            as far apart as possible; ``num_actions`` and ``action_dim`` then follow from ``levels``).
        levels: FSQ levels (``quantizer="fsq"`` only).
        recon_loss: ``"mse"`` (the paper's) or ``"l1+grad"`` for the next-frame reconstruction (see
            :func:`~worldmodels.layers.recon_loss.reconstruction_loss`).
        hard_patch_fraction: weight-one term on the worst fraction of ``patch_size`` patches of each
            predicted frame: small, action-revealing details (the player's sprite turning, a jump
            starting) then weigh as much as the whole scene's scroll (0 disables it).
        decoder_output: ``"residual"`` (default): the decoder's output is added, in logit space,
            to the last frame it sees (``x^_{t+1} = sigmoid(logit(x_t) + out)``), so copying
            the frame is free and the action pays off as soon as training starts;
            ``"sigmoid"``: ``x^_{t+1} = sigmoid(out)``; ``"warp"``: as ``"residual"``, but the last
            frame is first moved by a per-pixel displacement the decoder predicts as well
            (:func:`warp_frames`; zero at initialisation), so a scroll or a fall of a few pixels is
            cheap to express. The decoder sees ``x_t`` in every case.
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
        latent_norm: str = "layer",
        decoder_output: str = "residual",
        latent_variance_weight: float = 0.0,
        quantizer: str = "vq",
        levels: list[int] | None = None,
        recon_loss: str = "mse",
        hard_patch_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        check_recon_loss(recon_loss, hard_patch_fraction)
        if quantizer not in ("vq", "fsq"):
            raise ValueError(f"quantizer must be 'vq' or 'fsq', got {quantizer!r}.")
        if quantizer == "fsq":
            if not levels:
                raise ValueError("quantizer='fsq' needs levels, e.g. levels=[2, 2, 2] (8 latent actions).")
            levels = [int(level) for level in levels]
            num_actions, action_dim = math.prod(levels), len(levels)
            self._record_config(num_actions=num_actions, action_dim=action_dim, levels=levels)  # what the levels imply
        elif levels is not None:
            raise ValueError(f"levels={levels} is only used with quantizer='fsq' (got quantizer={quantizer!r}).")
        self.recon_loss, self.hard_patch_fraction = recon_loss, float(hard_patch_fraction)
        if encoder_input not in ("frames", "frames+diff"):
            raise ValueError(f"encoder_input must be 'frames' or 'frames+diff', got {encoder_input!r}.")
        if decoder_output not in DECODER_OUTPUTS:
            raise ValueError(f"decoder_output must be one of {DECODER_OUTPUTS}, got {decoder_output!r}.")
        if latent_norm not in LATENT_NORMS:
            hint = " ('batch' leaked other transitions into each latent and was removed)" if latent_norm == "batch" else ""
            raise ValueError(f"latent_norm must be one of {LATENT_NORMS}, got {latent_norm!r}{hint}.")
        if latent_variance_weight < 0:
            raise ValueError(f"latent_variance_weight must be >= 0, got {latent_variance_weight}.")
        self.encoder_input, self.decoder_output = encoder_input, decoder_output
        self.latent_norm, self.latent_variance_weight = latent_norm, float(latent_variance_weight)
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
        self.quantizer: VectorQuantizer | FiniteScalarQuantizer
        if quantizer == "fsq":
            self.quantizer = FiniteScalarQuantizer(levels or [])
        else:
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
        self.to_flow: FlatLinear | None = None
        if decoder_output == "warp":  # a per-pixel displacement of the last frame, zero at the start
            self.to_flow = FlatLinear(decoder_dim, 2 * patch_size * patch_size)
        for module in (self.encoder, self.decoder, self.to_pixels):
            module.apply(init_transformer_weights)
        if self.to_flow is not None:
            nn.init.zeros_(self.to_flow.weight)
            nn.init.zeros_(self.to_flow.bias)
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
        if self.latent_norm == "layer":  # each transition on its own: no statistics across transitions
            latent_BTE = F.layer_norm(latent_BTE.float(), (self.action_dim,)) * LATENT_STD
        return latent_BTE

    def quantize(self, video: Tensor) -> QuantizerOutput:
        """Encode and quantise (``quantized: B T-1 E``, ``indices: B T-1``) with the VQ losses and metrics."""
        return self.quantizer(self.encode_latents(video))

    def infer(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        """The latent action of every transition (recorded ``actions`` are ignored: this model infers them).

        Shapes: ``B T C H W -> B T-1`` int64 in ``[0, num_actions)``.
        """
        return self.quantizer.nearest(self.encode_latents(video))

    def latent_vectors(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        """The continuous latents before quantisation (:meth:`encode_latents`): ``B T C H W -> B T-1 E``."""
        return self.encode_latents(video)

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
        h_BTND = self.decoder(x_BTND)
        out = unpatchify(self.to_pixels(h_BTND).unflatten(2, self.grid), self.patch_size, *self.image_size)
        if self.decoder_output == "sigmoid":
            return torch.sigmoid(out)
        last = frames
        if self.to_flow is not None:
            flow = unpatchify(self.to_flow(h_BTND).unflatten(2, self.grid), self.patch_size, *self.image_size)
            last = warp_frames(frames, flow)
        return torch.sigmoid(out + torch.logit(last.clamp(1e-3, 1 - 1e-3)))

    # ------------------------------------------------------------------ training
    def _variance_loss(self, latents_BTE: Tensor) -> Tensor:
        """VICReg's variance hinge on the latents of the batch: ``mean_e relu(target - std_e)``."""
        flat_ME = latents_BTE.reshape(-1, self.action_dim).float()
        if flat_ME.shape[0] < 2:
            return flat_ME.sum() * 0.0
        target = LATENT_STD if self.latent_norm == "layer" else 1.0
        std_E = (flat_ME.var(dim=0) + 1e-8).sqrt()
        return F.relu(target - std_E).mean() / target

    def _loss_from(self, video: Tensor) -> tuple[Tensor, Metrics, Tensor]:
        latents = self.encode_latents(video)
        q = self.quantizer(latents)
        prediction = self.predict_next(video[:, :-1], q.quantized)
        recon_mse = F.mse_loss(prediction.float(), video[:, 1:].float())
        if self.recon_loss == "mse" and self.hard_patch_fraction == 0:
            recon = recon_mse
        else:
            recon = reconstruction_loss(prediction, video[:, 1:], self.recon_loss, self.hard_patch_fraction,
                                        self.patch_size)
        loss = recon + q.loss
        metrics: Metrics = {"recon_mse": recon_mse.detach(), "recon_loss": recon.detach(), "vq_loss": q.loss.detach()}
        if self.latent_variance_weight > 0:
            variance = self._variance_loss(latents)
            loss = loss + self.latent_variance_weight * variance
            metrics["variance_loss"] = variance.detach()
        metrics["loss"] = loss.detach()
        metrics.update(q.metrics)
        return loss, metrics, q.indices.detach()

    def loss(self, video: Tensor, actions: Tensor | None = None) -> LossOutput:
        """Next-frame reconstruction MSE plus the quantiser loss (recorded ``actions`` are ignored).

        Shapes: ``video: B T C H W`` with ``T >= 2``.

        Returns:
            ``(loss, metrics)``: ``loss``, ``recon_mse``, ``vq_loss``, ``perplexity``, ``usage``
            (fraction of actions used in the batch), ``usage_entropy`` (0 = collapse to one action,
            1 = uniform), ``variance_loss`` (with ``latent_variance_weight``) and the other
            quantiser metrics.
        """
        loss, metrics, _ = self._loss_from(video)
        return loss, metrics

    def loss_and_actions(self, video: Tensor, actions: Tensor | None = None) -> tuple[Tensor, Metrics, Tensor]:
        """Loss, metrics and the actions ``B T-1`` from one encoder pass (for co-training with the dynamics)."""
        return self._loss_from(video)
