"""Checkpoint directories: JSON config + safetensors weights, written atomically, loaded without pickle.

A checkpoint is a directory::

    config.json        the resolved model config, component names, library version, format
    model.safetensors  the weights

Training checkpoints (written by :mod:`worldmodels.training`) add ``state.safetensors``
(optimizer tensors, RNG states) and ``state.json`` (step, scheduler, data position).

Writes go to a temporary sibling directory that replaces the old one only when complete, so
a crash mid-save leaves the previous checkpoint intact. Nothing here ever unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, corrupt, or for another model."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (used to detect truncated or altered weight files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that atomically becomes ``path`` when the block succeeds.

    If the block raises, the temporary directory is removed and ``path`` is untouched. The
    old directory is moved aside (``path.old-*``) before the new one takes its place and is
    deleted afterwards; :func:`recover_directory` restores it if a crash struck in between.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        for child in tmp.iterdir():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = None
        if final.exists():
            old = final.with_name(f"{final.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_directory(path: str | os.PathLike[str]) -> Path:
    """Return ``path``; if it is missing but a moved-aside ``path.old-*`` exists, restore that first."""
    final = Path(path)
    if not final.exists():
        olds = sorted(final.parent.glob(f"{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.replace(olds[-1], final)
    return final


def save_tensors(tensors: Mapping[str, Tensor], path: str | os.PathLike[str]) -> None:
    """Save a flat name->tensor dict as safetensors (shared storage is copied apart)."""
    from safetensors.torch import save_file

    seen: set[tuple[int, Any]] = set()
    out: dict[str, Tensor] = {}
    for name, tensor in tensors.items():
        t = tensor.detach().cpu()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else (id(t), 0)
        out[name] = t.clone().contiguous() if key in seen or not t.is_contiguous() else t
        seen.add(key)
    save_file(out, str(path))


def load_tensors(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Load a safetensors file, turning any read failure into a :class:`CheckpointError`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Weights file {path} does not exist; is this a worldmodels checkpoint directory?")
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(
            f"Could not read weights file {path}: {exc}. The file is truncated or corrupt; "
            "re-save the model or restore the checkpoint from a backup."
        ) from exc


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, turning failures into :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; is {path.parent} a worldmodels checkpoint directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); the checkpoint is corrupt.") from exc


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, Tensor], Any]:
    """Split a nested state (dicts, lists, tensors, numbers) into tensors and a JSON skeleton.

    Tensors are replaced in the skeleton by ``{"__tensor__": key}``; :func:`unflatten_state`
    reverses it. Used to store optimizer and RNG states without pickle.
    """
    tensors: dict[str, Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, Tensor):
            tensors[path] = obj
            return {"__tensor__": path}
        if isinstance(obj, Mapping):
            if any(not isinstance(k, (str, int)) for k in obj):
                raise TypeError(f"Cannot store mapping with non str/int keys at {path!r}")
            return {"__dict__": [[k, walk(v, f"{path}.{k}")] for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            return {"__list__": [walk(v, f"{path}.{i}") for i, v in enumerate(obj)], "tuple": isinstance(obj, tuple)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"Cannot store object of type {type(obj).__name__} at {path!r} without pickle.")

    skeleton = walk(state, prefix or "state")
    return tensors, skeleton


def unflatten_state(tensors: Mapping[str, Tensor], skeleton: Any) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten_state(tensors, v) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [unflatten_state(tensors, v) for v in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
    return skeleton


def state_dict_mismatch(
    expected: Mapping[str, Tensor], weights: Mapping[str, Tensor], optional: Iterable[str] = ()
) -> tuple[list[str], list[str], list[str]]:
    """How ``weights`` differ from the ``expected`` state dict, key by key.

    Args:
        expected: the state dict of the model to load into.
        weights: the state dict read from a file.
        optional: expected keys whose absence is not a problem.

    Returns:
        ``(missing, unexpected, mis_shaped)``: expected keys absent from ``weights`` (less
        ``optional``), keys of ``weights`` the model lacks, and keys present in both with other
        shapes; each in its state dict's order.
    """
    skip = set(optional)
    missing = [k for k in expected if k not in weights and k not in skip]
    unexpected = [k for k in weights if k not in expected]
    mis_shaped = [k for k, v in expected.items() if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    return missing, unexpected, mis_shaped


def check_state_dict(
    model: torch.nn.Module, weights: Mapping[str, Tensor], source: str, model_name: str | None = None
) -> None:
    """Raise a :class:`CheckpointError` naming the mismatch if ``weights`` do not fit ``model``."""
    expected = model.state_dict()
    missing, unexpected, mis_shaped = state_dict_mismatch(expected, weights)
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}" for k in mis_shaped]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {'; '.join(shapes[:3])})")
        who = f" built as {model_name!r}" if model_name else ""
        raise CheckpointError(
            f"The weights in {source} do not fit the model{who}: {', '.join(parts)}. "
            "The checkpoint was saved from a different architecture; load it with the config saved beside "
            "it (WorldModel.from_pretrained(dir) without overrides) or build the matching model."
        )


FINAL_DIR = "final"
"""A finished training stage's model: ``RUN/<stage>/final`` (see :mod:`worldmodels.training`)."""

