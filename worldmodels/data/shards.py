"""The on-disk format of recorded data sets: uint8 ``.npz`` shards plus a ``manifest.json``.

A data set is a directory::

    DIR/manifest.json            what was recorded, how, and where (format below)
    DIR/train/shard-00000.npz    episodes of the train split
    DIR/train/shard-00001.npz
    DIR/val/shard-00000.npz
    DIR/test/shard-00000.npz

**Shards** use a *flat episode layout*: the frames of consecutive episodes are concatenated
along one axis, so episodes may have different lengths. Each shard holds five arrays, one
row per frame (``N`` frames in the shard):

==============  =================  ======================================================
key             dtype, shape       meaning
==============  =================  ======================================================
``frames``      uint8 ``N H W C``  RGB frames (exact pixels; no lossy codec)
``actions``     int64 ``N``        true action taken at frame ``i``, leading to frame
                                   ``i + 1`` of the same episode; ``-1`` where unknown
                                   and on the last frame of every episode
``episode``     int64 ``N``        data-set-wide episode id; an episode's frames are
                                   contiguous and never span two shards
``level_seed``  int64 ``N``        the level / reset seed the episode was played on
``step``        int64 ``N``        index of the frame within its game episode (a
                                   recorded episode may start mid-game, see recorders)
``rewards``     float32 ``N``      reward of the action taken at frame ``i`` (``NaN``
                                   where unknown); optional, written when recorded
``terminated``  int8 ``N``         1 when the action taken at frame ``i`` ended the game
                                   episode, 0 when not, ``-1`` unknown; optional
==============  =================  ======================================================

Shards are written uncompressed by default (``np.savez``), which lets readers memory-map
``frames`` straight out of the zip file (:func:`open_array`); compressed shards
(``np.savez_compressed``; CoinRun shards shrink about 10x) are read into memory instead, so
random access to them is slow: compress archives, train from uncompressed shards.
Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written shard or manifest under the final name. Nothing is ever unpickled.

**The manifest** (``format_version`` 1) is JSON::

    {
      "format": "worldmodels-shards", "format_version": 1, "layout": "flat",
      "created": "2025-01-01T00:00:00Z", "worldmodels_version": "0.1.0", "complete": true,
      "env": {"name": "coinrun", "kind": "procgen", "options": {...},
              "num_actions": 15, "action_names": ["LEFT+DOWN", ...]},
      "policy": {"name": "biased", "builtin": true},
      "seed": 0, "image_size": [64, 64], "channels": 3, "fps": 15.0,
      "frames_per_episode": 500, "recording": {"seconds": 12.3},
      "splits": {
        "train": {"level_seeds": [0, 80], "episodes": 80, "frames": 40000,
                  "transitions": 39920, "shards": ["train/shard-00000.npz", ...]},
        "val": {...}, "test": {...}
      },
      "shards": [
        {"path": "train/shard-00000.npz", "split": "train", "frames": 4096, "bytes": 50331648,
         "episodes": [[episode_id, offset, length, level_seed], ...]}, ...
      ],
      "counts": {"episodes": 100, "frames": 50000, "transitions": 49900,
                 "labelled_transitions": 49900}
    }

``level_seeds`` is the half-open range ``[start, stop)`` of level seeds of a split; the
ranges of different splits never overlap, so val and test measure generalisation to unseen
levels. The per-shard episode table lets :class:`~worldmodels.data.clips.ClipDataset` build
its index without opening a single shard.

Axis legend: ``N`` frames of a shard, ``T`` frames of an episode, ``H W C`` pixels.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels._version import __version__
from worldmodels.data.npz_files import ShardFormatError, array_shape, open_array

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "SHARD_KEYS",
    "Episode",
    "EpisodeRef",
    "ShardFormatError",
    "ShardWriter",
    "array_shape",
    "atomic_output",
    "load_shard",
    "open_array",
    "read_manifest",
    "shard_episodes",
    "write_manifest",
    "write_shard",
]

FORMAT_NAME = "worldmodels-shards"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SHARD_KEYS: tuple[str, ...] = ("frames", "actions", "episode", "level_seed", "step")
"""The arrays every shard holds (see the module docstring)."""


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path that replaces ``path`` only if the block succeeds.

    The parent directory is created. On an exception the temporary file is removed and
    ``path`` is left untouched.

    Args:
        path: the final file path.

    Yields:
        The temporary path to write to (same directory, so the rename is atomic).

    Shapes:
        none.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class Episode:
    """One recorded episode, before it is written.

    Attributes:
        frames: ``T H W C`` uint8.
        actions: ``T`` int64; ``actions[t]`` leads from frame ``t`` to ``t + 1``, ``-1`` where
            unknown; the last entry is forced to ``-1`` when written.
        level_seed: the level or reset seed (``-1`` if unknown).
        start_step: index within the game episode of ``frames[0]``.
        rewards: ``T`` float, ``rewards[t]`` the reward of ``actions[t]`` (``NaN`` unknown), or ``None``.
        terminated: ``T`` int, ``1`` where ``actions[t]`` ended the game episode (``-1``
            unknown), or ``None``.
    """

    frames: np.ndarray
    actions: np.ndarray
    level_seed: int = -1
    start_step: int = 0
    rewards: np.ndarray | None = None
    terminated: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        self.actions = np.asarray(self.actions, dtype=np.int64).reshape(-1)
        for name in ("rewards", "terminated"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float32 if name == "rewards" else np.int8).reshape(-1)
            if len(value) != len(self.actions):
                raise ValueError(f"Episode needs one {name} entry per frame (T={len(self.actions)}), got {len(value)}.")
            setattr(self, name, value)
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4:
            raise ValueError(f"Episode frames must be T H W C uint8, got {self.frames.dtype} {self.frames.shape}.")
        if len(self.actions) != len(self.frames):
            raise ValueError(
                f"Episode needs one action per frame (T={len(self.frames)}), got {len(self.actions)}; "
                "pad the last entry with -1."
            )

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lies in a flat array.

    Attributes:
        episode: episode id.
        offset: index of its first frame in the shard.
        length: number of frames ``T``.
        level_seed: level / reset seed (``-1`` if unknown).
    """

    episode: int
    offset: int
    length: int
    level_seed: int = -1


