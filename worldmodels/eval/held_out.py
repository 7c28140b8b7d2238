"""The held-out clips an evaluation measures: video, recorded actions, rewards and episode ends.

:func:`load_held_out_clips` draws clips spread evenly over a data set's split (so a run of 64
clips of a 600-clip test split sees every part of it) and keeps, where the data has them, the
recorded actions (with the environment's action names and groups), rewards and episode ends.

Axis legend: ``N`` clips, ``T`` frames of a clip, ``C H W`` pixels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from worldmodels.world_model import WorldModel

__all__ = ["HeldOutClips", "load_held_out_clips", "spread_indices"]


@dataclass
class HeldOutClips:
    """The held-out clips of one evaluation.

    Shapes:
        ``video`` ``N T C H W`` float in ``[0, 1]``; ``actions`` ``N T-1`` int64 (``-1`` unknown).
    """

    video: Tensor
    actions: Tensor
    indices: list[int]
    dataset_size: int
    num_true_actions: int | None
    action_names: list[str] | None
    description: str
    action_groups: dict[str, list[int]] | None = None
    rewards: Tensor | None = None
    terminated: Tensor | None = None


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(total)``, starting at 0.

    Taking every ``total / count``-th clip instead of the first ``count`` reaches more episodes
    of a split whose episodes are cut into several consecutive clips.
    """
    count = min(count, total)
    return [(i * total) // count for i in range(count)]


def _dataset_action_groups(dataset: Any, names: list[str] | None) -> dict[str, list[int]] | None:
    """The visible groups of the true actions (``env.action_groups`` of the manifests), if they agree.

    Procgen data sets recorded before the manifest carried groups get them from their action
    names (:func:`~worldmodels.data.recorders.procgen_action_groups`).
    """
    from worldmodels.data.clips import ClipDataset

    groups = getattr(dataset, "action_groups", None)
    if isinstance(dataset, ClipDataset):
        found = {json.dumps(m.get("env", {}).get("action_groups"), sort_keys=True) for m in dataset.manifests}
        groups = json.loads(found.pop()) if len(found) == 1 else None
        kinds = {m.get("env", {}).get("kind") for m in dataset.manifests}
        if groups is None and kinds == {"procgen"} and names is not None:
            from worldmodels.data.recorders import PROCGEN_COMBOS, procgen_action_groups

            if names == ["+".join(c) or "NOOP" for c in PROCGEN_COMBOS]:
                groups = procgen_action_groups()
    if not isinstance(groups, Mapping) or not groups:
        return None
    return {str(k): [int(i) for i in v] for k, v in groups.items()}


def _dataset_action_info(dataset: Any) -> tuple[int | None, list[str] | None]:
    """Number of true actions and their names, from a data set's manifests or attributes."""
    from worldmodels.data.clips import ClipDataset
    from worldmodels.data.synthetic import SyntheticClipDataset

    num = getattr(dataset, "num_actions", None)
    names = getattr(dataset, "action_names", None)
    if isinstance(dataset, ClipDataset):
        found = {tuple(m.get("env", {}).get("action_names") or ()) for m in dataset.manifests}
        if len(found) == 1:
            names = list(found.pop()) or None
    elif isinstance(dataset, SyntheticClipDataset):
        from worldmodels.data.synthetic import ACTION_NAMES

        names = list(ACTION_NAMES)
    num = int(num) if isinstance(num, (int, np.integer)) else None
    names = [str(n) for n in names] if names else None
    if names is not None and num is not None and len(names) != num:
        names = None  # names that do not match the action count would mislabel the table
    if num is None and names is not None:
        num = len(names)
    return num, names


def load_held_out_clips(
    data: Any, model: WorldModel, split: str | None, max_clips: int | None
) -> HeldOutClips:
    """Draw up to ``max_clips`` clips spread evenly over a data set's split, with what the data recorded.

    Args:
        data: a data set directory (read with the model's clip length, image size and frame skip) or a dataset
            object whose items are dicts with ``video`` (and optionally ``actions``, ``rewards``,
            ``terminated``).
        model: the model the clips are for (its ``num_frames``, ``image_size`` and ``frame_skip``).
        split: the split of a recorded data set (``test``, ``val``, ...), or ``None``.
        max_clips: the most clips to draw (``None``: all of them).

    Returns:
        The clips, with the recorded actions (``-1`` unknown), rewards (NaN unknown), episode ends
        (``-1`` unknown), the environment's action names and groups when the data has them.

    Raises:
        TypeError: when an item is not a dict with a ``video``.

    Shapes:
        ``video`` ``N T C H W``; ``actions``, ``rewards``, ``terminated`` ``N T-1``.
    """
    from worldmodels.data.clips import ClipDataset

    if isinstance(data, (str, os.PathLike)):
        dataset: Any = ClipDataset(data, num_frames=model.num_frames, image_size=model.image_size, split=split,
                                   frame_skip=getattr(model, "frame_skip", 1))
        description = str(data)
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        dataset = data
        description = type(data).__name__
    else:
        raise TypeError(
            f"data must be a directory of clips (recorded shards or videos) or a data set of clip dicts "
            f"({{'video': T C H W, 'actions': T-1}}), got {type(data).__name__}."
        )
    if len(dataset) == 0:
        raise ValueError(f"The data set {description} holds no clips; nothing to evaluate.")
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be at least 1 (or None for every clip), got {max_clips}.")
    indices = spread_indices(len(dataset), len(dataset) if max_clips is None else max_clips)
    videos, actions, rewards, ended = [], [], [], []
    for i in indices:
        item = dataset[i]
        if not isinstance(item, Mapping) or "video" not in item:
            raise TypeError(
                f"Item {i} of {description} is a {type(item).__name__}; evaluation needs dicts with a 'video' "
                "(T C H W) and optionally 'actions' (T-1, -1 where unknown), as ClipDataset serves."
            )
        video = torch.as_tensor(item["video"])
        videos.append(video)
        true = item.get("actions")
        if true is None:
            true = torch.full((video.shape[0] - 1,), -1, dtype=torch.long)
        actions.append(torch.as_tensor(true).long())
        reward, done = item.get("rewards"), item.get("terminated")
        rewards.append(torch.full((video.shape[0] - 1,), float("nan")) if reward is None
                       else torch.as_tensor(reward).float())
        ended.append(torch.full((video.shape[0] - 1,), -1, dtype=torch.long) if done is None
                     else torch.as_tensor(done).long())
    shapes = {tuple(v.shape) for v in videos}
    if len(shapes) != 1:
        raise ValueError(f"The clips of {description} differ in shape ({sorted(shapes)}); evaluation stacks them.")
    video_NTCHW = torch.stack(videos).float()
    t = video_NTCHW.shape[1]
    expected = (model.num_frames, model.in_channels, *model.image_size)
    if tuple(video_NTCHW.shape[1:]) != expected:
        raise ValueError(
            f"Clips of {description} are T C H W = {tuple(video_NTCHW.shape[1:])} but the model works on "
            f"{expected} (num_frames, in_channels, image_size); pass a directory (clips are then cut and "
            "resized to the model) or a data set built with the model's num_frames and image_size."
        )
    true_NT = torch.stack(actions)
    if true_NT.shape != (len(indices), t - 1):
        raise ValueError(
            f"'actions' of {description} must have T-1 = {t - 1} entries per clip, got {tuple(true_NT.shape)}."
        )
    num_true, names = _dataset_action_info(dataset)
    groups = _dataset_action_groups(dataset, names)
    return HeldOutClips(video_NTCHW, true_NT, indices, len(dataset), num_true, names, description, groups,
                  torch.stack(rewards), torch.stack(ended))
