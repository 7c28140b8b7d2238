"""Per-frame image metrics: PSNR and SSIM.

Axis legend: ``...`` any leading axes (typically ``B T`` or ``B``), ``C H W`` channels and pixels.
Both metrics compare frames pairwise and return one value per frame (``reduction="none"``)
or their mean (``reduction="mean"``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

Reduction = Literal["none", "mean"]
"""``"none"``: one value per frame, shape ``...``; ``"mean"``: the 0-d mean over all frames."""

PSNR_EPS: float = 1e-10
"""Floor of the mean squared error relative to ``data_range ** 2`` in :func:`psnr`.

Identical frames would give an infinite PSNR; the floor caps it at
``10 * log10(1 / PSNR_EPS) = 100`` dB, so means over frames and differences such as
Delta_t PSNR stay finite.
"""


def _check_pair(x: Tensor, y: Tensor, fn: str) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"{fn} takes two torch.Tensors, got {type(x).__name__} and {type(y).__name__}.")
    if x.shape != y.shape:
        raise ValueError(
            f"{fn} compares frames pairwise, so both tensors need the same shape ... C H W; got "
            f"{tuple(x.shape)} and {tuple(y.shape)}."
        )
    if x.ndim < 3:
        raise ValueError(
            f"{fn} needs frames shaped ... C H W (at least 3 dims), got shape {tuple(x.shape)}; "
            "add a channel axis with x[None] for a single grey image."
        )
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ValueError(
            f"{fn} needs float tensors (values in [0, data_range]), got {x.dtype} and {y.dtype}; "
            "convert uint8 frames with x.float() / 255."
        )


def _reduce(per_frame: Tensor, reduction: Reduction, fn: str) -> Tensor:
    if reduction == "none":
        return per_frame
    if reduction == "mean":
        return per_frame.mean()
    raise ValueError(f"{fn}: reduction must be 'none' (one value per frame) or 'mean', got {reduction!r}.")


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def psnr(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    reduction: Reduction = "mean",
    eps: float = PSNR_EPS,
) -> Tensor:
    """Peak signal-to-noise ratio in dB, frame by frame.

    ``PSNR = 10 * log10(data_range ** 2 / MSE)`` with the MSE taken over ``C H W`` of each
    frame. The MSE is floored at ``eps * data_range ** 2`` so identical frames give
    ``10 * log10(1 / eps)`` dB (100 dB by default) instead of infinity.

    Shapes:
        ``x, y``: ``... C H W`` -> ``...`` (``reduction="none"``) or ``()`` (``"mean"``).

    Args:
        x: reference frames with values in ``[0, data_range]``.
        y: frames to compare, same shape.
        data_range: the value span of the pixels (``1.0`` for ``[0, 1]`` video, ``255`` for bytes).
        reduction: ``"none"`` for one PSNR per frame, ``"mean"`` for their mean.
        eps: MSE floor relative to ``data_range ** 2``.

    Returns:
        PSNR in dB, float32 (float64 if ``x`` is float64).

    Example:
        >>> x = torch.zeros(2, 3, 8, 8)
        >>> psnr(x, x + 0.1)  # MSE 0.01 -> 20 dB
        tensor(20.0000)
    """
    _check_pair(x, y, "psnr")
    if data_range <= 0:
        raise ValueError(f"psnr: data_range must be positive (1.0 for [0, 1] frames), got {data_range}.")
    dtype = _compute_dtype(x)
    diff = x.to(dtype) - y.to(dtype)
    mse = diff.square().mean(dim=(-3, -2, -1))
    mse = mse.clamp_min(eps * data_range**2)
    per_frame = 10.0 * torch.log10(data_range**2 / mse)
    return _reduce(per_frame, reduction, "psnr")


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> Tensor:
    """The normalised 1-D Gaussian window of SSIM (its outer product is the 2-D window).

    Shapes:
        ``() -> size``.

    Args:
        size: number of taps (odd).
        sigma: standard deviation in pixels.
        dtype: dtype of the window.

    Returns:
        Weights summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"The SSIM window size must be a positive odd integer, got {size}.")
    if sigma <= 0:
        raise ValueError(f"The SSIM window sigma must be positive, got {sigma}.")
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (window / window.sum()).to(dtype)


def _filter_valid(images_N1HW: Tensor, window: Tensor) -> Tensor:
    """Separable 2-D Gaussian filtering without padding (``valid`` region only)."""
    k = window.numel()
    out = F.conv2d(images_N1HW, window.view(1, 1, k, 1))
    return F.conv2d(out, window.view(1, 1, 1, k))


def ssim(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    reduction: Reduction = "mean",
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004), frame by frame.

    The standard Gaussian-window SSIM: local means, variances and covariance are weighted by an
    ``11 x 11`` Gaussian window (sigma 1.5) over the *valid* region (no padding, as in the
    authors' reference code), with ``C1 = (k1 * L) ** 2`` and ``C2 = (k2 * L) ** 2``,
    ``L = data_range``. The SSIM map is averaged over the valid pixels of each channel, then over
    channels. The reference code's optional downsampling of large images is not applied (as in
    most deep-learning implementations), so values on frames much larger than 256 pixels differ
    from that code's.

    Shapes:
        ``x, y``: ``... C H W`` with ``H, W >= window_size`` -> ``...`` (``reduction="none"``) or
        ``()`` (``"mean"``).

    Args:
        x: reference frames with values in ``[0, data_range]``.
        y: frames to compare, same shape.
        data_range: the value span of the pixels ``L``.
        reduction: ``"none"`` for one SSIM per frame, ``"mean"`` for their mean.
        window_size: side of the Gaussian window (odd).
        sigma: standard deviation of the Gaussian window in pixels.
        k1: stabiliser of the luminance term.
        k2: stabiliser of the contrast-structure term.

    Returns:
        SSIM in ``[-1, 1]`` (1 for identical frames), float32 (float64 if ``x`` is float64).
    """
    _check_pair(x, y, "ssim")
    if data_range <= 0:
        raise ValueError(f"ssim: data_range must be positive (1.0 for [0, 1] frames), got {data_range}.")
    *lead, c, h, w = x.shape
    if h < window_size or w < window_size:
        raise ValueError(
            f"ssim: frames of {h}x{w} pixels are smaller than the {window_size}x{window_size} window; "
            "pass a smaller odd window_size (e.g. 7) or evaluate at a larger resolution."
        )
    dtype = _compute_dtype(x)
    window = gaussian_window(window_size, sigma, dtype).to(x.device)
    x_N1HW = rearrange(x.to(dtype), "... c h w -> (... c) 1 h w")
    y_N1HW = rearrange(y.to(dtype), "... c h w -> (... c) 1 h w")

    mu_x = _filter_valid(x_N1HW, window)
    mu_y = _filter_valid(y_N1HW, window)
    var_x = _filter_valid(x_N1HW * x_N1HW, window) - mu_x.square()
    var_y = _filter_valid(y_N1HW * y_N1HW, window) - mu_y.square()
    cov_xy = _filter_valid(x_N1HW * y_N1HW, window) - mu_x * mu_y

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1)
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    ssim_map = luminance * contrast_structure

    per_channel_N = ssim_map.mean(dim=(-3, -2, -1))
    per_frame = per_channel_N.reshape(*lead, c).mean(dim=-1)
    return _reduce(per_frame, reduction, "ssim")

