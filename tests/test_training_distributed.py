"""The trainer under ``torchrun`` on CPU (gloo, 2 processes): DDP and FSDP2 match one process.

The toy tokenizer stage is deterministic, so a 2-process run on the same global batch must give
the same loss curve as a 1-process run, and its checkpoints must resume on another world size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from worldmodels.checkpoint import load_tensors
from worldmodels.data.synthetic import SyntheticClipDataset
from worldmodels.training import TrainConfig, Trainer
from worldmodels.training.loggers import read_metrics

TESTS_DIR = Path(__file__).resolve().parent

WORKER = """
import gc
import sys
sys.path.insert(0, {tests!r})
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import toy_components  # registers toy-world
from worldmodels.cli import main

destroy = dist.destroy_process_group
def checked_destroy(*args, **kwargs):
    # a DDP wrapper alive when the group ends frees its gloo work at interpreter exit: SIGABRT on some runs
    alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    assert alive == 0, f"{{alive}} DistributedDataParallel wrapper(s) outlive the process group"
    destroy(*args, **kwargs)
dist.destroy_process_group = checked_destroy
sys.exit(main(["train", *sys.argv[1:]]))
"""

STEPS, BATCH, CLIPS = 6, 4, 16

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _overrides(run_dir: Path, **extra: object) -> list[str]:
    values = {"train.stage": "tokenizer", "train.steps": STEPS, "train.batch_size": BATCH, "train.lr": 3e-3,
              "train.warmup": 2, "train.checkpoint_every": 3, "train.keep_last": 0, "train.log_every": 1,
              "train.image_every": 0, "train.progress": False, "train.tensorboard": False,
              "data.synthetic": True, "data.synthetic_clips": CLIPS, "train.run_dir": str(run_dir), **extra}
    return ["model=toy-world", *(f"{k}={v}" for k, v in values.items())]


def _torchrun(tmp_path: Path, nproc: int, overrides: list[str]) -> subprocess.CompletedProcess:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(tests=str(TESTS_DIR)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(worker), *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, f"torchrun failed:\n{out.stdout[-4000:]}\n{out.stderr[-6000:]}"
    return out


def _reference(run_dir: Path) -> list[float]:
    """The same run in this process, one rank."""
    cfg = TrainConfig(stage="tokenizer", steps=STEPS, batch_size=BATCH, lr=3e-3, warmup=2, checkpoint_every=3,
                      keep_last=0, log_every=1, image_every=0, progress=False, tensorboard=False, run_dir=str(run_dir))
    Trainer("toy-world", cfg, SyntheticClipDataset(CLIPS, 4, 16, seed=0)).fit()
    return _losses(run_dir)


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "tokenizer" / "metrics.jsonl") if "loss" in r]


def _resume_on_one_process(run_dir: Path, tmp_path: Path) -> list[float]:
    """Drop the last checkpoint of a run and finish it on a single process."""
    again = tmp_path / "resumed"
    shutil.copytree(run_dir, again)
    shutil.rmtree(again / "tokenizer" / "checkpoints" / f"step-{STEPS:06d}")
    shutil.rmtree(again / "tokenizer" / "final")
    from worldmodels.cli import main

    with pytest.warns(UserWarning, match="written by 2 process"):
        assert main(["train", *_overrides(again, **{"train.resume": True})]) == 0
    return _losses(again)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_and_resume_on_one(strategy: str, tmp_path: Path) -> None:
    reference = _reference(tmp_path / "single")
    assert len(reference) == STEPS

    run = tmp_path / "two"
    _torchrun(tmp_path, 2, _overrides(run, **{"train.strategy": strategy}))
    assert _losses(run) == pytest.approx(reference, abs=1e-5)
    two = load_tensors(run / "tokenizer" / "final" / "model.safetensors")
    one = load_tensors(tmp_path / "single" / "tokenizer" / "final" / "model.safetensors")
    assert two.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-4)

    assert _resume_on_one_process(run, tmp_path) == pytest.approx(reference, abs=1e-5)


def test_fsdp_shards_each_transformer_block_of_the_trained_parts_only() -> None:
    import worldmodels
    from worldmodels.training import StageLoss
    from worldmodels.training.distributed import fsdp_units

    if "genie-tiny" not in worldmodels.list_components("model"):
        pytest.skip("the Genie plug-in is not installed")
    model = worldmodels.build("genie-tiny", device="meta")
    units = fsdp_units(StageLoss(model, "dynamics", freeze_action_model=True), ["dynamics"])
    assert units and all(any(u is m for m in model.dynamics.modules()) for u in units)
    assert not any(any(u is m for m in model.tokenizer.modules()) for u in units)


@pytest.mark.slow
def test_fsdp_keeps_codebook_updates_made_in_forward(tmp_path: Path) -> None:
    """A quantiser initialises its codebook from data and resets dead codes inside ``forward``;
    under FSDP those writes would go to a temporary unsharded copy. With the codebook replicated
    (``replicate_under_fsdp``), FSDP must follow DDP step for step."""
    import worldmodels

    if "genie-tiny" not in worldmodels.list_components("model"):
        pytest.skip("the Genie plug-in is not installed")
    small = ["model=genie-tiny", "tokenizer=st-vivit", "model.image_size=16", "tokenizer.patch_size=4", "tokenizer.vocab_size=16",
             "tokenizer.encoder_dim=32", "tokenizer.encoder_depth=1", "tokenizer.encoder_heads=2",
             "tokenizer.decoder_dim=32", "tokenizer.decoder_depth=1", "tokenizer.decoder_heads=2",
             "tokenizer.dead_code_threshold=0.5"]
    runs = {}
    for strategy in ("ddp", "fsdp"):
        run = tmp_path / strategy
        overrides = [*small, *_overrides(run, **{"train.strategy": strategy})[1:]]
        _torchrun(tmp_path, 2, overrides)
        runs[strategy] = run
    assert _losses(runs["fsdp"]) == pytest.approx(_losses(runs["ddp"]), abs=1e-5)
    fsdp = load_tensors(runs["fsdp"] / "tokenizer" / "final" / "model.safetensors")
    ddp = load_tensors(runs["ddp"] / "tokenizer" / "final" / "model.safetensors")
    torch.testing.assert_close(fsdp["tokenizer.quantizer.codebook"], ddp["tokenizer.quantizer.codebook"],
                               atol=1e-5, rtol=1e-4)
