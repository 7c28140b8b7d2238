"""Video files in and out: read anything PyAV (FFmpeg) reads, write H.264 mp4 and GIF.

Video files are for viewing and for training on footage people already have. Recorded data
sets are stored as exact uint8 arrays (:mod:`worldmodels.data.shards`): at 64x64 even a
good H.264 encode is lossy (about 30 dB PSNR), which would blur what a world model learns.

Frames cross this module's boundary as numpy ``T H W C`` uint8 RGB arrays (``C = 3``).
PyAV is used for every video codec; imageio-ffmpeg is deliberately not used (procgen's old
``gym3`` dependency pins a broken version of it).

Axis legend: ``T`` frames, ``H W`` pixels, ``C`` channels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReadError",
    "probe_video",
    "read_video",
    "rgb_uint8_frames",
    "write_gif",
    "write_video",
]

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".gif", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv", ".ts"}
)
"""File suffixes treated as video when scanning directories (any container FFmpeg reads works
when a file is named directly)."""


class VideoReadError(ValueError):
    """A video file that cannot be read: corrupt, empty, truncated, or not a video.

    Attributes:
        path: the offending file.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, advice: str | None = None) -> None:
        self.path = str(path)
        advice = advice or (
            "Check that the file is a complete video FFmpeg can play (e.g. `ffprobe FILE`); "
            "re-export or delete it."
        )
        super().__init__(f"Cannot read video {self.path}: {problem}. {advice}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's header says, read without decoding frames.

    Attributes:
        num_frames: frame count (from the header, or by counting packets when the container
            does not store it; never by decoding).
        height: ``H`` in pixels.
        width: ``W`` in pixels.
        fps: average frame rate (0.0 when unknown).
    """

    num_frames: int
    height: int
    width: int
    fps: float


def _open(path: Path):  # -> av.container.InputContainer
    import av

    if not path.exists():
        raise FileNotFoundError(f"Video file {path} does not exist.")
    if path.is_dir():
        raise VideoReadError(path, "it is a directory", "Pass a video file, or use ClipDataset for a directory.")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "the file is empty (0 bytes)", "Delete it or re-export the video.")
    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:  # av.error.FFmpegError and friends
        raise VideoReadError(path, f"FFmpeg could not open it ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "the file has no video stream", "Pass a file with a video track.")
    return container


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's frame count, size and frame rate from its header (no decoding).

    Containers that do not store a frame count (WebM, MKV, GIF) are demuxed packet by packet,
    which reads the file but decodes nothing.

    Args:
        path: the video file.

    Returns:
        :class:`VideoInfo`.

    Raises:
        FileNotFoundError: if the file does not exist.
        VideoReadError: if the file is empty, corrupt, has no video stream or no frames.

    Shapes:
        none (metadata only).
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            try:
                num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
            except Exception as exc:
                raise VideoReadError(path, f"its packets could not be read ({exc})") from exc
    finally:
        container.close()
    if num_frames <= 0 or width <= 0 or height <= 0:
        raise VideoReadError(path, f"it holds no frames (header: {num_frames} frames of {width}x{height})")
    return VideoInfo(num_frames=num_frames, height=height, width=width, fps=fps)


def read_video(
    path: str | os.PathLike[str],
    max_frames: int | None = None,
    *,
    start: int = 0,
    step: int = 1,
) -> np.ndarray:
    """Decode frames of a video file into a uint8 RGB array.

    Frames ``start, start + step, ...`` are returned, at most ``max_frames`` of them. When
    ``start > 0`` and the stream has timestamps, the reader seeks to the nearest key frame
    before ``start`` instead of decoding from the beginning.

    Args:
        path: any file FFmpeg reads (mp4, avi, webm, mkv, mov, gif, ...).
        max_frames: stop after this many frames (``None``: to the end).
        start: index of the first frame to return.
        step: keep every ``step``-th frame from ``start`` (``1``: every frame).

    Returns:
        ``T H W 3`` uint8 array.

    Raises:
        FileNotFoundError: if the file does not exist.
        VideoReadError: if the file is empty, corrupt or yields no frame at ``start``.

    Shapes:
        returns ``T H W C`` uint8 with ``C = 3``.
    """
    if start < 0 or step < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"read_video needs start >= 0, step >= 1, max_frames >= 1; got {start}, {step}, {max_frames}.")
    path = Path(path)
    container = _open(path)
    frames: list[np.ndarray] = []
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            frames = _decode(container, stream, start, step, max_frames)
        except VideoReadError:
            raise
        except Exception as exc:
            raise VideoReadError(path, f"decoding failed ({exc})") from exc
    finally:
        container.close()
    if not frames:
        where = f" at or after frame {start}" if start else ""
        raise VideoReadError(
            path, f"it yielded no frames{where}", "The file is empty or shorter than expected; re-export it."
        )
    return np.stack(frames)


def _decode(container, stream, start: int, step: int, max_frames: int | None) -> list[np.ndarray]:
    """Decode the wanted frames, seeking when frame indices can be derived from timestamps."""
    rate = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base
    first_pts = stream.start_time or 0
    seekable = start > 0 and rate and time_base
    if seekable:
        target = first_pts + int(Fraction(start) / Fraction(rate) / Fraction(time_base))
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except Exception:
            seekable = False
    out: list[np.ndarray] = []
    index = -1
    for frame in container.decode(stream):
        if seekable:
            if frame.pts is None:
                return _decode_from_start(container, stream, start, step, max_frames)
            index = int(round(float((frame.pts - first_pts) * time_base * rate)))
            if not out and index > start:  # seek landed after the wanted frame: start over
                return _decode_from_start(container, stream, start, step, max_frames)
        else:
            index += 1
        if index < start or (index - start) % step:
            continue
        out.append(frame.to_ndarray(format="rgb24"))
        if max_frames is not None and len(out) >= max_frames:
            break
    return out


def _decode_from_start(container, stream, start: int, step: int, max_frames: int | None) -> list[np.ndarray]:
    container.seek(0, stream=stream)
    out: list[np.ndarray] = []
    for index, frame in enumerate(container.decode(stream)):
        if index < start or (index - start) % step:
            continue
        out.append(frame.to_ndarray(format="rgb24"))
        if max_frames is not None and len(out) >= max_frames:
            break
    return out


def rgb_uint8_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    """Check frames to be written and return them as contiguous ``T H W 3`` uint8.

    Grayscale (``T H W`` or one channel) is repeated to RGB and an alpha channel is dropped.

    Args:
        frames: ``T H W C`` uint8 with ``C`` 1, 3 or 4, or ``T H W`` grayscale.
        what: the caller's name, for the error message.

    Raises:
        ValueError: for another shape, no frames, or a dtype other than uint8 (the message says how
            to convert a float video).

    Shapes:
        ``T H W C`` or ``T H W`` -> ``T H W 3``.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:  # T H W grayscale
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.shape[0] < 1:
        raise ValueError(
            f"{what} expects frames of shape T H W C with C in (1, 3, 4) and T >= 1, got {frames.shape}. "
            "Convert a B T C H W float tensor with (video[0].permute(0, 2, 3, 1) * 255).round().byte().numpy()."
        )
    if frames.dtype != np.uint8:
        raise ValueError(
            f"{what} expects uint8 frames, got dtype {frames.dtype}. "
            "Convert floats in [0, 1] with (frames * 255).round().astype(np.uint8)."
        )
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        frames = frames[..., :3]
    return np.ascontiguousarray(frames)


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float = 15.0,
    *,
    crf: int = 18,
) -> Path:
    """Write frames as an H.264 mp4 (for viewing; lossy, so never use it to store data sets).

    H.264 in yuv420p needs even sizes: an odd height or width is padded by repeating the last
    row or column. The index is placed at the start of the file (``faststart``) so browsers can
    stream it. The file appears atomically (written to a temporary name, then renamed).

    Args:
        path: destination, normally ending in ``.mp4``.
        frames: ``T H W C`` uint8 (``C`` 1, 3 or 4; alpha is dropped) or ``T H W`` grayscale.
        fps: frames per second.
        crf: x264 constant rate factor (0 lossless-ish luma, 18 visually clean, 23 default).

    Returns:
        The path written.

    Shapes:
        frames ``T H W C`` uint8.
    """
    import av

    frames = rgb_uint8_frames(frames, "write_video")
    if fps <= 0:
        raise ValueError(f"write_video needs fps > 0, got {fps}.")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    from worldmodels.data.shards import atomic_output

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(int(crf))}
            for frame_hwc in frames:
                frame = av.VideoFrame.from_ndarray(frame_hwc, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def write_gif(path: str | os.PathLike[str], frames: np.ndarray, fps: float = 15.0, *, loop: int = 0) -> Path:
    """Write frames as an animated GIF with Pillow (256 colours per frame; for viewing).

    Args:
        path: destination, normally ending in ``.gif``.
        frames: ``T H W C`` uint8 (``C`` 1, 3 or 4) or ``T H W`` grayscale.
        fps: frames per second (GIF stores delays in 10 ms steps).
        loop: number of loops, ``0`` for forever.

    Returns:
        The path written.

    Shapes:
        frames ``T H W C`` uint8.
    """
    from PIL import Image

    frames = rgb_uint8_frames(frames, "write_gif")
    if fps <= 0:
        raise ValueError(f"write_gif needs fps > 0, got {fps}.")
    from worldmodels.data.shards import atomic_output

    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    with atomic_output(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(10, round(1000 / fps)),
            loop=loop,
            optimize=False,
        )
    return path