def write_shard(
    path: str | os.PathLike[str],
    episodes: Sequence[Episode],
    episode_ids: Sequence[int] | None = None,
    *,
    compress: bool = False,
) -> dict[str, Any]:
    """Write episodes as one flat shard, atomically.

    Args:
        path: destination ``.npz``.
        episodes: at least one episode; all with the same ``H W C``.
        episode_ids: one distinct id per episode (default ``0, 1, ...``).
        compress: use ``np.savez_compressed`` (smaller, but cannot be memory-mapped).

    Returns:
        The shard's manifest entry (without ``path``/``split``): ``frames``, ``bytes`` and
        ``episodes`` as ``[[id, offset, length, level_seed], ...]``.

    Shapes:
        writes ``frames`` ``N H W C`` uint8 and ``actions``/``episode``/``level_seed``/``step``
        ``N`` int64 (and ``rewards`` ``N`` float32 / ``terminated`` ``N`` int8 when an episode has them).
    """
    if not episodes:
        raise ValueError("write_shard needs at least one episode.")
    ids = [int(i) for i in (range(len(episodes)) if episode_ids is None else episode_ids)]
    if len(ids) != len(episodes) or len(set(ids)) != len(ids):
        raise ValueError(
            f"write_shard needs one distinct id per episode; got {len(ids)} ids for {len(episodes)} episodes."
        )
    shape = episodes[0].frames.shape[1:]
    table: list[list[int]] = []
    offset = 0
    for ep_id, ep in zip(ids, episodes):
        if ep.frames.shape[1:] != shape:
            raise ValueError(
                f"All episodes of a shard must share H W C; episode {ep_id} has {ep.frames.shape[1:]}, "
                f"episode {ids[0]} has {shape}. Resize frames before writing."
            )
        table.append([ep_id, offset, len(ep), int(ep.level_seed)])
        offset += len(ep)
    actions = np.concatenate([ep.actions for ep in episodes])
    actions[np.cumsum([len(ep) for ep in episodes]) - 1] = -1
    arrays = {
        "frames": np.concatenate([ep.frames for ep in episodes]),
        "actions": actions,
        "episode": np.concatenate([np.full(len(ep), i, np.int64) for i, ep in zip(ids, episodes)]),
        "level_seed": np.concatenate([np.full(len(ep), ep.level_seed, np.int64) for ep in episodes]),
        "step": np.concatenate([np.arange(len(ep), dtype=np.int64) + ep.start_step for ep in episodes]),
    }
    if any(ep.rewards is not None for ep in episodes):
        arrays["rewards"] = np.concatenate([
            ep.rewards if ep.rewards is not None else np.full(len(ep), np.nan, np.float32) for ep in episodes
        ])
    if any(ep.terminated is not None for ep in episodes):
        arrays["terminated"] = np.concatenate([
            ep.terminated if ep.terminated is not None else np.full(len(ep), -1, np.int8) for ep in episodes
        ])
    save = np.savez_compressed if compress else np.savez
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            save(f, **arrays)
    return {"frames": int(offset), "bytes": path.stat().st_size, "episodes": table}


