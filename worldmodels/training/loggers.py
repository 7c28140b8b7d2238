"""What a training run reports: a tqdm bar, TensorBoard scalars and images, ``metrics.jsonl``.

Only rank 0 writes. ``RUN/<stage>/metrics.jsonl`` holds one JSON object per line: training
records (``{"step", "loss", "lr", "grad_norm", "frames_per_s", "tokens_per_s", ...}``) every
``log_every`` steps and validation records (``{"step", "val/loss", ...}``). When a run resumes
from step ``s``, records of later steps (from the interrupted attempt) are dropped first, so the
file always describes one consistent run.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def truncate_metrics(path: str | os.PathLike[str], last_step: int) -> None:
    """Drop records with ``step > last_step`` (and unreadable lines) from a metrics file."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(record, dict) and int(record.get("step", 0)) <= last_step:
            kept.append(json.dumps(record, sort_keys=True))
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete records of a ``metrics.jsonl`` file."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _clean(value: Any) -> Any:
    if isinstance(value, Tensor):
        value = value.detach().float().item() if value.numel() == 1 else None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def video_grid(rows: list[Tensor], max_frames: int = 8) -> Tensor:
    """Tile videos into one image: each ``B T C H W`` video is a band of ``B`` rows of frames.

    Args:
        rows: videos with the same ``B C H W`` (e.g. ``[real, reconstruction]``).
        max_frames: frames shown per clip.

    Returns:
        ``C (len(rows) * B * H) (T * W)`` float image in ``[0, 1]``.

    Shapes:
        ``[B T C H W, ...] -> C H' W'``.
    """
    t = min(min(v.shape[1] for v in rows), max_frames)
    b = rows[0].shape[0]
    lines = []
    for i in range(b):
        for video in rows:
            frames = video[i, :t].float().clamp(0, 1)  # T C H W
            lines.append(torch.cat(list(frames), dim=-1))  # C H (T W)
    return torch.cat(lines, dim=-2).cpu()


class RunLogger:
    """Progress bar, TensorBoard and ``metrics.jsonl`` of one stage (inactive off rank 0).

    Args:
        stage_dir: ``RUN/<stage>``.
        total_steps: the stage's steps (for the progress bar).
        start_step: the step the run starts from (after a resume).
        active: whether this process writes (rank 0).
        progress: show the tqdm bar.
        tensorboard: write TensorBoard event files under ``RUN/<stage>/tensorboard``.
        stage: the stage name (the bar's label).
    """

    def __init__(
        self,
        stage_dir: Path,
        *,
        total_steps: int,
        start_step: int,
        active: bool,
        progress: bool = True,
        tensorboard: bool = True,
        stage: str = "",
    ) -> None:
        self.active = active
        self.metrics_path = stage_dir / METRICS_FILE
        self._bar = None
        self._writer = None
        self._file = None
        if not active:
            return
        stage_dir.mkdir(parents=True, exist_ok=True)
        if start_step > 0:
            truncate_metrics(self.metrics_path, start_step)
            self._file = open(self.metrics_path, "a")
        else:
            self._file = open(self.metrics_path, "w")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(stage_dir / TENSORBOARD_DIR), purge_step=start_step or None)
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc=stage, unit="step", dynamic_ncols=True,
                             file=sys.stderr)

    def log(self, step: int, values: dict[str, Any], kind: str = "train") -> None:
        """Record scalars of ``step`` (``kind`` prefixes TensorBoard tags: ``train/loss``)."""
        if not self.active:
            return
        record = {"step": step, **{k: _clean(v) for k, v in values.items()}}
        assert self._file is not None
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    tag = key if "/" in key else f"{kind}/{key}"
                    self._writer.add_scalar(tag, value, step)
        if self._bar is not None and kind == "train":
            def number(key: str) -> float:
                value = values.get(key, float("nan"))
                return float(value) if isinstance(value, (int, float, Tensor)) else float("nan")

            self._bar.set_postfix({
                "loss": f"{number('loss'):.4g}",
                "lr": f"{number('lr'):.2e}",
                "frames/s": f"{number('frames_per_s'):.1f}",
                "tokens/s": f"{number('tokens_per_s'):.0f}",
            }, refresh=False)

    def image(self, tag: str, image: Tensor, step: int) -> None:
        """Write a ``C H W`` image to TensorBoard."""
        if self.active and self._writer is not None:
            self._writer.add_image(tag, image.clamp(0, 1), step)

    def advance(self, steps: int = 1) -> None:
        """Move the progress bar."""
        if self._bar is not None:
            self._bar.update(steps)

    def message(self, text: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.active:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        """Flush and close everything."""
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
        if self._file is not None:
            self._file.close()
        self._bar = self._writer = self._file = None
