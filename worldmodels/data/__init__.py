"""Data: video readers, clip datasets, recorders and synthetic worlds.

The modules: :mod:`~worldmodels.data.video_io` (read and write video files with PyAV),
:mod:`~worldmodels.data.shards` (uint8 ``.npz`` shards with a manifest),
:mod:`~worldmodels.data.clips` (:class:`~worldmodels.data.clips.ClipDataset` over videos, shards
and arrays), :mod:`~worldmodels.data.recorders` (``worldmodels record``) and
:mod:`~worldmodels.data.synthetic` (the seeded moving-sprite world). Their main names are
importable from here, each module loaded on first use::

    from worldmodels.data import ClipDataset, moving_sprites, read_video, record
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ClipDataset": "worldmodels.data.clips",
    "SkippedFileWarning": "worldmodels.data.clips",
    "moving_sprites": "worldmodels.data.synthetic",
    "read_video": "worldmodels.data.video_io",
    "write_video": "worldmodels.data.video_io",
    "probe_video": "worldmodels.data.video_io",
    "VideoReadError": "worldmodels.data.video_io",
    "ShardWriter": "worldmodels.data.shards",
    "read_manifest": "worldmodels.data.shards",
    "record": "worldmodels.data.recorders",
    "get_recorder": "worldmodels.data.recorders",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
