"""Clip datasets: fixed-length training clips from videos, recorded shards, or the sprite world.

:class:`ClipDataset` indexes a directory tree (or a list of files) holding any mix of

* video files FFmpeg reads (``.mp4 .avi .webm .mkv .mov .gif ...``; no true actions),
* recorded data sets (a directory with ``manifest.json``, see :mod:`worldmodels.data.shards`),
* loose uint8 arrays: ``.npy`` of ``T H W C`` / ``E T H W C`` / ``T H W``, or ``.npz`` holding
  such a ``frames`` array (plus optional ``actions``, and ``episode`` ids for the flat layout).

and serves clips of ``num_frames`` frames as dicts::

    {"video": T C H W float32 in [0, 1], "actions": T-1 int64 (-1 where unknown),
     "rewards": T-1 float32 (NaN where unknown), "terminated": T-1 int64 (1 where the
     transition ended the game episode, 0 where not, -1 where unknown), "source": str, "start": int}

Each file (or each episode of a shard) is a *segment*; clips never cross segments, so they
never cross episode boundaries. Clip ``k`` of a segment starts at frame ``k * stride`` and
takes frames ``start, start + frame_skip, ...``. The index is built from manifests and file
headers only (nothing is decoded up front), and ``len()`` and ``__getitem__(i)`` depend only on
the files and the arguments, so any sampler (distributed, resumable) can rely on them.

Axis legend: ``T`` frames of a clip, ``C H W`` pixels.
"""

from __future__ import annotations

import bisect
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torch.utils.data import Dataset

from worldmodels.data.npz_files import npz_members
from worldmodels.data.shards import (
    MANIFEST_FILE,
    ShardFormatError,
    array_shape,
    open_array,
    read_manifest,
    shard_episodes,
)
from worldmodels.data.video_io import VIDEO_EXTENSIONS, VideoReadError, probe_video, read_video

__all__ = ["ARRAY_EXTENSIONS", "ClipDataset", "SkippedFileWarning", "resize_video"]

ARRAY_EXTENSIONS: frozenset[str] = frozenset({".npz", ".npy"})
"""File suffixes read as uint8 frame arrays."""

ImageSize = int | tuple[int, int]


class SkippedFileWarning(UserWarning):
    """A file of a clip directory was skipped because it cannot be used (named in the message)."""


def as_hw(image_size: ImageSize | Sequence[int] | None) -> tuple[int, int] | None:
    """An image size as ``(H, W)``: ``S`` means ``(S, S)``; ``None`` stays ``None`` (keep the stored size)."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        hw = (image_size, image_size)
    else:
        hw = tuple(int(s) for s in image_size)  # type: ignore[assignment]  # checked just below
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"image_size must be an int or (H, W) with positive entries, got {image_size!r}.")
    return hw


def resize_video(video: Tensor, image_size: ImageSize | None) -> Tensor:
    """Resize float frames to ``image_size`` with antialiased bilinear interpolation.

    Args:
        video: ``T C H W`` (or ``B T C H W``) float in ``[0, 1]``.
        image_size: ``S`` for ``S x S`` or ``(H, W)``; ``None`` or the current size is a no-op.

    Returns:
        The resized video, values clamped to ``[0, 1]``.

    Shapes:
        ``T C H W -> T C H' W'`` (a leading ``B`` is kept).
    """
    hw = as_hw(image_size)
    if hw is None or tuple(video.shape[-2:]) == hw:
        return video
    lead = video.shape[:-3]
    flat = video.reshape(-1, *video.shape[-3:])
    out = F.interpolate(flat, size=hw, mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0).reshape(*lead, *out.shape[-3:])


def _to_video(frames: np.ndarray, image_size: tuple[int, int] | None) -> Tensor:
    """uint8 ``T H W C`` (C 1/3/4) or ``T H W`` -> float ``T 3 H W`` in [0, 1], resized."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        frames = frames[..., :3]
    video = torch.from_numpy(np.array(frames, dtype=np.uint8)).float().div_(255.0)  # copies out of memory maps
    video = rearrange(video, "t h w c -> t c h w")
    return resize_video(video, image_size)


