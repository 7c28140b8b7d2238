"""Frechet Video Distance (Unterthiner et al. 2018) with a locally supplied I3D network.

Axis legend: ``N`` videos, ``T`` frames, ``C H W`` pixels, ``D`` feature width (400 logits),
``B`` a batch of videos.

FVD compares the distributions of real and generated videos through the features of an
Inflated 3D ConvNet (I3D, Carreira and Zisserman 2017) trained on Kinetics-400: both feature
sets are summarised by a Gaussian (mean and covariance) and the Frechet distance between the two
Gaussians is reported. As in the standard implementation, the features are the network's 400
logits, computed on frames resized to ``224 x 224`` and scaled to ``[-1, 1]``.

No I3D weights ship with this library and nothing is ever downloaded: pass the path of a local
``.safetensors`` or ``.pt`` state dict to :func:`load_i3d` (or :func:`compute_fvd`). Without one,
:func:`compute_fvd` returns a result marked ``skipped`` with the reason, so reports can say so.

The state-dict keys follow the layout most PyTorch I3D weight files use (end points named as in
the original Inception-v1 I3D, ``Conv3d_1a_7x7`` .. ``Mixed_5c`` and ``logits``; each unit a
``conv3d`` and a ``bn``; inception branches ``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3b``), so
converted Kinetics-400 RGB weights load without renaming.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodels.checkpoint import state_dict_mismatch
from worldmodels.interfaces import check_video

Triple = tuple[int, int, int]

I3D_INPUT_SIZE: int = 224
"""Frame side the standard FVD feeds to I3D."""

I3D_NUM_CLASSES: int = 400
"""Kinetics-400 logits: the FVD feature width ``D``."""


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding of one axis: output ``ceil(size / stride)``, extra pixel at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x_BCTHW: Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> Tensor:
    (t0, t1), (h0, h1), (w0, w1) = (
        _same_padding(size, k, s) for size, k, s in zip(x_BCTHW.shape[2:], kernel, stride, strict=True)
    )
    if t0 == t1 == h0 == h1 == w0 == w1 == 0:
        return x_BCTHW
    return F.pad(x_BCTHW, (w0, w1, h0, h1, t0, t1), value=value)


class _Unit3D(nn.Module):
    """Conv3d with ``SAME`` padding, then batch norm and ReLU (the I3D building block)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        *,
        batch_norm: bool = True,
        activation: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=bias)
        # eps 1e-3 as in the original TensorFlow model the public weights come from.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x_BCTHW: Tensor) -> Tensor:
        x_BCTHW = self.conv3d(_pad_same(x_BCTHW, self.kernel, self.stride))
        if self.bn is not None:
            x_BCTHW = self.bn(x_BCTHW)
        return F.relu(x_BCTHW) if self.activation else x_BCTHW


class _MaxPoolSame(nn.Module):
    """3-D max pooling with ``SAME`` padding (padded positions never win)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x_BCTHW: Tensor) -> Tensor:
        padded = _pad_same(x_BCTHW, self.kernel, self.stride, value=-math.inf)
        return F.max_pool3d(padded, self.kernel, self.stride)


class _Mixed(nn.Module):
    """Inception block: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 | max-pool 3x3x3 -> 1x1x1, concatenated."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.out_channels = w0 + w1b + w2b + w3b
        self.b0 = _Unit3D(in_channels, w0)
        self.b1a = _Unit3D(in_channels, w1a)
        self.b1b = _Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = _Unit3D(in_channels, w2a)
        self.b2b = _Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = _MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = _Unit3D(in_channels, w3b)

    def forward(self, x_BCTHW: Tensor) -> Tensor:
        branches = (
            self.b0(x_BCTHW),
            self.b1b(self.b1a(x_BCTHW)),
            self.b2b(self.b2a(x_BCTHW)),
            self.b3b(self.b3a(x_BCTHW)),
        )
        return torch.cat(branches, dim=1)