def load_shard(path: str | os.PathLike[str], *, mmap: bool = True) -> dict[str, np.ndarray]:
    """Open every array of a shard written by :func:`write_shard`.

    Args:
        path: the shard.
        mmap: memory-map ``frames`` when the shard is uncompressed.

    Returns:
        ``{"frames", "actions", "episode", "level_seed", "step"}``.

    Raises:
        ShardFormatError: if the file is corrupt or lacks one of :data:`SHARD_KEYS`.

    Shapes:
        ``frames`` ``N H W C`` uint8; the others ``N`` int64.
    """
    out = {}
    for key in SHARD_KEYS:
        array = open_array(path, key, mmap=mmap and key == "frames")
        if array is None:
            raise ShardFormatError(
                f"{path} lacks the array {key!r}; a worldmodels shard holds {', '.join(SHARD_KEYS)}. "
                "Re-record it with `worldmodels record`."
            )
        out[key] = array
    n = len(out["frames"])
    bad = [k for k in SHARD_KEYS[1:] if out[k].shape != (n,)]
    if bad:
        raise ShardFormatError(f"{path}: arrays {bad} do not have one entry per frame (N={n}); the shard is corrupt.")
    return out


def shard_episodes(episode_ids: np.ndarray, level_seeds: np.ndarray | None = None) -> list[EpisodeRef]:
    """Split a flat per-frame episode-id array into contiguous episodes.

    Args:
        episode_ids: ``N`` ids; a change of id starts a new episode.
        level_seeds: optional ``N`` level seeds (the first frame's seed is reported).

    Returns:
        One :class:`EpisodeRef` per run of equal ids, in order.

    Shapes:
        ``episode_ids`` ``N``.
    """
    ids = np.asarray(episode_ids).reshape(-1)
    if ids.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    seeds = np.asarray(level_seeds).reshape(-1) if level_seeds is not None else None
    return [
        EpisodeRef(int(ids[s]), int(s), int(e - s), int(seeds[s]) if seeds is not None else -1)
        for s, e in zip(starts, ends)
    ]


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``DIR/manifest.json``.

    Args:
        directory: the data set directory (or the manifest file itself).

    Returns:
        The manifest dict (see the module docstring).

    Raises:
        ShardFormatError: if it is missing, not JSON, not a worldmodels manifest, or of a newer
            format version than this library reads.

    Shapes:
        none.
    """
    path = Path(directory)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise ShardFormatError(
            f"{path} does not exist: {path.parent} is not a recorded data set. "
            "Create one with `worldmodels record ENV --out DIR`."
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardFormatError(f"{path} is not valid JSON ({exc}); restore it or re-record the data set.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ShardFormatError(
            f"{path} is not a worldmodels data set manifest (expected \"format\": \"{FORMAT_NAME}\"). "
            "Rename it if it belongs to something else."
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ShardFormatError(
            f"{path} has format_version {version!r}, but this worldmodels reads versions <= {FORMAT_VERSION}. "
            "Upgrade worldmodels."
        )
    for key in ("splits", "shards"):
        if not isinstance(manifest.get(key), (dict if key == "splits" else list)):
            raise ShardFormatError(f"{path} lacks a valid {key!r} entry; the manifest is corrupt.")
    return manifest


def write_manifest(directory: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write ``DIR/manifest.json`` atomically (sorted keys, trailing newline).

    Shapes:
        none.
    """
    path = Path(directory) / MANIFEST_FILE
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


