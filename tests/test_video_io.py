"""Video IO with PyAV/Pillow: mp4 and GIF round trips, seeking, header probing, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldmodels.data.synthetic import moving_sprites
from worldmodels.data.video_io import VideoReadError, probe_video, read_video, write_gif, write_video


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """24 frames of 64x64 sprites on a textured background, T H W C uint8."""
    return moving_sprites(1, num_frames=24, image_size=64, seed=3).frames_uint8()[0]


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory, frames: np.ndarray) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=10)


def test_mp4_round_trip_is_close_but_lossy(mp4: Path, frames: np.ndarray) -> None:
    back = read_video(mp4)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert _psnr(back, frames) > 25.0
    info = probe_video(mp4)
    assert (info.num_frames, info.height, info.width) == (24, 64, 64)
    assert info.fps == pytest.approx(10.0)
    assert not [p for p in mp4.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.parametrize(("start", "step", "max_frames"), [(0, 1, 5), (9, 1, 4), (5, 3, None), (23, 1, None)])
def test_read_video_start_step_max_frames_match_slicing(
    mp4: Path, start: int, step: int, max_frames: int | None
) -> None:
    full = read_video(mp4)
    part = read_video(mp4, max_frames, start=start, step=step)
    np.testing.assert_array_equal(part, full[start::step][:max_frames])


def test_gif_round_trip(tmp_path: Path, frames: np.ndarray) -> None:
    path = write_gif(tmp_path / "clip.gif", frames, fps=10)
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 3.0  # palette quantisation only
    np.testing.assert_array_equal(read_video(path, 3, start=4, step=2), back[4::2][:3])
    assert probe_video(path).num_frames == len(frames)


def test_odd_sizes_are_padded_and_grayscale_expanded(tmp_path: Path) -> None:
    gray = np.random.default_rng(0).integers(0, 255, size=(3, 15, 21), dtype=np.uint8)
    back = read_video(write_video(tmp_path / "odd.mp4", gray, fps=5))
    assert back.shape == (3, 16, 22, 3)


def test_write_rejects_float_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=5)
    with pytest.raises(ValueError, match="T H W C"):
        write_gif(tmp_path / "x.gif", np.zeros((8, 8, 3, 2, 1), np.uint8), fps=5)


def test_corrupt_empty_missing_files_raise_clear_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty.mp4"
    empty.touch()
    for path, what in ((corrupt, "could not open"), (empty, "empty")):
        for fn in (read_video, probe_video):
            with pytest.raises(VideoReadError, match=what) as info:
                fn(path)
            assert str(path) in str(info.value) and isinstance(info.value, ValueError)
            assert info.value.path == str(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")


def test_reading_past_the_end_raises(mp4: Path) -> None:
    with pytest.raises(VideoReadError, match="no frames at or after frame 100"):
        read_video(mp4, start=100)
