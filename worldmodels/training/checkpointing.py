"""Training checkpoints: written atomically, kept the last K, loaded without pickle, checked on load.

A training checkpoint is a directory ``RUN/<stage>/checkpoints/step-000500/``::

    config.json         the model config (as written by WorldModel.save_pretrained)
    model.safetensors   the model weights (so WorldModel.from_pretrained(dir) loads it)
    state.safetensors   optimizer tensors and every rank's RNG states
    state.json          step, data position, scheduler state, the optimizer's and RNG's JSON
                        skeletons (worldmodels.checkpoint.flatten_state), the settings of the
                        run, and the SHA-256 of state.safetensors

The directory is built under a temporary name and renamed into place only when complete
(:func:`worldmodels.checkpoint.atomic_directory`), so a process killed while writing leaves no
``step-*`` directory at all. On resume, checkpoints are tried newest first; one that fails its
checksums or cannot be read is reported with a warning, renamed to ``step-XXXXXX.corrupt`` and the
previous one is used.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from worldmodels.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_directory,
    file_sha256,
    flatten_state,
    load_tensors,
    read_json,
    save_tensors,
    unflatten_state,
    write_json,
)

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
CHECKPOINT_KIND = "worldmodels.TrainingCheckpoint"
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^step-(\d+)$")


class CheckpointWarning(UserWarning):
    """A checkpoint was unreadable and skipped (named in the message)."""


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint after ``step`` optimizer steps (``step-000500``)."""
    return f"step-{step:06d}"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of the complete-looking checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete half-written checkpoint directories left by a killed process; returns them.

    Only call this when no other process writes into ``directory``.
    """
    directory = Path(directory)
    removed = []
    if directory.is_dir():
        for child in directory.iterdir():
            if child.name.startswith(".step-") and ".tmp-" in child.name and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
            elif _NAME.match(child.name.split(".old-")[0]) and ".old-" in child.name:
                target = child.with_name(child.name.split(".old-")[0])
                if target.exists():
                    shutil.rmtree(child, ignore_errors=True)
                else:  # a crash between the two renames of a re-save: the old copy is the checkpoint
                    os.replace(child, target)
                removed.append(child)
    return removed


def prune_checkpoints(directory: str | os.PathLike[str], keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints (``0`` keeps all); returns the deleted."""
    if keep_last <= 0:
        return []
    checkpoints = list_checkpoints(directory)
    doomed = [path for _, path in checkpoints[:-keep_last]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


# ---------------------------------------------------------------------------------------- RNG
def _float_bits(value: float | None) -> tuple[int, int]:
    if value is None:
        return 0, 0
    return 1, struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _bits_float(flag: int, bits: int) -> float | None:
    return struct.unpack("<d", struct.pack("<q", int(bits)))[0] if flag else None


def capture_rng(device: torch.device | None = None) -> dict[str, Tensor]:
    """This process's random generator states as tensors (torch CPU, CUDA, numpy, python).

    Shapes:
        ``torch`` uint8 ``(S,)``; ``cuda`` uint8 ``(S',)`` (empty without CUDA); ``numpy`` int64
        ``(627,)``; ``python`` int64 ``(628,)``.
    """
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    if kind != "MT19937":  # pragma: no cover - numpy's legacy global generator is always MT19937
        raise CheckpointError(f"Cannot store numpy's global random state of kind {kind!r}.")
    np_state = torch.tensor([*keys.astype(np.int64).tolist(), int(pos), int(has_gauss),
                             _float_bits(cached)[1]], dtype=torch.int64)
    version, internal, gauss_next = random.getstate()
    py_state = torch.tensor([int(version), *internal, *_float_bits(gauss_next)], dtype=torch.int64)
    if device is not None and device.type == "cuda":
        cuda_state = torch.cuda.get_rng_state(device)
    else:
        cuda_state = torch.empty(0, dtype=torch.uint8)
    return {"torch": torch.get_rng_state(), "cuda": cuda_state, "numpy": np_state, "python": py_state}


def restore_rng(states: Mapping[str, Tensor], device: torch.device | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(states["torch"].to(torch.uint8).cpu())
    cuda_state = states.get("cuda")
    if cuda_state is not None and cuda_state.numel() and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_state.to(torch.uint8).cpu(), device)
    np_values = states["numpy"].tolist()
    np.random.set_state(("MT19937", np.array(np_values[:624], dtype=np.uint32), int(np_values[624]),
                         int(np_values[625]), cast(float, _bits_float(1, np_values[626]))))
    py = states["python"].tolist()
    random.setstate((int(py[0]), tuple(int(v) for v in py[1:-2]), _bits_float(py[-2], py[-1])))


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    seed = int(seed) % (2**63)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from a tuple of ints / strings (stable across runs and platforms)."""
    ints = [p if isinstance(p, int) else int.from_bytes(p.encode(), "little") % (2**32) for p in parts]
    return int(np.random.SeedSequence([abs(i) for i in ints]).generate_state(2, np.uint64)[0] >> np.uint64(1))


# ---------------------------------------------------------------------------------------- save / load
def write_checkpoint(
    directory: str | os.PathLike[str],
    *,
    save_model: Callable[[Path], Any],
    tensors: Mapping[str, Tensor],
    state: Mapping[str, Any],
) -> Path:
    """Write one training checkpoint atomically (call on one rank only).

    Args:
        directory: ``.../checkpoints/step-000500``.
        save_model: writes ``config.json`` and ``model.safetensors`` into the directory it is
            given (``WorldModel.save_pretrained``).
        tensors: optimizer and RNG tensors for ``state.safetensors``.
        state: JSON-ready training state for ``state.json``.

    Returns:
        The checkpoint directory.
    """
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        save_model(tmp)
        save_tensors(dict(tensors), tmp / STATE_TENSORS)
        meta = {
            "kind": CHECKPOINT_KIND,
            "format_version": CHECKPOINT_FORMAT,
            "state_sha256": file_sha256(tmp / STATE_TENSORS),
            "written_at": time.time(),
        }
        write_json({**dict(state), **meta}, tmp / STATE_JSON)
    return directory


@dataclass
class LoadedCheckpoint:
    """A training checkpoint read back from disk.

    Attributes:
        path: its directory.
        state: the contents of ``state.json``.
        tensors: the contents of ``state.safetensors``.
        model_weights: the model's state dict (``model.safetensors``).
    """

    path: Path
    state: dict[str, Any]
    tensors: dict[str, Tensor]
    model_weights: dict[str, Tensor]

    @property
    def step(self) -> int:
        """Optimizer steps taken when it was written."""
        return int(self.state["step"])

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's full state dict (tensors put back into the JSON skeleton)."""
        return unflatten_state({k: v for k, v in self.tensors.items() if k.startswith("optim")},
                               self.state["optimizer"])

    def rng_states(self, rank: int) -> dict[str, Tensor] | None:
        """The RNG states rank ``rank`` saved, or ``None`` if that rank did not exist."""
        prefix = f"rng.rank{rank}."
        found = {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        return found or None


def read_checkpoint(directory: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Read and verify a training checkpoint.

    Raises:
        CheckpointError: when a file is missing, unreadable, or fails its checksum.
    """
    directory = Path(directory)
    state = read_json(directory / STATE_JSON)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND or "step" not in state:
        raise CheckpointError(f"{directory / STATE_JSON} is not a worldmodels training checkpoint state.")
    if int(state.get("format_version", 0)) > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{directory} was written by a newer worldmodels (training checkpoint format "
            f"{state['format_version']} > {CHECKPOINT_FORMAT}); upgrade worldmodels to resume it."
        )
    state_file = directory / STATE_TENSORS
    if not state_file.is_file() or file_sha256(state_file) != state.get("state_sha256"):
        raise CheckpointError(f"{state_file} is missing or does not match the checksum in {STATE_JSON}.")
    config = read_json(directory / CONFIG_FILE)
    expected = config.get("meta", {}).get("weights_sha256") if isinstance(config, dict) else None
    weights_file = directory / WEIGHTS_FILE
    if not weights_file.is_file() or (expected and file_sha256(weights_file) != expected):
        raise CheckpointError(f"{weights_file} is missing or does not match the checksum in {CONFIG_FILE}.")
    return LoadedCheckpoint(directory, state, load_tensors(state_file), load_tensors(weights_file))


def latest_checkpoint(directory: str | os.PathLike[str], quarantine: bool = True) -> LoadedCheckpoint | None:
    """The newest readable checkpoint in ``directory``, or ``None`` if there is none.

    Each unreadable checkpoint met on the way is reported with a :class:`CheckpointWarning`
    and, with ``quarantine``, renamed to ``step-XXXXXX.corrupt`` so later runs skip it too.
    """
    for step, path in reversed(list_checkpoints(directory)):
        try:
            return read_checkpoint(path)
        except CheckpointError as exc:
            aside = path.with_name(f"{path.name}.corrupt")
            note = ""
            if quarantine:
                if aside.exists():
                    shutil.rmtree(aside, ignore_errors=True)
                os.replace(path, aside)
                note = f" It was renamed to {aside.name}."
            warnings.warn(
                f"Training checkpoint {path} (step {step}) is unusable: {exc}{note} Falling back to the "
                "previous checkpoint.",
                CheckpointWarning,
                stacklevel=2,
            )
    return None


def pack_training_state(optimizer_state: Mapping[str, Any], rng_by_rank: list[dict[str, Tensor]]
                        ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors for ``state.safetensors`` and the optimizer skeleton for ``state.json``."""
    tensors, skeleton = flatten_state(dict(optimizer_state), prefix="optim")
    for rank, states in enumerate(rng_by_rank):
        for name, tensor in states.items():
            tensors[f"rng.rank{rank}.{name}"] = tensor
    return tensors, skeleton
