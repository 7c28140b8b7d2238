"""Frechet distance against closed forms, and the FVD path end to end with a random-weight I3D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from worldmodels.eval import (
    I3D,
    compute_fvd,
    feature_statistics,
    frechet_distance,
    fvd,
    i3d_features,
    load_i3d,
    preprocess_for_i3d,
)
from worldmodels.eval.fvd import NO_WEIGHTS_REASON

# ------------------------------------------------------------------ the Frechet distance


def test_frechet_1d_gaussians_closed_form() -> None:
    # (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2) = 4 + 4 + 1 - 2 * 2 = 5
    got = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[1.0]]))
    assert got == pytest.approx(5.0, abs=1e-12)


def test_frechet_diagonal_covariances_sum_per_axis() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.5, 1.0, 1.0])
    s1, s2 = torch.tensor([1.0, 2.0, 0.25]), torch.tensor([4.0, 0.5, 0.25])
    expected = sum(
        (float(a) - float(b)) ** 2 + float(u) + float(v) - 2 * math.sqrt(float(u) * float(v))
        for a, b, u, v in zip(mu1, mu2, s1, s2, strict=True)
    )
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, abs=1e-12)


def test_frechet_full_covariances_match_numpy_eigvals_of_product() -> None:
    # independent route: tr((S1 S2)^(1/2)) = sum of square roots of the eigenvalues of S1 S2
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T / 8
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(min=0)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    got = frechet_distance(*(torch.from_numpy(v) for v in (mu1, s1, mu2, s2)))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_identical_statistics_is_zero_even_when_rank_deficient() -> None:
    features = torch.randn(6, 20, generator=torch.Generator().manual_seed(0))  # N < D: singular covariance
    mu, sigma = feature_statistics(features)
    assert sigma.shape == (20, 20) and torch.linalg.matrix_rank(sigma) == 5
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_feature_statistics_unbiased_covariance() -> None:
    features = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]])
    mu, sigma = feature_statistics(features)
    assert mu.tolist() == [3.0, 2.0]
    assert torch.allclose(sigma, torch.from_numpy(np.cov(features.numpy(), rowvar=False)))


def test_frechet_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="D D"):
        frechet_distance(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(torch.zeros(2), torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="at least 2 videos"):
        feature_statistics(torch.zeros(1, 4))


# ------------------------------------------------------------------ I3D and FVD end to end


@pytest.fixture(scope="module")
def i3d() -> I3D:
    torch.manual_seed(0)
    return I3D().eval()


def _smooth_videos(n: int, t: int, size: int, seed: int) -> Tensor:
    """Brightness-shifted gradients: videos with structure, unlike uniform noise."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    gradient = ramp[:, None] * ramp[None, :]
    return (0.5 * torch.rand(n, t, 3, 1, 1, generator=gen) + 0.5 * gradient).contiguous()


def test_i3d_has_the_standard_size(i3d: I3D) -> None:
    num_params = sum(p.numel() for p in i3d.parameters())
    assert 12.3e6 <= num_params <= 12.7e6, num_params
    assert len([m for m in i3d.modules() if isinstance(m, torch.nn.Conv3d)]) == 3 + 9 * 6 + 1


def test_i3d_standard_input_pools_a_2x7x7_map_to_400_logits(i3d: I3D) -> None:
    seen: dict[str, torch.Size] = {}

    def record(_module: torch.nn.Module, _inputs: tuple[Tensor, ...], out: Tensor) -> None:
        seen["shape"] = out.shape

    handle = i3d.Mixed_5c.register_forward_hook(record)
    try:
        with torch.no_grad():
            logits = i3d(torch.rand(1, 3, 16, 224, 224) * 2 - 1)
    finally:
        handle.remove()
    assert seen["shape"] == (1, 1024, 2, 7, 7)  # the standard 2x7x7 average pool covers it exactly
    assert logits.shape == (1, 400)


def test_preprocess_resizes_and_scales() -> None:
    video = torch.zeros(2, 3, 1, 10, 12)  # B T C H W, grey
    video[..., :5, :] = 1.0
    clip = preprocess_for_i3d(video, size=32)
    assert clip.shape == (2, 3, 3, 32, 32)  # B C T H W, grey repeated to RGB
    assert clip.min() == -1.0 and clip.max() == 1.0
    with pytest.raises(ValueError, match="RGB"):
        preprocess_for_i3d(torch.zeros(1, 2, 2, 8, 8))


def test_fvd_is_zero_for_the_same_videos_and_positive_for_noise(i3d: I3D) -> None:
    real = _smooth_videos(4, 8, 32, seed=0)
    noise = torch.rand(4, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    features = i3d_features(real, i3d, size=32, batch_size=3)
    assert features.shape == (4, 400) and features.dtype == torch.float64
    assert features.std(dim=0).mean() > 1e-3  # a random network that still separates videos
    assert fvd(real, real, i3d, size=32) == pytest.approx(0.0, abs=1e-6)
    assert fvd(real, real.flip(0), i3d, size=32) == pytest.approx(0.0, abs=1e-6)  # order does not matter
    assert fvd(real, noise, i3d, size=32) > 1.0
    batched = fvd([real[:2], real[2:]], noise, i3d, size=32)  # iterables of batches work alike
    assert batched == pytest.approx(fvd(real, noise, i3d, size=32), rel=1e-6)


def test_compute_fvd_without_weights_is_skipped_with_reason() -> None:
    videos = _smooth_videos(2, 4, 16, seed=0)
    for unset in (None, ""):
        result = compute_fvd(videos, videos, unset)
        assert result.skipped and result.value is None and result.reason == NO_WEIGHTS_REASON
        assert result.describe().startswith("FVD skipped: no I3D weights configured")
        assert result.to_dict()["skipped"] is True


def test_load_i3d_round_trip_and_compute_fvd(i3d: I3D, tmp_path) -> None:  # noqa: ANN001
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in i3d.state_dict().items()}
    save_file(state, str(tmp_path / "i3d.safetensors"))
    torch.save({f"module.{k}": v for k, v in state.items() if "num_batches_tracked" not in k}, tmp_path / "i3d.pt")
    clip = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        reference = i3d(clip)
        for name in ("i3d.safetensors", "i3d.pt"):
            loaded = load_i3d(tmp_path / name)
            assert not loaded.training
            assert torch.equal(loaded(clip), reference)

    real, fake = _smooth_videos(3, 4, 32, seed=2), _smooth_videos(3, 4, 32, seed=3)
    result = compute_fvd(real, fake, tmp_path / "i3d.safetensors", size=32)
    assert not result.skipped and result.num_real == 3 and result.num_fake == 3
    assert result.value == pytest.approx(fvd(real, fake, i3d, size=32), rel=1e-6)
    assert result.describe().startswith("FVD ")


def test_load_i3d_errors_name_the_problem(tmp_path) -> None:  # noqa: ANN001
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_i3d(tmp_path / "absent.safetensors")
    wrong = {"fc.weight": torch.zeros(2, 2), "Conv3d_1a_7x7.conv3d.weight": torch.zeros(1)}
    save_file(wrong, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="missing keys: .*unexpected keys: fc.weight.*wrong shapes: Conv3d_1a_7x7"):
        load_i3d(tmp_path / "x.safetensors")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="state dict"):
        load_i3d(tmp_path / "list.pt")
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        load_i3d(tmp_path / "w.bin")
    with pytest.raises(FileNotFoundError):
        compute_fvd(torch.rand(2, 4, 3, 8, 8), torch.rand(2, 4, 3, 8, 8), tmp_path / "typo.pt")