# (name, input channels, widths [b0, b1a, b1b, b2a, b2b, b3b]) of the inception blocks.
_MIXED_SPECS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class I3D(nn.Module):
    """Inflated Inception-v1 (I3D, Carreira and Zisserman 2017), RGB stream, returning logits.

    Conv3d 7x7x7 stride 2; max-pool 1x3x3 stride 1x2x2; Conv3d 1x1x1 (64); Conv3d 3x3x3 (192);
    max-pool 1x3x3 stride 1x2x2; Mixed_3b, 3c; max-pool 3x3x3 stride 2; Mixed_4b .. 4f; max-pool
    2x2x2 stride 2; Mixed_5b, 5c; average pool 2x7x7 (stride 1, valid); 1x1x1 conv to the logits,
    averaged over the remaining positions. Every convolution and pool pads TensorFlow-style
    (``SAME``), like the original model, so converted weights give the original features.

    For the standard input (16 frames of 224 x 224) the last feature map is ``2 x 7 x 7`` and the
    average pool covers it exactly. Smaller inputs (e.g. 112 x 112 or 8 frames, used by fast
    tests) give a smaller map; the pool window is then shrunk to the map, which makes it an
    adaptive average pool. Such features are valid for comparing two sets at that size but are
    not comparable with published FVD numbers. Dropout before the logits is omitted: this module
    is for feature extraction only.

    Shapes:
        ``B 3 T H W`` in ``[-1, 1]`` -> ``B D`` logits (``D = num_classes``).

    Args:
        num_classes: logits width (400 for Kinetics-400 weights).
        in_channels: input channels (3 for RGB weights).
    """

    def __init__(self, num_classes: int = I3D_NUM_CLASSES, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        # Attribute names are the original end-point names: they are the state-dict keys of
        # public I3D weight files.
        self.Conv3d_1a_7x7 = _Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = _MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = _Unit3D(64, 64)
        self.Conv3d_2c_3x3 = _Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = _MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.MaxPool3d_4a_3x3 = _MaxPoolSame((3, 3, 3), (2, 2, 2))
        self.MaxPool3d_5a_2x2 = _MaxPoolSame((2, 2, 2), (2, 2, 2))
        for name, channels, widths in _MIXED_SPECS:
            self.add_module(name, _Mixed(channels, widths))
        self.logits = _Unit3D(1024, num_classes, batch_norm=False, activation=False, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convolutions (fan-in, ReLU gain) and zero biases.

        Real use loads trained weights (:func:`load_i3d`); this initialisation only matters for a
        randomly initialised network (tests, smoke runs), whose features then keep their scale
        through the 20-odd layers instead of fading towards the logits' biases.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def features(self, x_BCTHW: Tensor) -> Tensor:
        """The ``Mixed_5c`` feature map, ``B 3 T H W`` -> ``B 1024 T/8 H/32 W/32`` (rounded up)."""
        x = self.Conv3d_1a_7x7(x_BCTHW)
        x = self.MaxPool3d_2a_3x3(x)
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = self.MaxPool3d_3a_3x3(x)
        x = self.get_submodule("Mixed_3c")(self.get_submodule("Mixed_3b")(x))
        x = self.MaxPool3d_4a_3x3(x)
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = self.MaxPool3d_5a_2x2(x)
        return self.get_submodule("Mixed_5c")(self.get_submodule("Mixed_5b")(x))

    def forward(self, x_BCTHW: Tensor) -> Tensor:
        if x_BCTHW.ndim != 5 or x_BCTHW.shape[1] != self.in_channels:
            raise ValueError(
                f"I3D takes B {self.in_channels} T H W video scaled to [-1, 1], got shape {tuple(x_BCTHW.shape)}; "
                "use preprocess_for_i3d(video B T C H W in [0, 1])."
            )
        x = self.features(x_BCTHW)
        window = tuple(min(k, size) for k, size in zip((2, 7, 7), x.shape[2:], strict=True))
        x = F.avg_pool3d(x, window, stride=1)
        logits_BDthw = self.logits(x)
        return logits_BDthw.mean(dim=(2, 3, 4))


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    if suffix in (".pt", ".pth"):
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
            raise ValueError(
                f"{path} does not hold a state dict (a mapping of names to tensors); got {type(obj).__name__}. "
                "Save the weights with torch.save(model.state_dict(), path) or as .safetensors."
            )
        return dict(obj)
    raise ValueError(
        f"Unsupported I3D weights file {path}: use a .safetensors file or a .pt/.pth state dict "
        "(TorchScript archives are not supported: export their state_dict)."
    )


def _summarise(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_i3d(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", num_classes: int = I3D_NUM_CLASSES
) -> I3D:
    """Build :class:`I3D` and load its weights from a local file (nothing is downloaded).

    A ``module.`` prefix on every key (weights saved from ``DataParallel``) is removed, and
    missing ``num_batches_tracked`` batch-norm counters are tolerated (they do not affect
    inference); every other key must match exactly.

    Args:
        path: a ``.safetensors`` file or a ``.pt``/``.pth`` state dict (read with
            ``torch.load(..., weights_only=True)``, so no code in the file runs).
        device: where to put the network.
        num_classes: logits width of the weights.

    Returns:
        The network in eval mode.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a state dict of the standard I3D (naming the missing,
            unexpected and mis-shaped keys).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D weights file {path} does not exist. FVD needs Kinetics-400 I3D weights as a local "
            ".safetensors or .pt state dict (they are never downloaded); fix the path or leave it unset to "
            "skip FVD."
        )
    state = _read_state_dict(path)
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    model = I3D(num_classes=num_classes)
    expected = model.state_dict()
    optional = [key for key in expected if key.endswith("num_batches_tracked")]
    missing, unexpected, mis_shaped = (sorted(keys) for keys in state_dict_mismatch(expected, state, optional))
    mis_shaped = [f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})" for key in mis_shaped]
    if missing or unexpected or mis_shaped:
        problems = []
        if missing:
            problems.append(f"missing keys: {_summarise(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_summarise(unexpected)}")
        if mis_shaped:
            problems.append(f"wrong shapes: {_summarise(mis_shaped)}")
        raise ValueError(
            f"{path} does not fit the standard I3D ({num_classes} classes): " + "; ".join(problems) + ". "
            "Expected keys like Conv3d_1a_7x7.conv3d.weight, Mixed_3b.b1b.bn.running_mean and "
            "logits.conv3d.bias; rename the file's keys to this layout (or pass num_classes)."
        )
    for key in optional:
        state.setdefault(key, expected[key])
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# Features and the distance
# ---------------------------------------------------------------------------------------------


def preprocess_for_i3d(video: Tensor, size: int = I3D_INPUT_SIZE) -> Tensor:
    """Resize frames to ``size x size`` (bilinear) and scale ``[0, 1]`` to ``[-1, 1]``.

    Grey video (``C = 1``) is repeated to three channels. Resizing uses PyTorch's bilinear
    interpolation (half-pixel centres, no antialiasing); the original TensorFlow FVD code
    resizes slightly differently, so values are close to but not bit-identical with it.

    Shapes:
        ``B T C H W`` in ``[0, 1]`` -> ``B 3 T size size`` in ``[-1, 1]``.
    """
    check_video(video, "video")
    b, _, c, _, _ = video.shape
    if c not in (1, 3):
        raise ValueError(f"I3D takes RGB (C=3) or grey (C=1) video, got C={c} in shape {tuple(video.shape)}.")
    frames = rearrange(video.float(), "b t c h w -> (b t) c h w")
    if frames.shape[-2:] != (size, size):
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    if c == 1:
        frames = frames.expand(-1, 3, -1, -1)
    return rearrange(frames * 2.0 - 1.0, "(b t) c h w -> b c t h w", b=b)


@torch.no_grad()
def i3d_features(
    videos: Tensor | Iterable[Tensor], i3d: I3D, size: int = I3D_INPUT_SIZE, batch_size: int = 8
) -> Tensor:
    """I3D logits of every video: the FVD features.

    Shapes:
        ``videos``: ``N T C H W`` in ``[0, 1]`` (or an iterable of such batches) -> ``N D`` float64.

    Args:
        videos: the videos (standard FVD uses 16 frames each).
        i3d: the network (see :func:`load_i3d`); run on its own device, in eval mode.
        size: frame side fed to the network (224 is standard).
        batch_size: videos per forward pass.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    i3d.eval()
    device = next(i3d.parameters()).device
    batches = [videos] if isinstance(videos, Tensor) else videos
    features = []
    for batch in batches:
        for start in range(0, batch.shape[0], batch_size):
            clip = preprocess_for_i3d(batch[start : start + batch_size].to(device), size)
            features.append(i3d(clip).double().cpu())
    if not features:
        raise ValueError("No videos given: i3d_features needs at least one video.")
    return torch.cat(features)


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased, ``N - 1``) covariance of a feature set, in float64.

    Shapes:
        ``features``: ``N D`` (``N >= 2``) -> ``(D, D D)``.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be N D (videos x feature width), got shape {tuple(features.shape)}.")
    if features.shape[0] < 2:
        raise ValueError(f"A covariance needs at least 2 videos, got {features.shape[0]}.")
    features_ND = features.double()
    mu_D = features_ND.mean(dim=0)
    centred_ND = features_ND - mu_D
    sigma_DD = centred_ND.T @ centred_ND / (features_ND.shape[0] - 1)
    return mu_D, sigma_DD


def _check_gaussian(mu: Tensor, sigma: Tensor, name: str) -> tuple[Tensor, Tensor]:
    mu_D = torch.as_tensor(mu).to("cpu", torch.float64)
    sigma_DD = torch.as_tensor(sigma).to("cpu", torch.float64)
    if mu_D.ndim != 1 or sigma_DD.shape != (mu_D.shape[0], mu_D.shape[0]):
        raise ValueError(
            f"Gaussian {name} needs a mean of shape D and a covariance of shape D D, got "
            f"{tuple(mu_D.shape)} and {tuple(sigma_DD.shape)}."
        )
    if mu_D.shape[0] == 0:
        raise ValueError(f"Gaussian {name} has dimension D = 0; pass at least one feature.")
    asymmetry = float((sigma_DD - sigma_DD.T).abs().max())
    if asymmetry > 1e-6 * max(float(sigma_DD.abs().max()), 1e-30):
        raise ValueError(f"Covariance {name} is not symmetric; pass a covariance matrix (see feature_statistics).")
    return mu_D, (sigma_DD + sigma_DD.T) / 2


def _sqrtm_psd(sigma_DD: Tensor) -> Tensor:
    """Symmetric square root of a positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    eigvals_D, eigvecs_DD = torch.linalg.eigh(sigma_DD)
    return (eigvecs_DD * eigvals_D.clamp_min(0).sqrt()) @ eigvecs_DD.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet (2-Wasserstein squared) distance between two Gaussians, in float64 without scipy.

    ``d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, with the last trace taken in
    the symmetric form ``tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` (same eigenvalues as ``S1 S2``) through
    ``torch.linalg.eigh``; negative round-off eigenvalues are clipped to 0 and the result is
    clipped at 0.

    Shapes:
        ``mu1, mu2``: ``D``; ``sigma1, sigma2``: ``D D`` -> scalar.

    Returns:
        The squared distance (FVD and FID report this value).
    """
    mu1_D, sigma1_DD = _check_gaussian(mu1, sigma1, "1")
    mu2_D, sigma2_DD = _check_gaussian(mu2, sigma2, "2")
    if mu1_D.shape != mu2_D.shape:
        raise ValueError(f"Both Gaussians need the same dimension D, got {mu1_D.shape[0]} and {mu2_D.shape[0]}.")
    sqrt1_DD = _sqrtm_psd(sigma1_DD)
    inner_DD = sqrt1_DD @ sigma2_DD @ sqrt1_DD
    inner_DD = (inner_DD + inner_DD.T) / 2
    trace_sqrt = torch.linalg.eigvalsh(inner_DD).clamp_min(0).sqrt().sum()
    distance = (mu1_D - mu2_D).square().sum() + sigma1_DD.trace() + sigma2_DD.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def fvd(
    real_videos: Tensor | Iterable[Tensor],
    fake_videos: Tensor | Iterable[Tensor],
    i3d: I3D,
    size: int = I3D_INPUT_SIZE,
    batch_size: int = 8,
) -> float:
    """Frechet Video Distance between real and generated videos.

    Published FVD numbers use at least a few hundred videos of 16 frames; with few videos the
    estimate is strongly biased upwards (compare only numbers computed on the same counts).

    Shapes:
        ``real_videos``: ``N T C H W``; ``fake_videos``: ``M T' C' H' W'``, both in ``[0, 1]``
        (``N, M >= 2``; or iterables of such batches).

    Args:
        real_videos: held-out real clips.
        fake_videos: generated clips.
        i3d: the feature network (:func:`load_i3d`).
        size: frame side fed to the network (224 is standard).
        batch_size: videos per forward pass.

    Returns:
        FVD (lower is better; 0 for identical sets).
    """
    mu_real, sigma_real = feature_statistics(i3d_features(real_videos, i3d, size, batch_size))
    mu_fake, sigma_fake = feature_statistics(i3d_features(fake_videos, i3d, size, batch_size))
    return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)


@dataclass
class FVDResult:
    """FVD as a report shows it: the value, or why it was not computed.

    Attributes:
        value: the FVD, or ``None`` when skipped.
        skipped: whether FVD was skipped.
        reason: why it was skipped (``None`` when computed).
        weights_path: the I3D weights used (``None`` when skipped for lack of them).
        num_real: real videos compared (0 when skipped).
        num_fake: generated videos compared (0 when skipped).
        size: frame side fed to I3D.
    """

    value: float | None
    skipped: bool
    reason: str | None = None
    weights_path: str | None = None
    num_real: int = 0
    num_fake: int = 0
    size: int = I3D_INPUT_SIZE

    def describe(self) -> str:
        """One line for a report: ``FVD 123.4 (...)`` or ``FVD skipped: <reason>``."""
        if self.skipped:
            return f"FVD skipped: {self.reason}"
        return (
            f"FVD {self.value:.2f} ({self.num_real} real vs {self.num_fake} generated videos, "
            f"I3D weights {self.weights_path}, frames resized to {self.size}x{self.size})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, for reports."""
        return {
            "value": self.value,
            "skipped": self.skipped,
            "reason": self.reason,
            "weights_path": self.weights_path,
            "num_real": self.num_real,
            "num_fake": self.num_fake,
            "size": self.size,
        }


NO_WEIGHTS_REASON = (
    "no I3D weights configured: FVD needs a local Kinetics-400 I3D state dict (.safetensors or .pt), "
    "which this library never downloads; pass its path (weights_path=...) to compute FVD."
)
"""The reason :func:`compute_fvd` gives when no weights path is configured."""


def compute_fvd(
    real_videos: Tensor,
    fake_videos: Tensor,
    weights_path: str | os.PathLike[str] | None,
    *,
    size: int = I3D_INPUT_SIZE,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> FVDResult:
    """FVD if I3D weights are configured, otherwise a result marked skipped with the reason.

    A configured path that does not exist is an error (most likely a typo), not a skip.

    Shapes:
        ``real_videos``: ``N T C H W``; ``fake_videos``: ``M T C H W``, in ``[0, 1]``, ``N, M >= 2``.

    Args:
        real_videos: held-out real clips.
        fake_videos: generated clips.
        weights_path: local I3D weights, or ``None`` / ``""`` when none are configured.
        size: frame side fed to I3D.
        batch_size: videos per forward pass.
        device: where to run I3D.

    Returns:
        :class:`FVDResult`.
    """
    if weights_path is None or str(weights_path).strip() == "":
        return FVDResult(value=None, skipped=True, reason=NO_WEIGHTS_REASON, size=size)
    check_video(real_videos, "real_videos")
    check_video(fake_videos, "fake_videos")
    i3d = load_i3d(weights_path, device=device)
    value = fvd(real_videos, fake_videos, i3d, size=size, batch_size=batch_size)
    return FVDResult(
        value=value,
        skipped=False,
        weights_path=str(weights_path),
        num_real=int(real_videos.shape[0]),
        num_fake=int(fake_videos.shape[0]),
        size=size,
    )
