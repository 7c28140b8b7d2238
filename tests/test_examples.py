"""Every script in examples/ runs with its tiny settings (a few seconds each) and writes what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# script -> (extra arguments, files it must write in its working directory)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "build_and_sample.py": (["--tiny", "--out", "sample.gif"], ["sample.gif"]),
    "swap_tokenizer.py": (["--tiny"], []),
    "train_on_videos.py": (["--tiny", "--out", "run"], ["run/generated.gif", "run/run/dynamics/final/config.json"]),
    "random_agent_env.py": (["--tiny", "--out", "episode.gif"], ["episode.gif"]),
}


def _run(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_every_example_script_is_covered() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(CASES), f"examples/ holds {scripts}; add new scripts to CASES in {__file__}"


def _check_swap(result: subprocess.CompletedProcess, cwd: Path) -> None:
    lines = result.stdout.splitlines()
    assert "tokenizer frame-vq" in lines[0] and "tokenizer st-vivit" in lines[1], result.stdout
    assert "grid 8x8" in lines[1] and "dynamics vocab  512" in lines[1], result.stdout  # the dynamics follows
    assert "grid 4x4" in lines[2], result.stdout


def _check_resume(result: subprocess.CompletedProcess, cwd: Path) -> None:
    again = _run("train_on_videos.py", CASES["train_on_videos.py"][0], cwd)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already finished") == 2, again.stdout  # a second run resumes the finished run
    assert "wrote" not in again.stdout  # the synthetic videos are written once


CHECKS = {"swap_tokenizer.py": _check_swap, "train_on_videos.py": _check_resume}


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_with_tiny_settings(script: str, tmp_path: Path) -> None:
    args, outputs = CASES[script]
    result = _run(script, args, tmp_path)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    for name in outputs:
        assert (tmp_path / name).is_file(), f"{script} did not write {name}:\n{result.stdout}"
    assert "Traceback" not in result.stderr
    if script in CHECKS:
        CHECKS[script](result, tmp_path)
