"""``frame-vq``: an IRIS-style per-frame convolutional VQ-VAE tokenizer (Micheli et al., 2023).

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels, ``F = B * T`` frames processed
independently, ``K`` channels, ``h w`` token grid (``H / s``, ``W / s`` for downsampling ``s``),
``E`` code width, ``V`` codebook size.

Every frame is encoded on its own, so the tokenizer is trivially causal in time. The encoder is a
small residual CNN, or any ``timm`` backbone chosen by name (``backbone="resnet18"``) whose feature
map of stride ``downsample`` is taken through ``features_only``/``out_indices`` (never pretrained:
weights are not downloaded).
"""

from __future__ import annotations

import difflib
import math
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodels.interfaces import LossOutput, Tokenizer, check_video
from worldmodels.layers import FiniteScalarQuantizer, QuantizerOutput, VectorQuantizer, image_hw
from worldmodels.layers.recon_loss import check_recon_loss, psnr_of_mse, reconstruction_loss
from worldmodels.registry import register


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class ResBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, 3x3 conv) twice, 1x1 skip when widths differ.

    Shapes: ``F K_in h w -> F K_out h w``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1),
            _norm(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``F K_in h w -> F K_out h w``."""
        return self.skip(x) + self.body(x)


def _stage_channels(channels: int, stages: int) -> list[int]:
    """Width of the feature map after each downsampling stage (doubling, capped at 4x)."""
    return [channels * min(2**i, 4) for i in range(stages + 1)]


class ConvEncoder(nn.Module):
    """Residual CNN downsampling by ``2 ** stages``.

    Shapes: ``F C H W -> F E h w``.
    """

    def __init__(self, in_channels: int, channels: int, stages: int, res_blocks: int, out_channels: int) -> None:
        super().__init__()
        widths = _stage_channels(channels, stages)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for i in range(stages):
            layers += [ResBlock(widths[i], widths[i]) for _ in range(res_blocks)]
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1))
        layers += [ResBlock(widths[-1], widths[-1]) for _ in range(res_blocks)]
        layers += [_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``F C H W -> F E h w``."""
        return self.net(x)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: nearest-neighbour upsampling and convolutions, sigmoid output.

    Shapes: ``F E h w -> F C H W`` in ``[0, 1]``.
    """

    def __init__(self, out_channels: int, channels: int, stages: int, res_blocks: int, in_channels: int) -> None:
        super().__init__()
        widths = _stage_channels(channels, stages)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        layers += [ResBlock(widths[0], widths[0]) for _ in range(res_blocks)]
        for i in range(stages):
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(widths[i], widths[i + 1], 3, padding=1)]
            layers += [ResBlock(widths[i + 1], widths[i + 1]) for _ in range(res_blocks)]
        layers += [_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], out_channels, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """``F E h w -> F C H W``."""
        return self.net(z)


class TimmEncoder(nn.Module):
    """A ``timm`` backbone's feature map at a given stride, projected to the code width.

    Shapes: ``F C H W -> F E h w``.

    Args:
        backbone: a ``timm`` model name (``timm.list_models()``), e.g. ``"resnet18"``.
        in_channels: ``C``.
        downsample: the feature stride to take (must be one the backbone produces).
        out_channels: ``E``.

    Raises:
        ImportError: when ``timm`` is not installed.
        ValueError: for an unknown backbone or a stride it does not produce.
    """

    def __init__(self, backbone: str, in_channels: int, downsample: int, out_channels: int) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"frame-vq with backbone={backbone!r} needs the optional dependency timm (and torchvision): "
                "pip install 'worldmodels[timm]', or use the built-in encoder with backbone=None."
            ) from exc
        if not timm.is_model(backbone):
            close = difflib.get_close_matches(backbone, timm.list_models(), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"timm has no model {backbone!r}.{hint} List them with timm.list_models('resnet*').")
        with torch.device("meta"):  # probe the feature strides without allocating weights
            probe: Any = timm.create_model(backbone, pretrained=False, features_only=True, in_chans=in_channels)
        reductions = list(probe.feature_info.reduction())
        if downsample not in reductions:
            raise ValueError(
                f"timm backbone {backbone!r} produces feature maps of strides {reductions}, not {downsample}; "
                f"set downsample to one of them."
            )
        index = reductions.index(downsample)
        self.backbone = timm.create_model(
            backbone, pretrained=False, features_only=True, out_indices=(index,), in_chans=in_channels
        )
        width = cast(Any, self.backbone).feature_info.channels()[-1]
        self.proj = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``F C H W -> F E h w``."""
        return self.proj(self.backbone(x)[-1])


@register("tokenizer", "frame-vq")
class FrameVQTokenizer(Tokenizer):
    """IRIS-style per-frame convolutional VQ-VAE; the encoder may be a timm backbone chosen by name.

    Shapes: ``encode``: ``B T C H W -> B T h w`` with ``h = ceil(H / downsample)``;
    ``decode``: ``B T h w -> B T C H W`` in ``[0, 1]``.

    Args:
        image_size: frame size ``H`` or ``[H, W]`` (padded up to a multiple of ``downsample``).
        in_channels: ``C``.
        num_frames: accepted for interface symmetry (frames are independent; any ``T`` works).
        vocab_size: codebook size ``V``.
        code_dim: code width ``E``.
        downsample: pixels per token side, a power of two (8: 64x64 -> 8x8 tokens; 4: 16x16).
        channels: width of the first convolutional stage (doubling per stage, capped at 4x).
        res_blocks: residual blocks per stage.
        backbone: a ``timm`` model name to use as the encoder instead of the built-in CNN
            (always randomly initialised; needs ``pip install 'worldmodels[timm]'``).
        beta: commitment loss weight.
        ema_decay: EMA codebook updates with this decay (``None``: codebook loss).
        l2_normalize: cosine-similarity codebook lookup.
        dead_code_threshold: dead-code reset threshold (see :class:`~worldmodels.layers.VectorQuantizer`).
        quantizer: ``"vq"`` (a learned codebook, :class:`~worldmodels.layers.VectorQuantizer`) or
            ``"fsq"`` (finite scalar quantisation, :class:`~worldmodels.layers.FiniteScalarQuantizer`:
            a fixed grid, no codebook to collapse; ``vocab_size`` and ``code_dim`` then follow from
            ``levels``).
        levels: FSQ levels per code channel (``quantizer="fsq"`` only), e.g. ``[8, 5, 5, 5]``.
        recon_loss: ``"mse"`` or ``"l1+grad"`` (see :func:`~worldmodels.layers.recon_loss.reconstruction_loss`).
        hard_patch_fraction: weight-one term on the worst fraction of ``downsample x downsample``
            patches of each frame (0 disables it); keeps small sprites from being smoothed away.
    """

    temporally_causal = True
    conformance_config: ClassVar[dict[str, Any]] = {"vocab_size": 32, "code_dim": 8, "channels": 8, "downsample": 4}
    """Small settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self,
        image_size: int | list[int] = 64,
        in_channels: int = 3,
        num_frames: int = 16,
        vocab_size: int = 512,
        code_dim: int = 64,
        downsample: int = 8,
        channels: int = 32,
        res_blocks: int = 1,
        backbone: str | None = None,
        beta: float = 0.25,
        ema_decay: float | None = None,
        l2_normalize: bool = False,
        dead_code_threshold: float = 0.03,
        quantizer: str = "vq",
        levels: list[int] | None = None,
        recon_loss: str = "mse",
        hard_patch_fraction: float = 0.0,
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
        check_recon_loss(recon_loss, hard_patch_fraction)
        self.recon_loss, self.hard_patch_fraction = recon_loss, float(hard_patch_fraction)
        if downsample < 1 or downsample & (downsample - 1):
            raise ValueError(f"downsample must be a power of two (1, 2, 4, 8, 16, ...), got {downsample}.")
        self.image_size = image_hw(image_size)
        self.in_channels, self.num_frames = in_channels, num_frames
        self.vocab_size, self.code_dim, self.downsample = vocab_size, code_dim, downsample
        stages = int(math.log2(downsample))
        if backbone is None:
            self.encoder: nn.Module = ConvEncoder(in_channels, channels, stages, res_blocks, code_dim)
        else:
            self.encoder = TimmEncoder(backbone, in_channels, downsample, code_dim)
        self.quantizer: VectorQuantizer | FiniteScalarQuantizer
        if quantizer == "fsq":
            self.quantizer = FiniteScalarQuantizer(levels or [])
        else:
            self.quantizer = VectorQuantizer(
                vocab_size, code_dim, beta=beta, ema_decay=ema_decay, l2_normalize=l2_normalize,
                dead_code_threshold=dead_code_threshold,
            )  # fmt: skip
        self.decoder = ConvDecoder(in_channels, channels, stages, res_blocks, code_dim)

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """``(ceil(H / downsample), ceil(W / downsample))``."""
        return -(-height // self.downsample), -(-width // self.downsample)

    def _check(self, video: Tensor) -> None:
        check_video(video)
        c, h, w = video.shape[2:]
        if (c, h, w) != (self.in_channels, *self.image_size):
            raise ValueError(
                f"frame-vq was built for {self.in_channels}x{self.image_size[0]}x{self.image_size[1]} frames "
                f"(C x H x W) but got {c}x{h}x{w}; build it with image_size=[{h}, {w}], in_channels={c}."
            )

    def encode_latents(self, video: Tensor) -> Tensor:
        """Continuous encoder outputs before quantisation.

        Shapes: ``B T C H W -> B T h w E``.
        """
        self._check(video)
        b = video.shape[0]
        frames = rearrange(video, "b t c h w -> (b t) c h w") * 2.0 - 1.0
        h, w = self.token_grid(*self.image_size)
        pad_h, pad_w = h * self.downsample - frames.shape[-2], w * self.downsample - frames.shape[-1]
        if pad_h or pad_w:
            frames = F.pad(frames, (0, pad_w, 0, pad_h))
        z_FEhw = self.encoder(frames)
        return rearrange(z_FEhw, "(b t) e h w -> b t h w e", b=b)

    def quantize(self, video: Tensor) -> QuantizerOutput:
        """Encode and quantise (``quantized: B T h w E``, ``indices: B T h w``) with the VQ losses and metrics."""
        return self.quantizer(self.encode_latents(video))

    def encode(self, video: Tensor) -> Tensor:
        """Tokens: ``B T C H W -> B T h w`` int64."""
        return self.quantizer.nearest(self.encode_latents(video))

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Frames of code vectors: ``B T h w E -> B T C H W`` in ``[0, 1]``."""
        b = codes.shape[0]
        # contiguous: a permuted (channels-last strided) input sends oneDNN down a path 2x slower under bf16
        frames = self.decoder(rearrange(codes, "b t h w e -> (b t) e h w").contiguous())
        frames = frames[..., : self.image_size[0], : self.image_size[1]]
        return rearrange(frames, "(b t) c h w -> b t c h w", b=b)

    def decode_last(self, tokens: Tensor) -> Tensor:
        """The newest frame only (each frame decodes on its own): ``B T h w -> B C H W``."""
        return self.decode(tokens[:, -1:])[:, 0]

    def decode(self, tokens: Tensor) -> Tensor:
        """Frames of tokens: ``B T h w -> B T C H W`` in ``[0, 1]``."""
        grid = self.token_grid(*self.image_size)
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != grid:
            raise ValueError(
                f"frame-vq decodes tokens shaped B T h w with a {grid[0]}x{grid[1]} grid, got {tuple(tokens.shape)}."
            )
        return self.decode_codes(self.quantizer.lookup(tokens))

    def loss(self, video: Tensor) -> LossOutput:
        """Reconstruction loss (``recon_loss``, ``hard_patch_fraction``) plus the quantiser loss.

        Shapes: ``video: B T C H W``.

        Returns:
            ``(loss, metrics)`` with ``loss``, ``recon_loss``, ``recon_mse``, ``psnr``, ``vq_loss``
            and the quantiser's codebook metrics.
        """
        q = self.quantize(video)
        recon = self.decode_codes(q.quantized)
        recon_loss = reconstruction_loss(recon, video, self.recon_loss, self.hard_patch_fraction, self.downsample)
        recon_mse = F.mse_loss(recon.detach().float(), video.float())
        loss = recon_loss + q.loss
        metrics = {
            "loss": loss.detach(),
            "recon_loss": recon_loss.detach(),
            "recon_mse": recon_mse,
            "psnr": psnr_of_mse(recon_mse),
            "vq_loss": q.loss.detach(),
            **q.metrics,
        }
        return loss, metrics