def _transition_outcomes(
    rewards: np.ndarray | None, terminated: np.ndarray | None, frame_skip: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame rewards / episode ends of a clip's frames -> one per sampled transition.

    With ``frame_skip > 1`` a transition's reward is the sum over its steps and it terminates
    when any of them does; an unknown step makes the transition's value unknown (``NaN`` / ``-1``).
    """
    out_r = np.full(count, np.nan, np.float32)
    out_d = np.full(count, -1, np.int64)
    if rewards is not None:
        steps = np.asarray(rewards, np.float32)[: count * frame_skip].reshape(-1, frame_skip)
        out_r[: len(steps)] = steps.sum(axis=1)
    if terminated is not None:
        ends = np.asarray(terminated, np.int64)[: count * frame_skip].reshape(-1, frame_skip)
        known = (ends >= 0).all(axis=1)
        out_d[: len(ends)] = np.where(known, ends.max(axis=1), -1)
    return out_r, out_d


def _transition_actions(per_frame: np.ndarray, frame_skip: int) -> np.ndarray:
    """Per-frame actions of the ``span`` frames of a clip -> one action per sampled transition.

    With ``frame_skip > 1`` a transition spans several steps; its action is known only when all
    of them agree, otherwise it is ``-1``.
    """
    steps = per_frame[: (len(per_frame) - 1) // frame_skip * frame_skip]
    steps = steps.reshape(-1, frame_skip)
    same = (steps == steps[:, :1]).all(axis=1) & (steps[:, 0] >= 0)
    return np.where(same, steps[:, 0], -1).astype(np.int64)


@dataclass(frozen=True)
class _Segment:
    """A run of consecutive frames clips are cut from (one video, one episode, one array row)."""

    path: str
    kind: str  # "video" | "flat" (frames[offset : offset + length]) | "rows" (frames[offset, :length])
    offset: int
    length: int
    source: str
    size: tuple[int, int]
    actions: str  # "" (unknown), "frame" (one per frame), "transition" (T-1 per row)


class ClipDataset(Dataset):
    """Fixed-length clips from a directory of videos, recorded shards and uint8 arrays.

    Args:
        root: a directory (searched recursively), a file, or a list of them.
        num_frames: ``T``, frames per clip.
        image_size: output size, ``S`` or ``(H, W)``; ``None`` keeps the files' size (which
            must then be the same for every file).
        stride: frames between the starts of consecutive clips of a segment (default: the
            clip's span ``(T - 1) * frame_skip + 1``, i.e. non-overlapping clips).
        frame_skip: frames between consecutive frames of a clip (``1``: every frame).
        split: ``"train"``, ``"val"``, ``"test"`` (or any split a manifest names): use only that
            split of recorded data sets; files outside a data set are then left out. ``None``
            uses everything.
        extensions: suffixes to consider when scanning directories (default: every video
            suffix of :data:`~worldmodels.data.video_io.VIDEO_EXTENSIONS` plus ``.npz``/``.npy``).
        strict: raise on the first unusable file instead of skipping it with a warning (at
            indexing) or replacing its clips by readable ones (at item time).
        max_open_arrays: how many memory-mapped shards each worker keeps open.
        probe_threads: threads reading video headers while indexing.

    Raises:
        FileNotFoundError: if ``root`` does not exist.
        ValueError: if nothing usable is found (the message lists what was skipped and why),
            if frame sizes differ while ``image_size`` is ``None``, or for an unknown split.

    Warns:
        SkippedFileWarning: for each unreadable, empty or too-short file that is skipped.

    Example:
        >>> ds = ClipDataset("data/coinrun", num_frames=16, image_size=64, split="train")  # doctest: +SKIP
        >>> item = ds[0]; item["video"].shape, item["actions"].shape                       # doctest: +SKIP
        (torch.Size([16, 3, 64, 64]), torch.Size([15]))

    Shapes:
        item ``video`` ``T C H W`` float32 in ``[0, 1]``, ``actions`` ``T-1`` int64; a
        :class:`~torch.utils.data.DataLoader` batches them to ``B T C H W`` and ``B T-1``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        num_frames: int = 16,
        *,
        image_size: ImageSize | None = None,
        stride: int | None = None,
        frame_skip: int = 1,
        split: str | None = None,
        extensions: Iterable[str] | None = None,
        strict: bool = False,
        max_open_arrays: int = 16,
        probe_threads: int = 8,
    ) -> None:
        if num_frames < 1 or frame_skip < 1 or (stride is not None and stride < 1):
            raise ValueError(
                f"ClipDataset needs num_frames >= 1, frame_skip >= 1 and stride >= 1; got "
                f"{num_frames}, {frame_skip}, {stride}."
            )
        self.num_frames = num_frames
        self.frame_skip = frame_skip
        self.span = (num_frames - 1) * frame_skip + 1
        self.stride = stride or self.span
        self.image_size = as_hw(image_size)
        self.split = split
        self.strict = strict
        self.max_open_arrays = max(1, max_open_arrays)
        if extensions is None:
            self.extensions = VIDEO_EXTENSIONS | ARRAY_EXTENSIONS
        else:
            self.extensions = frozenset("." + e.lower().lstrip(".") for e in extensions)
        roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
        if not roots:
            raise ValueError("ClipDataset needs at least one root directory or file.")
        self.roots = [Path(r) for r in roots]
        self.skipped: list[tuple[str, str]] = []
        """``(file, reason)`` of every file left out."""
        self.manifests: list[dict[str, Any]] = []
        """The manifests of the recorded data sets found."""
        self.short_segments = 0
        """Episodes / files shorter than a clip's span, left out."""
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._optional: dict[tuple[str, str], np.ndarray | None] = {}  # small arrays, read whole
        self._warned: set[str] = set()
        segments = self._index(probe_threads)
        self._segments: list[_Segment] = []
        self._cum: list[int] = []
        total = 0
        for seg in segments:
            n = (seg.length - self.span) // self.stride + 1 if seg.length >= self.span else 0
            if n <= 0:
                continue
            total += n
            self._segments.append(seg)
            self._cum.append(total)
        if not self._segments:
            raise ValueError(self._nothing_left_message())
        if self.image_size is None:
            ref = self._segments[0]
            for seg in self._segments[1:]:
                if seg.size != ref.size:
                    raise ValueError(
                        f"Frame sizes differ: {seg.path} has {seg.size[0]}x{seg.size[1]} (H x W) but "
                        f"{ref.path} has {ref.size[0]}x{ref.size[1]}. Pass image_size=... to resize every "
                        "clip to one size, or keep files of one size together."
                    )

    # ------------------------------------------------------------------ indexing
    def _skip(self, path: str | os.PathLike[str], reason: str) -> None:
        if self.strict:
            raise ValueError(f"{path}: {reason} (strict=True; pass strict=False to skip unusable files).")
        self.skipped.append((str(path), reason))
        warnings.warn(f"ClipDataset skips {path}: {reason}", SkippedFileWarning, stacklevel=4)

    def _index(self, probe_threads: int) -> list[_Segment]:
        datasets: list[tuple[Path, dict[str, Any]]] = []
        loose: list[Path] = []
        for root in self.roots:
            if not root.exists():
                raise FileNotFoundError(f"{root} does not exist; pass a directory of videos / shards or a file.")
            if root.is_file():
                if root.name == MANIFEST_FILE:
                    datasets.append((root.parent, read_manifest(root)))
                else:
                    loose.append(root)
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                here = Path(dirpath)
                if MANIFEST_FILE in filenames:
                    try:
                        datasets.append((here, read_manifest(here)))
                        dirnames[:] = []  # the manifest says which files belong to the data set
                        continue
                    except ShardFormatError as exc:
                        self._skip(here / MANIFEST_FILE, f"{exc} Its files are read as loose files instead")
                for name in sorted(filenames):
                    if not name.startswith(".") and Path(name).suffix.lower() in self.extensions:
                        loose.append(here / name)
        if not datasets and not loose:
            where = ", ".join(str(r) for r in self.roots)
            raise ValueError(
                f"No videos or frame arrays found under {where} (looked for {', '.join(sorted(self.extensions))}). "
                "Point ClipDataset at a directory of videos or at a data set written by `worldmodels record`."
            )
        if self.split is not None:
            if not datasets:
                raise ValueError(
                    f"split={self.split!r} needs a recorded data set (a directory with {MANIFEST_FILE}), but none "
                    f"was found under {', '.join(str(r) for r in self.roots)}. Pass split=None to use every file, "
                    "or record the data with `worldmodels record`, which splits by level seed."
                )
            if loose:
                warnings.warn(
                    f"ClipDataset(split={self.split!r}) leaves out {len(loose)} file(s) that belong to no recorded "
                    f"data set (e.g. {loose[0]}); they have no split.",
                    SkippedFileWarning,
                    stacklevel=3,
                )
                loose = []
        segments: list[_Segment] = []
        for directory, manifest in datasets:
            self.manifests.append(manifest)
            segments.extend(self._dataset_segments(directory, manifest))
        if self.split is not None and not segments and not self.skipped:
            names = sorted({s for _, m in datasets for s in m.get("splits", {})})
            raise ValueError(
                f"No episodes of split {self.split!r} in {', '.join(str(d) for d, _ in datasets)}; "
                f"the manifests name the splits {names}."
            )
        videos = [p for p in loose if p.suffix.lower() not in ARRAY_EXTENSIONS]
        probed: dict[Path, Any] = {}
        if videos:
            def probe(p: Path) -> Any:
                try:
                    return probe_video(p)
                except (VideoReadError, OSError) as exc:
                    return exc

            with ThreadPoolExecutor(max_workers=max(1, min(probe_threads, len(videos)))) as pool:
                probed = dict(zip(videos, pool.map(probe, videos)))
        for path in loose:
            if path in probed:
                info = probed[path]
                if isinstance(info, Exception):
                    self._skip(path, str(info))
                    continue
                hw = (info.height, info.width)
                segments.append(_Segment(str(path), "video", 0, info.num_frames, str(path), hw, ""))
                if info.num_frames < self.span:
                    self._skip(path, self._too_short(info.num_frames))
            else:
                try:
                    found = self._array_segments(path)
                except (ShardFormatError, ValueError, OSError) as exc:
                    self._skip(path, str(exc))
                    continue
                segments.extend(found)
                if found and all(s.length < self.span for s in found):
                    self._skip(path, self._too_short(max(s.length for s in found)))
        self.short_segments = sum(s.length < self.span for s in segments)
        return segments

    def _too_short(self, length: int) -> str:
        return (
            f"it has {length} frame(s), fewer than a clip needs ({self.span} = (num_frames - 1) * frame_skip + 1 "
            f"with num_frames={self.num_frames}, frame_skip={self.frame_skip}); use fewer frames or a longer file"
        )

    def _dataset_segments(self, directory: Path, manifest: dict[str, Any]) -> list[_Segment]:
        size = manifest.get("image_size") or [0, 0]
        hw = (int(size[0]), int(size[1]))
        out: list[_Segment] = []
        for shard in manifest["shards"]:
            if self.split is not None and shard.get("split") != self.split:
                continue
            path = directory / shard["path"]
            if not path.is_file():
                self._skip(path, f"the manifest {directory / MANIFEST_FILE} lists it but it does not exist")
                continue
            for ep_id, offset, length, _seed in shard["episodes"]:
                source = f"{path}#episode={ep_id}"
                out.append(_Segment(str(path), "flat", int(offset), int(length), source, hw, "frame"))
        return out

    def _array_segments(self, path: Path) -> list[_Segment]:
        header = array_shape(path, "frames")
        key = "frames"
        if header is None:  # an npz without "frames": accept a single array member
            members = npz_members(path)
            if len(members) != 1:
                raise ValueError(
                    f"it has no 'frames' array (members: {members}); store uint8 frames as "
                    "np.savez(path, frames=..., actions=...)"
                )
            key = members[0]
            header = array_shape(path, key)
        assert header is not None
        shape, dtype = header
        if dtype != np.uint8:
            raise ValueError(f"frames have dtype {dtype}; expected uint8 (T H W C, values 0..255)")
        if len(shape) == 3 and shape[-1] not in (1, 3, 4):
            shape = (*shape, 1)  # T H W grayscale
        if len(shape) not in (4, 5) or shape[-1] not in (1, 3, 4):
            raise ValueError(f"frames have shape {shape}; expected T H W C or E T H W C with C in (1, 3, 4)")
        if 0 in shape:
            raise ValueError(f"frames have shape {shape}: the file holds no frames")
        hw = (int(shape[-3]), int(shape[-2]))
        actions_kind = ""
        if path.suffix == ".npz" and key == "frames":
            a_shape = array_shape(path, "actions")
            lead = tuple(shape[:-3])
            if a_shape is not None:
                if a_shape[0] == lead:
                    actions_kind = "frame"
                elif a_shape[0] == (*lead[:-1], lead[-1] - 1):
                    actions_kind = "transition"
                else:
                    raise ValueError(
                        f"'actions' has shape {a_shape[0]}, but frames {shape} need {lead} (one per frame, "
                        f"-1 on the last) or {(*lead[:-1], lead[-1] - 1)} (one per transition)"
                    )
            if len(shape) == 4 and array_shape(path, "episode") is not None:
                episodes = open_array(path, "episode", mmap=False)
                if episodes is None or episodes.shape != (shape[0],):
                    raise ValueError(f"'episode' must hold one id per frame ({shape[0]})")
                return [
                    _Segment(str(path), "flat", r.offset, r.length, f"{path}#episode={r.episode}", hw, actions_kind)
                    for r in shard_episodes(episodes)
                ]
        if key != "frames":
            path_key = f"{path}::{key}"
        else:
            path_key = str(path)
        if len(shape) == 4:
            return [_Segment(path_key, "flat", 0, int(shape[0]), str(path), hw, actions_kind)]
        return [
            _Segment(path_key, "rows", row, int(shape[1]), f"{path}#row={row}", hw, actions_kind)
            for row in range(int(shape[0]))
        ]

    def _nothing_left_message(self) -> str:
        where = ", ".join(str(r) for r in self.roots)
        lines = [
            f"ClipDataset found nothing usable under {where} for clips of {self.num_frames} frames "
            f"(span {self.span} with frame_skip={self.frame_skip})."
        ]
        if self.short_segments:
            lines.append(f"{self.short_segments} file(s)/episode(s) are shorter than {self.span} frames.")
        for path, reason in self.skipped[:10]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more")
        lines.append("Use shorter clips (num_frames / frame_skip), or add readable videos or shards.")
        return "\n".join(lines)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self._cum[-1]

    @property
    def num_actions(self) -> int | None:
        """Number of true actions of the recorded environment, when every manifest agrees."""
        counts = {m.get("env", {}).get("num_actions") for m in self.manifests}
        return counts.pop() if len(counts) == 1 and None not in counts and not self._has_videos() else None

    def _has_videos(self) -> bool:
        return any(s.kind == "video" for s in self._segments)

    @property
    def sources(self) -> list[str]:
        """The files clips are drawn from, in index order."""
        return list(dict.fromkeys(s.path.split("::")[0] for s in self._segments))

    def locate(self, index: int) -> tuple[str, int]:
        """``(source, start)`` of clip ``index`` without reading any frame.

        Shapes:
            none.
        """
        k, start = self._find(index)
        return self._segments[k].source, start

    def _find(self, index: int) -> tuple[int, int]:
        """``(segment number, start frame)`` of clip ``index``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"clip index {index} out of range for a ClipDataset of {n} clips.")
        k = bisect.bisect_right(self._cum, index)
        before = self._cum[k - 1] if k else 0
        return k, (index - before) * self.stride

    def _optional_array(self, path_key: str, key: str) -> np.ndarray | None:
        """An array of a shard that older recordings may lack (``rewards``, ``terminated``)."""
        cache_key = (path_key, key)
        if cache_key in self._optional:
            return self._optional[cache_key]
        path, _, member = path_key.partition("::")
        if member or not path.endswith(".npz"):
            return None
        array = open_array(path, key, mmap=False)
        self._optional[cache_key] = array
        return array

    def _array(self, path_key: str, key: str) -> np.ndarray:
        cache_key = (path_key, key)
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key]
        path, _, member = path_key.partition("::")
        array = open_array(path, member or key, mmap=key != "actions")
        if array is None:
            raise ShardFormatError(f"{path} has no array {member or key!r}; was the file replaced after indexing?")
        self._cache[cache_key] = array
        while len(self._cache) > 2 * self.max_open_arrays:
            self._cache.popitem(last=False)
        return array

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Clip ``index``; an unreadable clip is replaced by the next readable one (with a warning).

        A file can pass indexing and still fail to decode (a truncated video whose header
        promises more frames than it holds). Unless ``strict``, such a clip is replaced by the
        first readable clip of the following segments, so one bad file does not stop a run; the
        replacement depends only on ``index`` and the files, never on what was read before.
        """
        try:
            return self._load(index)
        except (VideoReadError, ShardFormatError) as exc:
            if self.strict:
                raise
            first_error = exc
        k, _ = self._find(index)
        self._warn_unreadable(self._segments[k], first_error)
        for step in range(1, len(self._segments) + 1):
            m = (k + step) % len(self._segments)
            try:
                return self._load(self._cum[m - 1] if m else 0)  # the first clip of segment m
            except (VideoReadError, ShardFormatError) as exc:
                self._warn_unreadable(self._segments[m], exc)
        raise ValueError(f"No clip of this ClipDataset can be read; the first failure was: {first_error}")

    def _warn_unreadable(self, seg: _Segment, exc: Exception) -> None:
        if seg.path not in self._warned:
            self._warned.add(seg.path)
            warnings.warn(
                f"ClipDataset: a clip of {seg.source} cannot be read ({exc}); serving the next readable clip instead. "
                "Re-export or remove the file.",
                SkippedFileWarning,
                stacklevel=3,
            )

    def _load(self, index: int) -> dict[str, Any]:
        k, start = self._find(index)
        seg = self._segments[k]
        T, skip = self.num_frames, self.frame_skip
        if seg.kind == "video":
            frames = read_video(seg.path, max_frames=T, start=start, step=skip)
            if len(frames) < T:
                raise VideoReadError(
                    seg.path,
                    f"its header promised {seg.length} frames but only {start + (len(frames) - 1) * skip + 1} "
                    "could be decoded",
                    "The file is truncated; re-export it or remove it from the directory.",
                )
        else:
            array = self._array(seg.path, "frames")
            lo = start
            hi = start + self.span
            frames = (array[seg.offset + lo : seg.offset + hi : skip] if seg.kind == "flat"
                      else array[seg.offset, lo:hi:skip])
        actions = np.full(T - 1, -1, dtype=np.int64)
        if seg.actions:
            all_actions = self._array(seg.path, "actions")
            if seg.kind == "flat":
                per_frame = np.asarray(all_actions[seg.offset + start : seg.offset + start + self.span])
            else:
                row = np.asarray(all_actions[seg.offset])
                per_frame = row[start : start + self.span]
                if seg.actions == "transition" and len(per_frame) < self.span:
                    per_frame = np.concatenate([per_frame, np.full(self.span - len(per_frame), -1, np.int64)])
            actions = _transition_actions(per_frame.astype(np.int64), skip)
        rewards = terminated = None
        if seg.kind == "flat":
            window = slice(seg.offset + start, seg.offset + start + self.span - 1)
            all_rewards = self._optional_array(seg.path, "rewards")
            all_terminated = self._optional_array(seg.path, "terminated")
            rewards = None if all_rewards is None else np.asarray(all_rewards[window])
            terminated = None if all_terminated is None else np.asarray(all_terminated[window])
        clip_rewards, clip_terminated = _transition_outcomes(rewards, terminated, skip, T - 1)
        return {
            "video": _to_video(np.asarray(frames), self.image_size),
            "actions": torch.from_numpy(actions),
            "rewards": torch.from_numpy(clip_rewards),
            "terminated": torch.from_numpy(clip_terminated),
            "source": seg.source,
            "start": int(start),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # memory maps are reopened in each worker, never pickled
        return state

    def __repr__(self) -> str:
        size = "native" if self.image_size is None else f"{self.image_size[0]}x{self.image_size[1]}"
        return (
            f"ClipDataset({len(self)} clips of {self.num_frames} frames (frame_skip={self.frame_skip}, "
            f"stride={self.stride}, size={size}, split={self.split}) from {len(self._segments)} segments "
            f"in {len(self.sources)} files; {len(self.skipped)} files skipped)"
        )


def __getattr__(name: str) -> Any:
    # SyntheticClipDataset moved to worldmodels.data.synthetic; it stays importable from here.
    if name == "SyntheticClipDataset":
        from worldmodels.data.synthetic import SyntheticClipDataset

        return SyntheticClipDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