class ShardWriter:
    """Collect episodes per split and write them as shards plus a manifest.

    Episodes are buffered per split and flushed to ``DIR/SPLIT/shard-NNNNN.npz`` whenever a
    split's buffer reaches ``frames_per_shard`` frames (an episode never spans two shards).
    Shards are written by one background thread, so disk writes overlap with the rollout that
    produces the next episodes (at most two shards wait in memory). :meth:`close` writes the
    remaining shards and the manifest; until then the directory has no manifest, so an
    interrupted recording is never mistaken for a complete one.

    Args:
        directory: the data set directory (created).
        metadata: manifest entries describing the recording (``env``, ``policy``, ``seed``,
            ``image_size``, ``fps``, ``splits`` extras such as ``level_seeds``, ...).
        frames_per_shard: flush threshold (4096 frames of 64x64 RGB is 48 MiB).
        compress: write compressed shards (smaller; read into memory rather than mapped).
        overwrite: replace a data set already in ``directory``; otherwise that is an error.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     writer = ShardWriter(d, {"env": {"name": "toy"}})
        ...     writer.add("train", Episode(np.zeros((3, 8, 8, 3), np.uint8), np.zeros(3, np.int64)))
        ...     manifest = writer.close()
        0
        >>> manifest["counts"]["frames"], manifest["shards"][0]["path"]
        (3, 'train/shard-00000.npz')

    Shapes:
        episodes ``T H W C`` uint8 with one ``H W C`` for the whole data set.
    """

    _MAX_PENDING = 2

    def __init__(
        self,
        directory: str | os.PathLike[str],
        metadata: Mapping[str, Any],
        *,
        frames_per_shard: int = 4096,
        compress: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.directory = Path(directory)
        if frames_per_shard < 1:
            raise ValueError(f"frames_per_shard must be >= 1, got {frames_per_shard}.")
        if (self.directory / MANIFEST_FILE).exists():
            if not overwrite:
                raise FileExistsError(
                    f"{self.directory} already holds a data set ({MANIFEST_FILE}). Choose another output "
                    "directory or pass overwrite=True (--overwrite) to replace it."
                )
            _remove_dataset(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.metadata = dict(metadata)
        self.frames_per_shard = frames_per_shard
        self.compress = compress
        self.frames_added = 0
        self._buffers: dict[str, list[tuple[int, Episode]]] = {}
        self._pending: list[tuple[str, str, Future]] = []  # (path, split, future entry) in write order
        self._shards: list[dict[str, Any]] = []
        self._split_shard_count: dict[str, int] = {}
        self._next_episode = 0
        self._labelled = 0
        self._frame_shape: tuple[int, ...] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer")
        self._closed = False

    def add(self, split: str, episode: Episode) -> int:
        """Buffer one episode of ``split``; returns its data-set-wide episode id.

        Raises:
            ValueError: for a bad split name or frames of another size than earlier episodes.
            OSError: if writing an earlier shard failed (disk full, permissions).

        Shapes:
            ``episode.frames`` ``T H W C`` uint8.
        """
        if self._closed:
            raise RuntimeError("ShardWriter.add after close().")
        if not split or "/" in split or "\\" in split or split.startswith("."):
            raise ValueError(f"Invalid split name {split!r}: use a plain name such as 'train'.")
        if self._frame_shape is None:
            self._frame_shape = episode.frames.shape[1:]
        elif episode.frames.shape[1:] != self._frame_shape:
            raise ValueError(
                f"Episode frames are {episode.frames.shape[1:]} but this data set stores {self._frame_shape}; "
                "resize frames to one size before adding them."
            )
        episode_id = self._next_episode
        self._next_episode += 1
        self.frames_added += len(episode)
        self._labelled += int((episode.actions[:-1] >= 0).sum())
        buffer = self._buffers.setdefault(split, [])
        buffer.append((episode_id, episode))
        if sum(len(e) for _, e in buffer) >= self.frames_per_shard:
            self._flush(split)
        return episode_id

    def _flush(self, split: str) -> None:
        buffer = self._buffers.pop(split, [])
        if not buffer:
            return
        index = self._split_shard_count.get(split, 0)
        self._split_shard_count[split] = index + 1
        rel = f"{split}/shard-{index:05d}.npz"
        future = self._pool.submit(
            write_shard, self.directory / rel, [e for _, e in buffer], [i for i, _ in buffer], compress=self.compress
        )
        self._pending.append((rel, split, future))
        self._collect(keep=self._MAX_PENDING)

    def _collect(self, keep: int = 0) -> None:
        """Wait for written shards (all but the newest ``keep``), re-raising any write error."""
        while len(self._pending) > keep or (self._pending and self._pending[0][2].done()):
            rel, split, future = self._pending.pop(0)
            self._shards.append({"path": rel, "split": split, **future.result()})

    def close(self) -> dict[str, Any]:
        """Write the remaining shards and the manifest; returns the manifest.

        Shapes:
            none.
        """
        if self._closed:
            return read_manifest(self.directory)
        try:
            for split in list(self._buffers):
                self._flush(split)
            self._collect()
        finally:
            self._pool.shutdown(wait=True)
            self._closed = True
        splits: dict[str, dict[str, Any]] = {}
        for shard in self._shards:
            s = splits.setdefault(shard["split"], {"episodes": 0, "frames": 0, "transitions": 0, "shards": []})
            s["episodes"] += len(shard["episodes"])
            s["frames"] += shard["frames"]
            s["transitions"] += sum(max(0, e[2] - 1) for e in shard["episodes"])
            s["shards"].append(shard["path"])
        for name, extra in (self.metadata.pop("splits", None) or {}).items():
            splits.setdefault(name, {"episodes": 0, "frames": 0, "transitions": 0, "shards": []}).update(
                {k: v for k, v in extra.items() if k not in ("episodes", "frames", "transitions", "shards")}
            )

        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "layout": "flat",
            "complete": True,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "worldmodels_version": __version__,
            **self.metadata,
            "splits": splits,
            "shards": self._shards,
            "counts": {
                "episodes": sum(s["episodes"] for s in splits.values()),
                "frames": sum(s["frames"] for s in splits.values()),
                "transitions": sum(s["transitions"] for s in splits.values()),
                "labelled_transitions": self._labelled,
            },
        }
        if self._frame_shape is not None:
            manifest["image_size"] = [int(self._frame_shape[0]), int(self._frame_shape[1])]
            manifest["channels"] = int(self._frame_shape[2])
        write_manifest(self.directory, manifest)
        return manifest

    def abort(self) -> None:
        """Stop without writing a manifest (shards already written stay, unlisted)."""
        self._buffers.clear()
        self._pool.shutdown(wait=True)
        self._closed = True

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _remove_dataset(directory: Path) -> None:
    """Delete the shards listed in an existing manifest (only those inside it), then the manifest."""
    root = directory.resolve()
    try:
        listed = [s["path"] for s in read_manifest(directory)["shards"] if isinstance(s, dict) and "path" in s]
    except ShardFormatError:
        listed = []
    parents = set()
    for rel in listed:
        path = (directory / rel).resolve()
        if root in path.parents and path.is_file():
            path.unlink()
            parents.add(path.parent)
    (directory / MANIFEST_FILE).unlink(missing_ok=True)
    for sub in parents:
        if sub != root and not any(sub.iterdir()):
            sub.rmdir()
