"""Tokens of a training set, computed once with the frozen tokenizer and reused by every step and run.

In the dynamics stage the tokenizer is frozen, so encoding the same clip again at every visit is
wasted work (on CPU about a fifth of a step for ``genie-tiny``). With ``train.cache_tokens`` the
trainer encodes every training clip once, stores the tokens in ``train.token_cache_dir`` (default
``RUN/token_cache``) under a key made of the tokenizer's weights and the data set's clip index, and
serves them in the batches (``batch["tokens"]``); :meth:`~worldmodels.WorldModel.dynamics_loss`
then skips the encoder. A later run with the same tokenizer and data (a resumed run, a baseline
trained on the same tokenizer) finds the file and starts at once.

Axis legend: ``N`` clips, ``T`` frames, ``h w`` token grid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset


def dataset_fingerprint(dataset: Dataset) -> str | None:
    """A key naming exactly which clips ``dataset`` serves, or ``None`` when it cannot say.

    Data sets with a ``locate(index) -> (source, start)`` method (:class:`~worldmodels.data.clips.ClipDataset`)
    are fingerprinted from every clip's source and start and the clip settings, without reading frames.
    """
    locate = getattr(dataset, "locate", None)
    if not callable(locate):
        return None
    n = len(cast(Sized, dataset))
    digest = hashlib.sha256()
    settings = {key: getattr(dataset, key, None) for key in ("num_frames", "frame_skip", "stride", "image_size")}
    digest.update(json.dumps({"n": n, **settings}, sort_keys=True, default=str).encode())
    for index in range(n):
        digest.update(repr(locate(index)).encode())
    return digest.hexdigest()[:16]


def module_fingerprint(module: nn.Module) -> str:
    """A key of a module's weights and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class TokenCachedDataset(Dataset):
    """A data set whose items also carry their clip's tokens (``item["tokens"]``: ``T h w`` int64, or ``T h w L`` float32).

    Other attributes (``num_actions``, ``manifests``, ``locate``, ...) are those of the wrapped data set.

    Args:
        dataset: the clips.
        tokens: ``N T h w`` integer array (``N T h w L`` float for continuous latents), one entry per clip.
        path: the cache file the tokens came from.
    """

    def __init__(self, dataset: Dataset, tokens: np.ndarray, path: Path | None = None) -> None:
        if len(tokens) != len(cast(Sized, dataset)):
            raise ValueError(f"The token cache holds {len(tokens)} clips, the data set {len(cast(Sized, dataset))}.")
        self.dataset, self.tokens, self.path = dataset, tokens, path

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        tokens = np.asarray(self.tokens[index])
        item["tokens"] = torch.from_numpy(tokens.astype(np.float32 if tokens.dtype.kind == "f" else np.int64))
        return item

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "tokens", "path"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


@torch.no_grad()
def encode_dataset(
    dataset: Dataset,
    encode: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Tokens of every clip of ``dataset``: ``N T h w`` (int16 when the ids fit, else int32; continuous latents: float32).

    Args:
        dataset: clip dicts with ``video`` ``T C H W``.
        encode: ``B T C H W -> B T h w`` (e.g. the tokenizer's ``encode`` under the training autocast).
        batch_size: clips per call of ``encode``.
        device: where ``encode`` runs.
        progress: show a tqdm bar.
    """
    from tqdm.auto import tqdm

    n = len(cast(Sized, dataset))
    chunks: list[np.ndarray] = []
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="token cache", unit="batch"):
        video = torch.stack([dataset[i]["video"] for i in range(start, min(n, start + batch_size))]).to(device)
        chunks.append(encode(video).cpu().numpy())
    tokens = np.concatenate(chunks)
    if tokens.dtype.kind == "f":
        return tokens.astype(np.float32)
    dtype = np.int16 if int(tokens.max(initial=0)) < np.iinfo(np.int16).max else np.int32
    return tokens.astype(dtype)


def _precision_suffix(autocast: Callable[[], contextlib.AbstractContextManager[Any]], device: torch.device) -> str:
    """``""`` when ``autocast`` leaves ``device`` in full precision, else ``-<dtype>`` (``-bf16``)."""
    with autocast():
        if not torch.is_autocast_enabled(device.type):
            return ""
        dtype = torch.get_autocast_dtype(device.type)
    return "-" + {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype).removeprefix("torch."))


def cached_tokens(
    dataset: Dataset,
    tokenizer: Any,
    cache_dir: str | Path,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    progress: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> TokenCachedDataset | None:
    """``dataset`` with its tokens, from ``cache_dir`` or encoded now (and saved there).

    Returns ``None`` when the data set cannot be fingerprinted (then nothing is cached). The file
    is written atomically; an unreadable or mismatched file is recomputed.

    Args:
        dataset: the training clips.
        tokenizer: the frozen tokenizer (its ``encode`` and weights).
        cache_dir: where cache files live.
        autocast: the training step's autocast context (so cached tokens equal the ones a step
            would compute). The precision it encodes in is part of the file name (``-bf16``), so
            tokens encoded in one precision are never served to a run in another.
        device: where to encode.
        batch_size: clips per encoder call.
        progress: show a progress bar while encoding.
        log: called with a line when the cache is built or found.
    """
    data_key = dataset_fingerprint(dataset)
    if data_key is None:
        return None
    suffix = _precision_suffix(autocast, torch.device(device))
    path = Path(cache_dir) / f"tokens-{module_fingerprint(tokenizer)}-{data_key}{suffix}.npy"
    if path.is_file():
        try:
            tokens = np.load(path, mmap_mode="r")
            if len(tokens) == len(cast(Sized, dataset)):
                log(f"token cache: {len(tokens)} clips from {path}")
                return TokenCachedDataset(dataset, tokens, path)
        except (OSError, ValueError):
            pass
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        def encode(video: Tensor) -> Tensor:
            with autocast():
                return tokenizer.encode(video)

        log(f"token cache: encoding {len(cast(Sized, dataset))} clips once into {path}")
        tokens = encode_dataset(dataset, encode, batch_size=batch_size, device=device, progress=progress)
    finally:
        tokenizer.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, tokens)
    tmp.replace(path)
    return TokenCachedDataset(dataset, tokens, path)
