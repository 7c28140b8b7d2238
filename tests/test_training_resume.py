"""A training process killed with SIGKILL resumes to the same final step and the same losses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worldmodels.data.synthetic import SyntheticClipDataset
from worldmodels.training import TrainConfig, Trainer, list_checkpoints
from worldmodels.training.loggers import read_metrics

TESTS_DIR = Path(__file__).resolve().parent

# The worker is the real CLI; each step is slowed down a little so the kill lands mid-run.
WORKER = """
import sys, time
sys.path.insert(0, {tests!r})
import toy_components
from worldmodels.training.trainer import Trainer
step = Trainer.train_step
def slow_step(self, batches):
    out = step(self, batches)
    time.sleep(0.15)
    return out
Trainer.train_step = slow_step
from worldmodels.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""

STEPS = 24


def _settings(run_dir: Path) -> dict:
    return dict(stage="dynamics", steps=STEPS, batch_size=4, lr=3e-3, warmup=2, checkpoint_every=4, keep_last=2,
                log_every=1, image_every=0, progress=False, tensorboard=False, run_dir=str(run_dir))


def _records(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if "per_s" not in k}
            for r in read_metrics(run_dir / "dynamics" / "metrics.jsonl")]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    data = SyntheticClipDataset(16, 4, 16, seed=0)
    base = tmp_path / "base"
    Trainer("toy-world", TrainConfig(**{**_settings(base), "stage": "tokenizer", "steps": 3}), data).fit()
    killed = tmp_path / "killed"
    shutil.copytree(base, killed)
    Trainer("toy-world", TrainConfig(**_settings(base)), data).fit()  # the uninterrupted reference

    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(tests=str(TESTS_DIR)))
    overrides = ["model=toy-world", "data.synthetic=true", "data.synthetic_clips=16",
                 *(f"train.{k}={v}" for k, v in _settings(killed).items())]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(worker), *overrides], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    checkpoints = killed / "dynamics" / "checkpoints"
    deadline = time.monotonic() + 240
    try:
        while not any(step >= 8 for step, _ in list_checkpoints(checkpoints)):
            assert proc.poll() is None, f"the worker ended early:\n{proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "dynamics" / "final").exists(), "the run finished before it was killed"
    killed_at = max(step for step, _ in list_checkpoints(checkpoints))
    assert killed_at < STEPS

    resumed = subprocess.run([sys.executable, str(worker), *overrides, "resume=true"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resumed from step {killed_at}" in resumed.stderr
    assert [s for s, _ in list_checkpoints(checkpoints)] == [STEPS - 4, STEPS]
    assert not [p for p in checkpoints.iterdir() if ".tmp-" in p.name]
    assert _records(killed) == _records(base)  # identical, not merely close
