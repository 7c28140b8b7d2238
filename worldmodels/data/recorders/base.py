"""What every recorder shares: the policy names, frame resizing, and :class:`Recorder`, which writes shards."""

from __future__ import annotations

import abc
import difflib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.data.recorders.splits import SplitPlan, plan_splits
from worldmodels.data.shards import Episode, ShardWriter

__all__ = ["POLICIES", "STICKY_MEAN_HOLD", "RecordResult", "Recorder", "resize_frames"]

POLICIES: tuple[str, ...] = ("random", "biased", "sticky", "scripted")
"""Built-in policy names (which of them an environment supports: :meth:`Recorder.policies`)."""

STICKY_MEAN_HOLD = 8.0
"""Mean number of steps the ``sticky`` policy holds an action (geometric distribution)."""


def resize_frames(frames: np.ndarray, image_size: int | tuple[int, int]) -> np.ndarray:
    """Resize uint8 frames with Pillow's antialiased bilinear filter (no-op at the same size).

    Args:
        frames: ``T H W C`` uint8 (``C = 3``).
        image_size: ``S`` or ``(H, W)``.

    Returns:
        ``T H' W' C`` uint8.

    Shapes:
        ``T H W C -> T H' W' C``.
    """
    from PIL import Image

    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    if tuple(frames.shape[1:3]) == (h, w):
        return frames
    out = np.empty((len(frames), h, w, frames.shape[-1]), dtype=np.uint8)
    for t, frame in enumerate(frames):
        out[t] = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))
    return out


@dataclass
class RecordResult:
    """What :meth:`Recorder.record` did.

    Attributes:
        directory: the data set directory.
        manifest: the manifest written (see :mod:`worldmodels.data.shards`).
        seconds: wall time of the recording (stepping, resizing, writing).
    """

    directory: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def frames_per_second(self) -> float:
        """Recorded frames per second of wall time."""
        return self.manifest["counts"]["frames"] / max(self.seconds, 1e-9)


class Recorder(abc.ABC):
    """Rolls out one environment with a policy and writes a data set.

    Subclasses implement :meth:`env_metadata`, :meth:`policies` and :meth:`_episodes`.
    """

    kind: str = ""
    name: str = ""

    @abc.abstractmethod
    def env_metadata(self) -> dict[str, Any]:
        """The manifest's ``env`` entry (name, kind, options, num_actions, action_names)."""

    @abc.abstractmethod
    def policies(self) -> tuple[str, ...]:
        """Names of the built-in policies this environment supports."""

    @property
    def fps(self) -> float:
        """Frames per second at which the recording plays back naturally."""
        return 15.0

    @abc.abstractmethod
    def _episodes(
        self,
        plan: SplitPlan,
        frames_per_episode: int,
        policy: str | Callable[..., Any],
        image_size: tuple[int, int],
        rng: np.random.Generator,
    ) -> Iterator[Episode]:
        """Yield exactly ``plan.episodes`` episodes of the split."""

    def _check_policy(self, policy: str | Callable[..., Any]) -> None:
        if callable(policy):
            return
        if policy not in self.policies():
            close = difflib.get_close_matches(str(policy), POLICIES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close and close[0] in self.policies() else ""
            raise ValueError(
                f"Policy {policy!r} is not available for {self.name}; choose one of {list(self.policies())}.{hint}"
            )

    def record(
        self,
        out: str | Path,
        *,
        episodes: int | None,
        frames_per_episode: int,
        policy: str | Callable[..., Any] = "biased",
        image_size: int | tuple[int, int] = 64,
        splits: str | Mapping[str, float] | None = None,
        seed: int = 0,
        start_level: int = 0,
        num_levels: int | None = None,
        frames_per_shard: int = 4096,
        compress: bool = False,
        overwrite: bool = False,
        progress: bool = True,
    ) -> RecordResult:
        """Record a data set into ``out`` (shards per split plus ``manifest.json``).

        The manifest is written last: an interrupted recording leaves shards but no manifest,
        and is never mistaken for a complete data set.

        Args:
            out: the data set directory.
            episodes: total episodes over all splits (``None`` when ``splits`` gives counts).
            frames_per_episode: ``L``, the most frames of one episode.
            policy: a name of :meth:`policies`, or a callable. Procgen calls it as
                ``policy(obs_NHWC_uint8, first_N_bool) -> N actions``; gymnasium as
                ``policy(env, frame_HWC_uint8) -> action``.
            image_size: stored frame size, ``S`` or ``(H, W)``.
            splits: e.g. ``"train=0.8,val=0.1,test=0.1"`` or ``"train=100,val=10"``.
            seed: seeds the policies (and Procgen's level sampling).
            start_level: first level seed of the first split.
            num_levels: level seeds per split (default: one per episode of the split).
            frames_per_shard: frames per shard file.
            compress: write compressed shards.
            overwrite: replace an existing data set in ``out``.
            progress: show a tqdm progress bar.

        Returns:
            :class:`RecordResult`.

        Shapes:
            stored frames ``T H W C`` uint8 with ``(H, W) = image_size``.
        """
        from tqdm.auto import tqdm

        if frames_per_episode < 2:
            raise ValueError(f"frames_per_episode must be >= 2 (one transition), got {frames_per_episode}.")
        self._check_policy(policy)
        hw = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
        if min(hw) < 1:
            raise ValueError(f"image_size must be positive, got {image_size}.")
        plans = plan_splits(episodes, splits, start_level=start_level, num_levels=num_levels)
        policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", type(policy).__name__)
        metadata = {
            "env": self.env_metadata(),
            "policy": {"name": policy_name, "builtin": isinstance(policy, str)},
            "seed": seed,
            "image_size": list(hw),
            "fps": self.fps,
            "frames_per_episode": frames_per_episode,
            "splits": {p.name: {"level_seeds": [p.level_start, p.level_stop]} for p in plans},
        }
        total = sum(p.episodes for p in plans) * frames_per_episode
        start = time.perf_counter()
        writer = ShardWriter(out, metadata, frames_per_shard=frames_per_shard, compress=compress, overwrite=overwrite)
        bar = tqdm(total=total, unit="frame", unit_scale=True, disable=not progress, desc=f"record {self.name}")
        try:
            for plan in plans:
                bar.set_postfix_str(plan.name)
                rng = np.random.default_rng([seed, plan.index])
                for episode in self._episodes(plan, frames_per_episode, policy, hw, rng):
                    writer.add(plan.name, episode)
                    if len(episode) < frames_per_episode:
                        bar.total -= frames_per_episode - len(episode)
                    bar.update(len(episode))
            writer.metadata["recording"] = {"seconds": round(time.perf_counter() - start, 3)}
            manifest = writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        return RecordResult(Path(out), manifest, time.perf_counter() - start)