STAGE_PREFERENCE: tuple[str, ...] = ("dynamics", "lam", "tokenizer")
"""For a run directory of those stages: the stage whose ``final`` holds the most complete model."""


def resolve_model_dir(path: str | os.PathLike[str]) -> Path:
    """The ``WorldModel.save_pretrained`` directory that ``path`` names: the one loader's path rule.

    ``path`` is such a directory (``config.json`` + ``model.safetensors``; a training checkpoint
    ``RUN/<stage>/checkpoints/step-N`` has the same layout) or a training run directory: then
    ``RUN/dynamics/final`` when it exists, otherwise the most recently written ``RUN/<stage>/final``.

    Raises:
        CheckpointError: when ``path`` does not exist, is a file, or holds no finished model (the
            message lists the training checkpoints found, if any, which can be passed instead).
    """
    path = recover_directory(path)
    expected = (
        "Pass a WorldModel checkpoint directory (config.json + model.safetensors, written by "
        "WorldModel.save_pretrained), a training checkpoint RUN/<stage>/checkpoints/step-N, or a training run "
        "directory holding RUN/<stage>/final."
    )
    if not path.exists():
        raise CheckpointError(f"{path} does not exist. {expected}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a checkpoint directory. {expected}")
    if (path / CONFIG_FILE).is_file():
        return path
    stages = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    finals = [f for f in (recover_directory(d / FINAL_DIR) for d in stages) if (f / CONFIG_FILE).is_file()]
    for stage in STAGE_PREFERENCE[:1]:
        if path / stage / FINAL_DIR in finals:
            return path / stage / FINAL_DIR

    def rank(final: Path) -> tuple[float, int]:
        name = final.parent.name
        order = len(STAGE_PREFERENCE) - STAGE_PREFERENCE.index(name) if name in STAGE_PREFERENCE else 0
        return (final / CONFIG_FILE).stat().st_mtime, order

    if finals:
        return max(finals, key=rank)
    steps = sorted(path.glob("*/checkpoints/step-*[0-9]"))
    hint = ""
    if steps:
        hint = (
            f" The run has training checkpoints but no finished stage, e.g. {steps[-1]}; pass one of them to "
            "use an unfinished model, or resume training (worldmodels train ... train.resume=true)."
        )
    found = ", ".join(p.name for p in stages[:8]) or "nothing"
    raise CheckpointError(
        f"{path} holds no model: it has no {CONFIG_FILE} and no RUN/<stage>/{FINAL_DIR}/{CONFIG_FILE} "
        f"(subdirectories: {found}).{hint} {expected}"
    )
