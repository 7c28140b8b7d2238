"""PSNR and SSIM against hand-computed values and an independent numpy SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldmodels.eval import psnr, ssim
from worldmodels.eval.image_metrics import PSNR_EPS


def test_psnr_constant_offset_is_20_db() -> None:
    x = torch.rand(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    assert psnr(x, x + 0.1).item() == pytest.approx(20.0, abs=1e-4)


def test_psnr_per_frame_values_and_shape() -> None:
    x = torch.zeros(2, 3, 1, 4, 4)  # B T C H W
    y = x.clone()
    y[0, 0] += 0.1  # MSE 0.01 -> 20 dB
    y[0, 1, :, :2] += 0.2  # half the pixels off by 0.2: MSE 0.02 -> 10 log10(50) dB
    y[1] += 0.5  # MSE 0.25 -> 10 log10(4) dB
    per_frame = psnr(x, y, reduction="none")
    assert per_frame.shape == (2, 3)
    assert per_frame[0, 0].item() == pytest.approx(20.0, abs=1e-4)
    assert per_frame[0, 1].item() == pytest.approx(10 * math.log10(50), abs=1e-4)
    assert per_frame[1, 0].item() == pytest.approx(10 * math.log10(4), abs=1e-4)
    # identical frame: finite, capped at 10 log10(1 / eps) = 100 dB
    assert per_frame[0, 2].item() == pytest.approx(10 * math.log10(1 / PSNR_EPS), abs=1e-3)
    assert psnr(x, y).item() == pytest.approx(per_frame.mean().item(), abs=1e-4)


def test_psnr_data_range_255() -> None:
    x = torch.full((1, 3, 5, 5), 100.0)
    assert psnr(x, x + 25.5, data_range=255.0).item() == pytest.approx(20.0, abs=1e-4)


def test_psnr_identical_is_finite() -> None:
    x = torch.rand(4, 3, 8, 8)
    assert torch.isfinite(psnr(x, x))


def test_psnr_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="float"):
        psnr(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="reduction"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), reduction="sum")  # type: ignore[arg-type]


def _ssim_numpy(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Direct SSIM of one C H W image pair: 2-D window, explicit loop over valid positions."""
    r = (size - 1) / 2
    ii, jj = np.mgrid[0:size, 0:size] - r
    window = np.exp(-(ii**2 + jj**2) / (2 * sigma**2))
    window /= window.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    channel_means = []
    for xc, yc in zip(x, y, strict=True):
        values = []
        for i in range(xc.shape[0] - size + 1):
            for j in range(xc.shape[1] - size + 1):
                px, py = xc[i : i + size, j : j + size], yc[i : i + size, j : j + size]
                mx, my = (window * px).sum(), (window * py).sum()
                vx = (window * (px - mx) ** 2).sum()
                vy = (window * (py - my) ** 2).sum()
                cxy = (window * (px - mx) * (py - my)).sum()
                values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        channel_means.append(np.mean(values))
    return float(np.mean(channel_means))


def test_ssim_matches_direct_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 13, 14))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    expected = _ssim_numpy(x, y)
    got64 = ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None]).item()
    got32 = ssim(torch.from_numpy(x).float()[None], torch.from_numpy(y).float()[None]).item()
    assert 0.1 < expected < 0.95  # a non-trivial case
    assert got64 == pytest.approx(expected, abs=1e-10)
    assert got32 == pytest.approx(expected, abs=1e-5)


def test_ssim_of_constant_images_is_luminance_term() -> None:
    # zero variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) * (C2 / C2)
    a, b, c1 = 0.5, 0.25, 0.01**2
    x, y = torch.full((3, 12, 12), a), torch.full((3, 12, 12), b)
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), abs=1e-6)


def test_ssim_identical_is_one_and_noise_lowers_it() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 3, 16, 16, generator=gen)
    per_frame = ssim(x, x, reduction="none")
    assert per_frame.shape == (2, 3)
    assert torch.allclose(per_frame, torch.ones(2, 3), atol=1e-6)
    slightly = ssim(x, (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)).item()
    very = ssim(x, (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1)).item()
    assert 1.0 > slightly > very


def test_ssim_averages_channels() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 12, 12, generator=gen)
    y = torch.rand(3, 12, 12, generator=gen)
    per_channel = torch.stack([ssim(x[c : c + 1], y[c : c + 1]) for c in range(3)])
    assert ssim(x, y).item() == pytest.approx(per_channel.mean().item(), abs=1e-6)


def test_ssim_too_small_frames_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="window_size"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    assert ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), window_size=7).item() == pytest.approx(1.0)
