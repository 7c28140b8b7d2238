"""The dynamics stage's token cache: the same losses as encoding at every step, built once, reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from worldmodels.data.clips import ClipDataset
from worldmodels.data.synthetic import moving_sprites
from worldmodels.training import TrainConfig, Trainer
from worldmodels.training.token_cache import TokenCachedDataset, cached_tokens, dataset_fingerprint


def _clips(tmp_path: Path) -> ClipDataset:
    sprites = moving_sprites(6, num_frames=8, image_size=16, seed=0)
    frames = (sprites.video.permute(0, 1, 3, 4, 2).numpy() * 255).round().astype(np.uint8)  # E T H W C
    np.save(tmp_path / "frames.npy", frames)
    return ClipDataset(tmp_path / "frames.npy", num_frames=4)


def _cfg(run_dir: Path, **overrides) -> TrainConfig:
    values = dict(stage="dynamics", steps=6, batch_size=4, lr=3e-3, warmup=0, log_every=1, image_every=0,
                  checkpoint_every=0, run_dir=str(run_dir), progress=False, tensorboard=False, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def _tokenizer_run(tmp_path: Path, data: ClipDataset) -> Path:
    run = tmp_path / "tok"
    Trainer("toy-world", _cfg(run, stage="tokenizer", steps=4), data).fit()
    return run


def test_cached_tokens_give_the_same_training_and_are_reused(tmp_path: Path) -> None:
    data = _clips(tmp_path)
    tok_run = _tokenizer_run(tmp_path, data)
    runs = {}
    for name, cache in (("plain", False), ("cached", True), ("again", True)):
        run = tmp_path / name
        shutil.copytree(tok_run / "tokenizer", run / "tokenizer")
        trainer = Trainer("toy-world", _cfg(run, cache_tokens=cache, token_cache_dir=str(tmp_path / "cache")), data)
        result = trainer.fit()
        runs[name] = [r["loss"] for r in result.history if "loss" in r]
        if cache:
            assert isinstance(trainer.train_data, TokenCachedDataset)
    assert runs["plain"] == runs["cached"] == runs["again"]
    files = list((tmp_path / "cache").glob("tokens-*.npy"))
    assert len(files) == 1  # the second cached run found the first one's file


def test_cache_key_follows_the_tokenizer_and_the_data(tmp_path: Path) -> None:
    data = _clips(tmp_path)
    import worldmodels

    tok = worldmodels.build("toy-world").tokenizer
    first = cached_tokens(data, tok, tmp_path / "c")
    assert first is not None and first[0]["tokens"].shape == (4, *tok.token_grid(16, 16))
    torch.testing.assert_close(first[2]["tokens"], tok.encode(data[2]["video"][None])[0])
    with torch.no_grad():
        tok.enc.weight.add_(1.0)
    cached_tokens(data, tok, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npy"))) == 2  # other weights, another file
    other = ClipDataset(tmp_path / "frames.npy", num_frames=3)
    assert dataset_fingerprint(other) != dataset_fingerprint(data)
    assert dataset_fingerprint(list(range(3))) is None  # no locate(): nothing to key a cache on


def test_cache_key_follows_the_autocast_precision(tmp_path: Path) -> None:
    import functools

    import worldmodels

    data = _clips(tmp_path)
    tok = worldmodels.build("toy-world").tokenizer
    bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    off = functools.partial(torch.autocast, "cpu", enabled=False)
    for autocast in (off, bf16, bf16):
        cached_tokens(data, tok, tmp_path / "c", autocast=autocast)
    names = sorted(path.name for path in (tmp_path / "c").glob("*.npy"))
    assert len(names) == 2 and names[0].endswith("-bf16.npy") != names[1].endswith("-bf16.npy")
