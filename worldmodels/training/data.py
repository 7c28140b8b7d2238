"""Datasets and loaders for training, built from a :class:`~worldmodels.training.config.DataConfig`.

Items are the clip dicts of :mod:`worldmodels.data.clips`
(``{"video": T C H W float32 in [0, 1], "actions": T-1 int64, "source": str, "start": int}``).
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from worldmodels.build_config import ConfigError
from worldmodels.training.config import DataConfig
from worldmodels.training.sampler import GlobalBatchSampler


def build_datasets(data: DataConfig, *, num_frames: int, image_size: Sequence[int], seed: int = 0
                   ) -> tuple[Dataset, Dataset | None]:
    """The training and (optional) held-out datasets a data config describes.

    Args:
        data: the data settings.
        num_frames: the model's clip length (used when ``data.num_frames`` is unset).
        image_size: the model's ``(H, W)`` (used when ``data.image_size`` is unset).
        seed: seed of the synthetic world.

    Returns:
        ``(train, val)``; ``val`` is ``None`` when no held-out data is configured.

    Raises:
        ConfigError: when neither ``data.path`` nor ``data.synthetic`` says where clips come from.
    """
    from worldmodels.data.clips import ClipDataset
    from worldmodels.data.synthetic import SyntheticClipDataset

    frames = int(data.num_frames or num_frames)
    given = data.image_size if data.image_size is not None else image_size
    size: Any = given if isinstance(given, int) else tuple(int(s) for s in given)  # the datasets check it
    if data.synthetic:
        synthetic = SyntheticClipDataset(data.synthetic_clips, frames, size, seed=seed)
        return synthetic, SyntheticClipDataset(data.synthetic_val_clips, frames, size, seed=seed + 1)
    if data.path is None:
        raise ConfigError(
            "No training data: set data.path=DIR (a directory of videos or a data set recorded with "
            "`worldmodels record`; the shorthand `data=DIR` works too) or data.synthetic=true for the "
            "seeded moving-sprite world."
        )
    kwargs: dict[str, Any] = dict(image_size=size, stride=data.stride, frame_skip=data.frame_skip)
    train = ClipDataset(data.path, frames, split=data.split, **kwargs)
    val: ClipDataset | None = None
    if data.val_path is not None or data.val_split is not None:
        val = ClipDataset(data.val_path if data.val_path is not None else data.path, frames,
                          split=data.val_split, **kwargs)
    return train, val


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch clip dicts: ``video`` ``B T C H W``, ``actions`` ``B T-1``, ``source`` a list, ``start`` ``B``."""
    return default_collate(items)


def make_loader(dataset: Dataset, sampler: GlobalBatchSampler, *, num_workers: int, pin_memory: bool = False,
                seed: int = 0) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` reading this rank's micro-batches in the sampler's order."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=generator,
        prefetch_factor=2 if num_workers > 0 else None,
    )


def fixed_batch(dataset: Dataset, count: int) -> dict[str, Any]:
    """``count`` clips spread evenly over ``dataset`` (the same every call), batched."""
    n = len(cast(Sized, dataset))
    count = max(1, min(count, n))
    indices = sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(count)}) if count > 1 else [0]
    return collate_clips([dataset[i] for i in indices])
