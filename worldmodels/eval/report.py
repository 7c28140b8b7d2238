"""Evaluation reports: every metric of the specification on a held-out split, as numbers and pictures.

:func:`evaluate` loads a world model (or takes one), draws clips from a held-out split and
measures

* tokenizer reconstruction: PSNR and SSIM per clip (mean, spread) and per frame position;
* controllability: the Genie paper's Delta_t PSNR for every ``t`` of the horizon (the paper
  reports ``t = 4``), with the spread over clips;
* latent actions: usage histogram and entropy; where the data has true actions, the NMI between
  latent and true actions next to the NMI of a random assignment with the same usage histogram,
  the latent x true contingency table (with the environment's action names) and a probe's
  accuracy next to chance;
* codebook usage and perplexity of the tokenizer (over the held-out tokens) and of the LAM;
* FVD when local I3D weights are given, otherwise a statement that it was skipped and why;
* seconds spent per metric, and every setting needed to reproduce the numbers.

The result is an :class:`EvalReport`; :meth:`EvalReport.save` (called by :func:`evaluate`
when ``out_dir`` is given) writes

* ``report.json``: all numbers, machine-readable (see :meth:`EvalReport.to_dict`);
* ``report.md``: the headline table, Delta_t PSNR per ``t``, and the contingency table;
* ``reconstruction.png``: real / reconstructed / generated (inferred actions) frames over time;
* ``latent_actions.png``: one row per latent action, all rolled from the same prompt frame;
* ``delta_psnr.png``: the Delta_t PSNR curve over ``t`` with a band of one standard deviation.

Axis legend: ``N`` clips, ``T`` frames of a clip, ``C H W`` pixels, ``h w`` token grid,
``A`` latent actions, ``K`` true actions, ``S`` steps rolled per latent action in the figure.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from worldmodels._version import __version__
from worldmodels.checkpoint import FINAL_DIR, resolve_model_dir
from worldmodels.eval.codebook import CodebookStats, codebook_stats
from worldmodels.eval.controllability import ControllabilityResult, delta_psnr
from worldmodels.eval.fvd import I3D_INPUT_SIZE, FVDResult, compute_fvd
from worldmodels.eval.image_metrics import psnr, ssim
from worldmodels.eval.latent_actions import (
    collapse_actions,
    contingency_table,
    few_label_accuracy,
    linear_probe,
    nmi_from_table,
    probe_accuracy,
)
from worldmodels.world_model import WorldModel

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "FIGURE_FILES",
    "PAPER_T",
    "REPORT_FORMAT",
    "REPORT_FORMAT_VERSION",
    "EvalReport",
    "GridLayout",
    "draw_curve",
    "draw_frame_grid",
    "evaluate",
    "ground_truth_metrics",
    "picture_scale",
    "random_nmi_baseline",
    "resolve_checkpoint",
    "spread_indices",
    "upscale",
]

PAPER_T: int = 4
"""The frame at which the Genie paper reports Delta_t PSNR."""

REPORT_FORMAT: str = "worldmodels-eval-report"
"""The ``format`` entry of ``report.json``."""

REPORT_FORMAT_VERSION: int = 1
"""The ``format_version`` entry of ``report.json``."""

FIGURE_FILES: tuple[str, ...] = ("reconstruction.png", "latent_actions.png", "delta_psnr.png")
"""The pictures :meth:`EvalReport.save` writes."""



# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


resolve_checkpoint = resolve_model_dir
"""The model directory a path names (:func:`worldmodels.checkpoint.resolve_model_dir`, the one loader's rule)."""


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class _Clips:
    """The held-out clips of one evaluation.

    Shapes:
        ``video`` ``N T C H W`` float in ``[0, 1]``; ``actions`` ``N T-1`` int64 (``-1`` unknown).
    """

    video: Tensor
    actions: Tensor
    indices: list[int]
    dataset_size: int
    num_true_actions: int | None
    action_names: list[str] | None
    description: str
    action_groups: dict[str, list[int]] | None = None
    rewards: Tensor | None = None
    terminated: Tensor | None = None


LATENT_FIGURE_PROMPTS = 3
"""Prompts each latent action is rolled from in ``latent_actions.png``."""


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(total)``, starting at 0.

    Taking every ``total / count``-th clip instead of the first ``count`` reaches more episodes
    of a split whose episodes are cut into several consecutive clips.
    """
    count = min(count, total)
    return [(i * total) // count for i in range(count)]


def _dataset_action_groups(dataset: Any, names: list[str] | None) -> dict[str, list[int]] | None:
    """The visible groups of the true actions (``env.action_groups`` of the manifests), if they agree.

    Procgen data sets recorded before the manifest carried groups get them from their action
    names (:func:`~worldmodels.data.recorders.procgen_action_groups`).
    """
    from worldmodels.data.clips import ClipDataset

    groups = getattr(dataset, "action_groups", None)
    if isinstance(dataset, ClipDataset):
        found = {json.dumps(m.get("env", {}).get("action_groups"), sort_keys=True) for m in dataset.manifests}
        groups = json.loads(found.pop()) if len(found) == 1 else None
        kinds = {m.get("env", {}).get("kind") for m in dataset.manifests}
        if groups is None and kinds == {"procgen"} and names is not None:
            from worldmodels.data.recorders import PROCGEN_COMBOS, procgen_action_groups

            if names == ["+".join(c) or "NOOP" for c in PROCGEN_COMBOS]:
                groups = procgen_action_groups()
    if not isinstance(groups, Mapping) or not groups:
        return None
    return {str(k): [int(i) for i in v] for k, v in groups.items()}


def _dataset_action_info(dataset: Any) -> tuple[int | None, list[str] | None]:
    """Number of true actions and their names, from a data set's manifests or attributes."""
    from worldmodels.data.clips import ClipDataset, SyntheticClipDataset

    num = getattr(dataset, "num_actions", None)
    names = getattr(dataset, "action_names", None)
    if isinstance(dataset, ClipDataset):
        found = {tuple(m.get("env", {}).get("action_names") or ()) for m in dataset.manifests}
        if len(found) == 1:
            names = list(found.pop()) or None
    elif isinstance(dataset, SyntheticClipDataset):
        from worldmodels.data.synthetic import ACTION_NAMES

        names = list(ACTION_NAMES)
    num = int(num) if isinstance(num, (int, np.integer)) else None
    names = [str(n) for n in names] if names else None
    if names is not None and num is not None and len(names) != num:
        names = None  # names that do not match the action count would mislabel the table
    if num is None and names is not None:
        num = len(names)
    return num, names


def _load_clips(
    data: Any, model: WorldModel, split: str | None, max_clips: int | None
) -> _Clips:
    from worldmodels.data.clips import ClipDataset

    if isinstance(data, (str, os.PathLike)):
        dataset: Any = ClipDataset(data, num_frames=model.num_frames, image_size=model.image_size, split=split)
        description = str(data)
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        dataset = data
        description = type(data).__name__
    else:
        raise TypeError(
            f"data must be a directory of clips (recorded shards or videos) or a data set of clip dicts "
            f"({{'video': T C H W, 'actions': T-1}}), got {type(data).__name__}."
        )
    if len(dataset) == 0:
        raise ValueError(f"The data set {description} holds no clips; nothing to evaluate.")
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be at least 1 (or None for every clip), got {max_clips}.")
    indices = spread_indices(len(dataset), len(dataset) if max_clips is None else max_clips)
    videos, actions, rewards, ended = [], [], [], []
    for i in indices:
        item = dataset[i]
        if not isinstance(item, Mapping) or "video" not in item:
            raise TypeError(
                f"Item {i} of {description} is a {type(item).__name__}; evaluation needs dicts with a 'video' "
                "(T C H W) and optionally 'actions' (T-1, -1 where unknown), as ClipDataset serves."
            )
        video = torch.as_tensor(item["video"])
        videos.append(video)
        true = item.get("actions")
        if true is None:
            true = torch.full((video.shape[0] - 1,), -1, dtype=torch.long)
        actions.append(torch.as_tensor(true).long())
        reward, done = item.get("rewards"), item.get("terminated")
        rewards.append(torch.full((video.shape[0] - 1,), float("nan")) if reward is None
                       else torch.as_tensor(reward).float())
        ended.append(torch.full((video.shape[0] - 1,), -1, dtype=torch.long) if done is None
                     else torch.as_tensor(done).long())
    shapes = {tuple(v.shape) for v in videos}
    if len(shapes) != 1:
        raise ValueError(f"The clips of {description} differ in shape ({sorted(shapes)}); evaluation stacks them.")
    video_NTCHW = torch.stack(videos).float()
    t = video_NTCHW.shape[1]
    expected = (model.num_frames, model.in_channels, *model.image_size)
    if tuple(video_NTCHW.shape[1:]) != expected:
        raise ValueError(
            f"Clips of {description} are T C H W = {tuple(video_NTCHW.shape[1:])} but the model works on "
            f"{expected} (num_frames, in_channels, image_size); pass a directory (clips are then cut and "
            "resized to the model) or a data set built with the model's num_frames and image_size."
        )
    true_NT = torch.stack(actions)
    if true_NT.shape != (len(indices), t - 1):
        raise ValueError(
            f"'actions' of {description} must have T-1 = {t - 1} entries per clip, got {tuple(true_NT.shape)}."
        )
    num_true, names = _dataset_action_info(dataset)
    groups = _dataset_action_groups(dataset, names)
    return _Clips(video_NTCHW, true_NT, indices, len(dataset), num_true, names, description, groups,
                  torch.stack(rewards), torch.stack(ended))


# ---------------------------------------------------------------------------------------------
# Metric helpers
# ---------------------------------------------------------------------------------------------


def _spread(values: Tensor) -> dict[str, Any]:
    """Mean, standard deviation (n - 1), standard error, min, max and count of 1-D values."""
    v = values.detach().double().reshape(-1).cpu()
    n = int(v.numel())
    std = float(v.std(correction=1)) if n > 1 else None
    return {
        "mean": float(v.mean()),
        "std": std,
        "sem": std / math.sqrt(n) if std is not None else None,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": n,
    }


def random_nmi_baseline(
    latent: Tensor, true: Tensor, num_latent: int, num_true: int, *, trials: int = 100, seed: int = 0
) -> dict[str, Any]:
    """NMI of random assignments of latent actions with the same usage histogram as ``latent``.

    Each trial shuffles the latent actions over the transitions, which keeps both histograms and
    destroys any relation to the true actions. With finitely many transitions such chance NMIs
    are above 0; a latent action model is informative only where its NMI clearly exceeds them.

    Shapes:
        ``latent, true``: ``M`` (labelled transitions, flat) -> scalars.

    Args:
        latent: latent actions in ``[0, num_latent)``.
        true: true actions in ``[0, num_true)``.
        num_latent: ``A``.
        num_true: ``K``.
        trials: number of shuffles.
        seed: seed of the shuffles.

    Returns:
        ``{"mean", "std", "max", "trials"}`` of the chance NMIs, and ``p_value``: the share of
        shuffles (counting the observed assignment as one) whose NMI reaches the observed NMI.
    """
    if trials < 1:
        raise ValueError(f"random_nmi_baseline needs at least 1 trial, got {trials}.")
    latent_M = latent.reshape(-1).cpu().long()
    true_M = true.reshape(-1).cpu().long()
    observed = nmi_from_table(contingency_table(latent_M, true_M, num_latent, num_true))
    generator = torch.Generator().manual_seed(seed)
    values = torch.tensor(
        [
            nmi_from_table(contingency_table(latent_M[torch.randperm(len(latent_M), generator=generator)], true_M,
                                             num_latent, num_true))
            for _ in range(trials)
        ],
        dtype=torch.float64,
    )
    return {
        "mean": float(values.mean()),
        "std": float(values.std(correction=1)) if trials > 1 else None,
        "max": float(values.max()),
        "trials": trials,
        "p_value": float((1 + (values >= observed - 1e-12).sum()) / (1 + trials)),
    }


def ground_truth_metrics(
    latent: Tensor,
    true: Tensor,
    num_latent: int,
    num_true: int | None = None,
    *,
    action_names: Sequence[str] | None = None,
    action_groups: Mapping[str, Sequence[int]] | None = None,
    vectors: Tensor | None = None,
    fit_fraction: float = 0.5,
    random_trials: int = 100,
    few_label_counts: Sequence[int | None] = (10, 50, 200, None),
    few_label_draws: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Latent actions against true actions, on the transitions whose true action is known.

    Unlike :func:`~worldmodels.eval.latent_actions.latent_action_metrics` this accepts unknown
    true actions (``-1``, e.g. across a ``frame_skip`` that spans several actions) and leaves
    those transitions out. Every probe is fitted on the first ``fit_fraction`` of the clips and
    scored on the rest (so the transitions of one clip stay on one side).

    Shapes:
        ``latent, true``: ``N T-1`` int64 (``true`` ``-1`` where unknown); ``vectors``:
        ``N T-1 D`` float (the continuous latents, for the linear probe).

    Args:
        latent: inferred latent actions.
        true: true actions of the same transitions.
        num_latent: ``A``.
        num_true: ``K`` (default: the number of ``action_names``, else the largest true action + 1).
        action_names: names of the ``K`` true actions (default: their indices).
        action_groups: visible groups of the true actions, name -> raw actions (CoinRun:
            ``left``, ``right``, ``jump``, ``stay``); every metric is repeated on them under ``collapsed``.
        vectors: continuous latent vectors of the transitions; adds the linear probe.
        fit_fraction: share of the clips the probes are fitted on, in ``(0, 1)``.
        random_trials: shuffles of the random-assignment NMI baseline.
        few_label_counts: ``K`` values of the few-label mapping (``None``: every fit transition).
        few_label_draws: random draws of the ``K`` labelled transitions per ``K``.
        seed: seed of the shuffles and draws.

    Returns:
        A JSON-ready dict. ``available`` is ``False`` (with a ``reason``) when no transition has a
        true action; otherwise it holds ``nmi``, ``nmi_random`` (:func:`random_nmi_baseline`),
        ``contingency_table`` (``A x K``, rows latent actions, columns true actions),
        ``action_names``, ``num_labelled_transitions``, ``probe`` (the majority mapping fitted on
        all fit clips: accuracy, chance accuracy, the latent -> true mapping, how often each latent
        action occurred in the fit clips; or ``available: False`` with a reason), ``few_label``
        (:func:`~worldmodels.eval.latent_actions.few_label_accuracy`), ``linear_probe``
        (with ``vectors``; :func:`~worldmodels.eval.latent_actions.linear_probe`) and, with
        ``action_groups``, ``collapsed``: the same on the groups.

    Raises:
        ValueError: for mismatched shapes, or true actions outside ``[0, num_true)``.
    """
    if latent.shape != true.shape or latent.ndim != 2:
        raise ValueError(
            f"latent and true actions must both be shaped N T-1, got {tuple(latent.shape)} and {tuple(true.shape)}."
        )
    if vectors is not None and tuple(vectors.shape[:2]) != tuple(latent.shape):
        raise ValueError(f"vectors must be shaped N T-1 D like the actions, got {tuple(vectors.shape)}.")
    latent = latent.cpu().long()
    true = true.cpu().long()
    known = true >= 0
    if not bool(known.any()):
        return {
            "available": False,
            "reason": "the data has no true actions (video files, or a recording without actions), so NMI, the "
            "contingency table and the probes cannot be measured",
        }
    largest = int(true[known].max())
    if num_true is None:
        num_true = len(action_names) if action_names is not None else largest + 1
    if largest >= num_true:
        raise ValueError(
            f"The data's true actions reach {largest}, but it declares {num_true} actions (valid 0..{num_true - 1}); "
            "the manifest's env.num_actions or env.action_names is wrong, or the shards belong to another "
            "environment."
        )
    names = [str(n) for n in action_names] if action_names is not None else [str(k) for k in range(num_true)]
    if len(names) != num_true:
        raise ValueError(f"Got {len(names)} action names for {num_true} true actions.")
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must lie strictly between 0 and 1, got {fit_fraction}.")
    settings: dict[str, Any] = dict(vectors=vectors, fit_fraction=fit_fraction, random_trials=random_trials,
                    few_label_counts=few_label_counts, few_label_draws=few_label_draws, seed=seed)
    out = {"available": True, "num_true_actions": num_true,
           **_label_metrics(latent, true, num_latent, num_true, names, **settings)}
    if action_groups:
        group_names = list(action_groups)
        collapsed = collapse_actions(true, [list(action_groups[g]) for g in group_names])
        out["collapsed"] = {
            "groups": {g: [names[int(k)] for k in action_groups[g]] for g in group_names},
            **_label_metrics(latent, collapsed, num_latent, len(group_names), group_names, **settings),
        }
    return out


def _label_metrics(
    latent: Tensor,
    true: Tensor,
    num_latent: int,
    num_true: int,
    names: list[str],
    *,
    vectors: Tensor | None,
    fit_fraction: float,
    random_trials: int,
    few_label_counts: Sequence[int | None],
    few_label_draws: int,
    seed: int,
) -> dict[str, Any]:
    """NMI, table, majority probe, few-label curve and linear probe of one labelling (see :func:`ground_truth_metrics`)."""
    known = true >= 0
    table_AK = contingency_table(latent[known], true[known], num_latent, num_true)
    out: dict[str, Any] = {
        "action_names": names,
        "num_labelled_transitions": int(known.sum()),
        "nmi": nmi_from_table(table_AK),
        "nmi_random": random_nmi_baseline(
            latent[known], true[known], num_latent, num_true, trials=random_trials, seed=seed
        ),
        "contingency_table": table_AK.tolist(),
    }
    num_clips = latent.shape[0]
    unavailable = None
    if num_clips < 2:
        unavailable = "the probes need at least 2 clips (one to fit, one to score)"
    num_fit = min(max(round(fit_fraction * num_clips), 1), max(num_clips - 1, 1))
    fit, score = known[:num_fit], known[num_fit:]
    if unavailable is None and (not bool(fit.any()) or not bool(score.any())):
        unavailable = f"no labelled transitions in the {'fit' if not bool(fit.any()) else 'scored'} clips"
    if unavailable is not None:
        for key in ("probe", "few_label", "linear_probe"):
            out[key] = {"available": False, "reason": unavailable}
        return out
    l_fit, t_fit = latent[:num_fit][fit], true[:num_fit][fit]
    l_score, t_score = latent[num_fit:][score], true[num_fit:][score]
    probe = probe_accuracy(l_fit, t_fit, l_score, t_score, num_latent, num_true)
    out["probe"] = {
        "available": True,
        **probe.to_dict(),
        "mapping_names": [names[k] for k in probe.mapping.tolist()],
        "latent_fit_counts": torch.bincount(l_fit, minlength=num_latent).tolist(),
        "fit_clips": num_fit,
        "scored_clips": num_clips - num_fit,
    }
    out["few_label"] = {"available": True, **few_label_accuracy(
        l_fit, t_fit, l_score, t_score, num_latent, num_true, counts=few_label_counts, draws=few_label_draws,
        seed=seed,
    )}
    if vectors is None:
        out["linear_probe"] = {"available": False, "reason": "no latent vectors given"}
    else:
        v = vectors.detach().cpu()
        out["linear_probe"] = {"available": True, **linear_probe(
            v[:num_fit][fit], t_fit, v[num_fit:][score], t_score, num_true, seed=seed
        )}
    return out


def _usage_dict(stats: CodebookStats) -> dict[str, Any]:
    total = max(int(stats.counts.sum()), 1)
    return {
        "counts": stats.counts.tolist(),
        "fraction": [c / total for c in stats.counts.tolist()],
        "num_used": stats.num_used,
        "entropy_nats": stats.entropy_nats,
        "normalized_entropy": stats.normalized_entropy,
        "perplexity": stats.perplexity,
    }


def _codebook_dict(stats: CodebookStats) -> dict[str, Any]:
    return {**stats.to_dict(), "num_indices": int(stats.counts.sum())}


# ---------------------------------------------------------------------------------------------
# Pictures (Pillow only)
# ---------------------------------------------------------------------------------------------

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (150, 150, 150)
_LIGHT = (225, 225, 225)
_BLUE = (31, 100, 180)
_BAND = (190, 210, 240)
_ORANGE = (220, 110, 20)


def _font(size: int = 12) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return int(math.ceil(right - min(left, 0))), int(math.ceil(bottom - min(top, 0)))


def _to_uint8_hwc(frame_CHW: Tensor) -> np.ndarray:
    frame = frame_CHW.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    frame = np.transpose(frame, (1, 2, 0))
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3])


def upscale(frame_HWC: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (every pixel becomes a ``scale x scale`` block).

    Shapes:
        ``H W C`` -> ``(H * scale) (W * scale) C``.
    """
    return np.repeat(np.repeat(frame_HWC, scale, axis=0), scale, axis=1)


def picture_scale(height: int, width: int, target: int = 64) -> int:
    """Integer upscaling that makes the larger side of a frame at least ``target`` pixels (at least 1)."""
    return max(1, -(-target // max(height, width)))


@dataclass(frozen=True)
class GridLayout:
    """Where the cells of a frame grid lie in its picture.

    Attributes:
        rows: rows of cells.
        cols: columns of cells.
        cell_height: cell height in pixels (frame height times ``scale``).
        cell_width: cell width in pixels.
        scale: integer upscaling of the frames.
        left: x of the first column (the row labels lie left of it).
        top: y of the first row (the title and column labels lie above it).
        gap: pixels between neighbouring cells.
        margin: pixels right of the last column and below the last row.
        min_width: the picture is at least this wide (room for a long title).
    """

    rows: int
    cols: int
    cell_height: int
    cell_width: int
    scale: int
    left: int
    top: int
    gap: int = 2
    margin: int = 6
    min_width: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the picture in pixels."""
        width = self.left + self.cols * (self.cell_width + self.gap) - self.gap + self.margin
        width = max(width, self.min_width)
        height = self.top + self.rows * (self.cell_height + self.gap) - self.gap + self.margin
        return width, height

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of cell ``(row, col)``, as :meth:`PIL.Image.Image.crop` takes it."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise IndexError(f"cell ({row}, {col}) is outside a {self.rows} x {self.cols} grid.")
        x0 = self.left + col * (self.cell_width + self.gap)
        y0 = self.top + row * (self.cell_height + self.gap)
        return x0, y0, x0 + self.cell_width, y0 + self.cell_height

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the picture's ``size``)."""
        return {
            "rows": self.rows,
            "cols": self.cols,
            "cell_height": self.cell_height,
            "cell_width": self.cell_width,
            "scale": self.scale,
            "left": self.left,
            "top": self.top,
            "gap": self.gap,
            "margin": self.margin,
            "min_width": self.min_width,
            "size": list(self.size),
        }


def draw_frame_grid(
    frames: Tensor,
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    title: str = "",
    scale: int | None = None,
    group_rows: int = 0,
) -> tuple[PILImage, GridLayout]:
    """Draw frames as a labelled grid (rows x columns), upscaled with nearest neighbours.

    Shapes:
        ``frames``: ``R L C H W`` float in ``[0, 1]`` (``R`` rows, ``L`` columns).

    Args:
        frames: the frames, one per cell.
        row_labels: text left of each row (may hold line breaks).
        col_labels: text above each column.
        title: text above everything (may hold line breaks).
        scale: integer upscaling (default: :func:`picture_scale`).
        group_rows: draw a separating line after every ``group_rows`` rows (0: none).

    Returns:
        The RGB :class:`PIL.Image.Image` and its :class:`GridLayout`.
    """
    from PIL import Image, ImageDraw

    if frames.ndim != 5:
        raise ValueError(f"draw_frame_grid takes frames shaped R L C H W, got {tuple(frames.shape)}.")
    rows, cols, _, h, w = frames.shape
    scale = scale or picture_scale(h, w)
    font = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((_text_size(probe, s, font)[0] for s in row_labels), default=0)
    col_h = max((_text_size(probe, s, font)[1] for s in col_labels), default=0)
    title_w, title_h = _text_size(probe, title, font)
    pad = 6
    layout = GridLayout(
        rows=rows,
        cols=cols,
        cell_height=h * scale,
        cell_width=w * scale,
        scale=scale,
        left=pad + (label_w + pad if label_w else 0),
        top=pad + (title_h + pad if title_h else 0) + (col_h + 4 if col_h else 0),
        min_width=title_w + 2 * pad if title else 0,
    )
    image = Image.new("RGB", layout.size, _WHITE)
    draw = ImageDraw.Draw(image)
    if title:
        draw.multiline_text((pad, pad), title, fill=_BLACK, font=font)
    for c, text in enumerate(col_labels[:cols]):
        x0, y0, x1, _ = layout.cell_box(0, c)
        tw, th = _text_size(draw, text, font)
        draw.text((x0 + max(0, (x1 - x0 - tw) // 2), y0 - th - 4), text, fill=_BLACK, font=font)
    for r in range(rows):
        x0, y0, _, y1 = layout.cell_box(r, 0)
        if r < len(row_labels) and row_labels[r]:
            tw, th = _text_size(draw, row_labels[r], font)
            draw.multiline_text((x0 - pad - tw, y0 + max(0, (y1 - y0 - th) // 2)), row_labels[r], fill=_BLACK,
                                font=font, align="right")
        if group_rows and r % group_rows == 0 and r:
            y = y0 - layout.gap // 2 - 1
            draw.line([(pad, y), (layout.size[0] - pad, y)], fill=_GREY, width=1)
        for c in range(cols):
            bx0, by0, _, _ = layout.cell_box(r, c)
            image.paste(Image.fromarray(upscale(_to_uint8_hwc(frames[r, c]), scale)), (bx0, by0))
    return image, layout


def _nice_step(span: float, target_ticks: int = 5) -> float:
    raw = max(span, 1e-12) / max(target_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _format_tick(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step < 1 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def draw_curve(
    x: Sequence[float],
    y: Sequence[float],
    *,
    band_low: Sequence[float] | None = None,
    band_high: Sequence[float] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    legend: str = "",
    mark_x: float | None = None,
    mark_label: str = "",
    size: tuple[int, int] = (640, 400),
) -> PILImage:
    """A line chart with an optional shaded band, drawn with Pillow.

    Axes, ticks on "nice" values (1, 2, 2.5, 5 x 10^k), a dashed line at ``y = 0`` when it lies
    in range, and an optional dotted vertical marker (e.g. the paper's ``t = 4``).

    Shapes:
        ``x, y, band_low, band_high``: ``L`` values each (non-finite band values are not drawn).

    Args:
        x: x positions (increasing).
        y: the curve.
        band_low: lower edge of the band.
        band_high: upper edge of the band.
        title: text above the plot.
        xlabel: x axis label.
        ylabel: y axis label (drawn vertically).
        legend: a line of text above the top right corner of the plot area.
        mark_x: x of the vertical marker.
        mark_label: text next to the marker.
        size: ``(width, height)`` of the picture.

    Returns:
        The RGB :class:`PIL.Image.Image`.
    """
    from PIL import Image, ImageDraw

    xs = [float(v) for v in x]
    ys = [float(v) for v in y]
    if not xs or len(xs) != len(ys):
        raise ValueError(f"draw_curve needs as many y values as x values (at least one), got {len(xs)} and {len(ys)}.")
    band = None
    if band_low is not None and band_high is not None:
        band = [(float(lo), float(hi)) for lo, hi in zip(band_low, band_high, strict=True)]
        if not all(math.isfinite(lo) and math.isfinite(hi) for lo, hi in band):
            band = None
    values = [v for v in ys if math.isfinite(v)] + [v for pair in (band or []) for v in pair] + [0.0]
    y_min, y_max = min(values), max(values)
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 1.0, y_max + 1.0
    pad_y = 0.08 * (y_max - y_min)
    y_min, y_max = y_min - pad_y, y_max + pad_y
    if len(xs) == 1:
        x_min, x_max = xs[0] - 0.5, xs[0] + 0.5
    else:
        pad_x = 0.04 * (max(xs) - min(xs))
        x_min, x_max = min(xs) - pad_x, max(xs) + pad_x

    width, height = size
    font = _font(12)
    image = Image.new("RGB", size, _WHITE)
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 78, width - 20, 48, height - 52
    plot_w, plot_h = right - left, bottom - top

    def px(value: float) -> float:
        return left + (value - x_min) / (x_max - x_min) * plot_w

    def py(value: float) -> float:
        return bottom - (value - y_min) / (y_max - y_min) * plot_h

    step = _nice_step(y_max - y_min)
    tick = math.ceil(y_min / step) * step
    while tick <= y_max + 1e-9:
        yy = py(tick)
        draw.line([(left, yy), (right, yy)], fill=_LIGHT)
        draw.line([(left - 5, yy), (left, yy)], fill=_BLACK)
        label = _format_tick(tick, step)
        tw, th = _text_size(draw, label, font)
        draw.text((left - 8 - tw, yy - th / 2 - 1), label, fill=_BLACK, font=font)
        tick += step
    x_step = max(1, math.ceil(_nice_step(x_max - x_min, 10))) if len(xs) > 1 else 1
    for value in xs:
        if len(xs) > 12 and (value - xs[0]) % x_step:  # few points: label each, wherever it lies
            continue
        xx = px(value)
        draw.line([(xx, bottom), (xx, bottom + 5)], fill=_BLACK)
        label = f"{value:g}"
        tw, _ = _text_size(draw, label, font)
        draw.text((xx - tw / 2, bottom + 8), label, fill=_BLACK, font=font)

    if band is not None:
        if len(xs) == 1:
            lo, hi = band[0]
            draw.rectangle([px(xs[0]) - 6, py(hi), px(xs[0]) + 6, py(lo)], fill=_BAND)
        else:
            upper = [(px(v), py(hi)) for v, (_, hi) in zip(xs, band)]
            lower = [(px(v), py(lo)) for v, (lo, _) in zip(xs, band)]
            draw.polygon(upper + lower[::-1], fill=_BAND)
    if y_min < 0 < y_max:
        y0 = py(0.0)
        for xx in range(left, right, 10):
            draw.line([(xx, y0), (min(xx + 5, right), y0)], fill=_GREY, width=1)
    if mark_x is not None and x_min <= mark_x <= x_max:
        xx = px(mark_x)
        for yy in range(top, bottom, 6):
            draw.line([(xx, yy), (xx, min(yy + 2, bottom))], fill=_ORANGE, width=1)
        if mark_label:
            tw, th = _text_size(draw, mark_label, font)
            tx = xx + 4 if xx + 4 + tw <= right - 2 else xx - 4 - tw
            draw.rectangle([tx - 1, bottom - th - 8, tx + tw + 1, bottom - 3], fill=_WHITE)
            draw.text((tx, bottom - th - 6), mark_label, fill=_ORANGE, font=font)
    points = [(px(v), py(w)) for v, w in zip(xs, ys) if math.isfinite(w)]
    if len(points) > 1:
        draw.line(points, fill=_BLUE, width=2)
    for xx, yy in points:
        draw.ellipse([xx - 3, yy - 3, xx + 3, yy + 3], fill=_BLUE)
    draw.rectangle([left, top, right, bottom], outline=_BLACK)

    if title:
        tw, _ = _text_size(draw, title, font)
        draw.text(((width - tw) / 2, 10), title, fill=_BLACK, font=font)
    if legend:
        tw, th = _text_size(draw, legend, font)
        draw.text((right - tw, top - th - 6), legend, fill=_BLACK, font=font)
    if xlabel:
        tw, _ = _text_size(draw, xlabel, font)
        draw.text(((left + right - tw) / 2, height - 22), xlabel, fill=_BLACK, font=font)
    if ylabel:
        tw, th = _text_size(draw, ylabel, font)
        label_image = Image.new("RGB", (tw + 2, th + 4), _WHITE)
        ImageDraw.Draw(label_image).text((1, 1), ylabel, fill=_BLACK, font=font)
        label_image = label_image.rotate(90, expand=True)
        image.paste(label_image, (8, int((top + bottom - label_image.height) / 2)))
    return image


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Nested dicts/lists with tensors, paths and non-finite floats made JSON-safe (NaN -> null)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def controllability_summary(result: ControllabilityResult) -> dict[str, Any]:
    """Delta_t PSNR per ``t``, at the paper's ``t = 4``, and its mean over ``t`` with spread (JSON-ready)."""
    at_paper = None
    if result.horizon >= PAPER_T:
        i = PAPER_T - 1
        at_paper = {
            "t": PAPER_T,
            "mean": float(result.delta_psnr_t[i]),
            "std": float(result.delta_psnr_std_t[i]),
            "sem": float(result.delta_psnr_sem_t[i]),
            "n": result.num_clips,
        }
    return {
        **result.to_dict(),
        "t": list(range(1, result.horizon + 1)),
        "at_paper_t": at_paper,
        "mean_over_t": _spread(result.delta_psnr_per_clip.mean(dim=1)),
    }


@dataclass
class EvalReport:
    """Everything :func:`evaluate` measured, with the settings that produced it.

    Attributes:
        settings: model, checkpoint, data, split, clip count, horizon, seed, ... (JSON-ready).
        reconstruction: tokenizer PSNR/SSIM: ``psnr`` and ``ssim`` spreads over clips (mean,
            std, sem, min, max, n), ``psnr_per_frame`` / ``ssim_per_frame`` (mean over clips of
            each frame position), ``per_clip`` values.
        controllability: the Delta_t PSNR result.
        latent_actions: ``num_actions``, ``num_transitions``, ``usage`` (counts, fractions that
            sum to 1, entropy, perplexity) and ``ground_truth`` (:func:`ground_truth_metrics`).
        codebooks: ``{"tokenizer": ..., "lam": ...}`` usage statistics over the held-out split.
        fvd: the FVD, or why it was skipped.
        timings: seconds per step (``load_model``, ``load_data``, ``reconstruction``,
            ``latent_actions``, ``delta_psnr``, ``fvd``, ``figures``; ``total`` is all of these,
            and ``write``, the time :meth:`save` took, comes on top).
        notes: caveats worth reading next to the numbers.
        figures: the pictures (:class:`PIL.Image.Image`) by file name.
        figure_layouts: per picture its grid (:meth:`GridLayout.to_dict`) or size.
        files: what :meth:`save` wrote, by kind.
    """

    settings: dict[str, Any]
    reconstruction: dict[str, Any]
    controllability: ControllabilityResult
    latent_actions: dict[str, Any]
    codebooks: dict[str, CodebookStats]
    fvd: FVDResult
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)
    figures: dict[str, PILImage] = field(default_factory=dict, repr=False)
    figure_layouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, Any] = field(default_factory=lambda: {"available": False, "reason": "not measured"})
    """Predicted against recorded rewards and episode ends (:func:`outcome_metrics`)."""
    baseline: dict[str, Any] | None = None
    """The ground-truth-action baseline on the same clips (:func:`evaluate`'s ``baseline``): its
    ``checkpoint``, ``model_name`` and ``controllability`` (as :meth:`controllability_dict`)."""

    # ------------------------------------------------------------------ numbers
    def latent_names(self) -> list[str] | None:
        """Each latent action named by the true action it maps to (collapsed groups where the data has them).

        From the majority mapping of the fit clips, with the share of the latent action's
        transitions that carry that true action: ``"right (71%)"``. ``None`` without ground truth.
        """
        truth = self.latent_actions.get("ground_truth", {})
        if not truth.get("available"):
            return None
        source = truth.get("collapsed") or truth
        table = source["contingency_table"]
        names = []
        for row in table:
            total = sum(row)
            if not total:
                names.append("unused")
                continue
            top = max(range(len(row)), key=row.__getitem__)
            names.append(f"{source['action_names'][top]} ({100 * row[top] / total:.0f}%)")
        return names

    def controllability_dict(self) -> dict[str, Any]:
        """Delta_t PSNR per ``t``, at the paper's ``t = 4``, and its mean over ``t`` with spread."""
        return controllability_summary(self.controllability)

    def headline(self) -> dict[str, Any]:
        """The headline numbers (flat, JSON-ready), as the table of ``report.md`` shows them."""
        control = self.controllability_dict()
        truth = self.latent_actions.get("ground_truth", {})
        probe = truth.get("probe", {}) if truth.get("available") else {}
        at_paper = control["at_paper_t"] or {}
        tok, lam = self.codebooks["tokenizer"], self.codebooks["lam"]
        collapsed = truth.get("collapsed", {}) if truth.get("available") else {}
        few = collapsed.get("few_label", {}) if collapsed.get("few_label", {}).get("available") else {}
        few_200 = dict(zip(few.get("counts", []), few.get("accuracy", []))).get(200)
        linear = truth.get("linear_probe", {}) if truth.get("available") else {}
        linear_collapsed = collapsed.get("linear_probe", {})
        t4 = PAPER_T - 1 if self.controllability.horizon >= PAPER_T else None
        base = (self.baseline or {}).get("controllability", {})
        base_at = base.get("at_paper_t") or {}
        fractions = self.latent_actions.get("usage", {}).get("fraction") or []
        return _jsonable(
            {
                "recon_psnr": self.reconstruction["psnr"]["mean"],
                "recon_psnr_std": self.reconstruction["psnr"]["std"],
                "recon_ssim": self.reconstruction["ssim"]["mean"],
                "recon_ssim_std": self.reconstruction["ssim"]["std"],
                "delta_psnr_t4": at_paper.get("mean"),
                "delta_psnr_t4_std": at_paper.get("std"),
                "delta_psnr_t4_sem": at_paper.get("sem"),
                "delta_psnr_mean_over_t": control["mean_over_t"]["mean"],
                "delta_psnr_mean_over_t_std": control["mean_over_t"]["std"],
                "delta_psnr_mean_over_t_sem": control["mean_over_t"]["sem"],
                "horizon": self.controllability.horizon,
                "num_clips": self.controllability.num_clips,
                "nmi": truth.get("nmi"),
                "nmi_random": truth.get("nmi_random", {}).get("mean"),
                "probe_accuracy": probe.get("accuracy"),
                "probe_chance": probe.get("chance_accuracy"),
                "gen_psnr_t4": float(self.controllability.psnr_inferred_t[t4]) if t4 is not None else None,
                "random_psnr_t4": float(self.controllability.psnr_random_t[t4]) if t4 is not None else None,
                "nmi_collapsed": collapsed.get("nmi"),
                "nmi_collapsed_random": collapsed.get("nmi_random", {}).get("mean"),
                "few_label_k200_collapsed": few_200,
                "few_label_chance_collapsed": few.get("chance_accuracy"),
                "linear_probe_accuracy": linear.get("accuracy"),
                "linear_probe_chance": linear.get("chance_accuracy"),
                "linear_probe_collapsed_accuracy": linear_collapsed.get("accuracy"),
                "linear_probe_collapsed_chance": linear_collapsed.get("chance_accuracy"),
                "latent_min_usage": min(fractions) if fractions else None,
                "baseline_delta_psnr_t4": base_at.get("mean"),
                "baseline_delta_psnr_t4_sem": base_at.get("sem"),
                "baseline_gen_psnr_t4": base["psnr_inferred_t"][t4] if base and t4 is not None else None,
                "reward_correlation": self.outcomes.get("reward_correlation"),
                "termination_accuracy": self.outcomes.get("termination_accuracy"),
                "tokenizer_usage": tok.usage,
                "tokenizer_perplexity": tok.perplexity,
                "lam_usage": lam.usage,
                "lam_perplexity": lam.perplexity,
                "fvd": self.fvd.value,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The content of ``report.json``.

        Top-level keys: ``format``, ``format_version``, ``headline`` (:meth:`headline`),
        ``settings``, ``reconstruction``, ``controllability`` (:meth:`controllability_dict`),
        ``latent_actions``, ``codebooks`` (``tokenizer``, ``lam``: counts, usage, perplexity,
        ...), ``fvd``, ``timings``, ``notes``, ``figures`` (layouts) and ``files``. Non-finite
        numbers (e.g. a spread over one clip) are ``null``.
        """
        return _jsonable(
            {
                "format": REPORT_FORMAT,
                "format_version": REPORT_FORMAT_VERSION,
                "headline": self.headline(),
                "settings": self.settings,
                "reconstruction": self.reconstruction,
                "controllability": self.controllability_dict(),
                "latent_actions": self.latent_actions,
                "codebooks": {name: _codebook_dict(stats) for name, stats in self.codebooks.items()},
                "fvd": self.fvd.to_dict(),
                "timings": self.timings,
                "notes": self.notes,
                "figures": self.figure_layouts,
                "files": self.files,
                "baseline": self.baseline,
                "outcomes": self.outcomes,
                "latent_names": self.latent_names(),
            }
        )

    # ------------------------------------------------------------------ text
    def summary(self) -> str:
        """A few lines for the console: the headline numbers and what was evaluated."""
        s = self.settings
        head = self.headline()
        rec = self.reconstruction
        control = self.controllability_dict()
        lines = [
            f"evaluated {s.get('model_name') or 'model'} on {s['num_clips']} clip(s) of {s['clip_frames']} frames "
            f"from {s['data']} (split {s['split']}), horizon {s['horizon']}, seed {s['seed']}",
            f"  reconstruction   PSNR {_fmt(head['recon_psnr'])} dB (std {_fmt(rec['psnr']['std'])}), "
            f"SSIM {_fmt(head['recon_ssim'], 3)} (std {_fmt(rec['ssim']['std'], 3)})",
        ]
        mean_t = control["mean_over_t"]
        paper = (
            f"t={PAPER_T}: {_fmt(head['delta_psnr_t4'])} dB (sem {_fmt(head['delta_psnr_t4_sem'])}); "
            if head["delta_psnr_t4"] is not None
            else f"t={PAPER_T}: n/a (horizon {self.controllability.horizon} < {PAPER_T}); "
        )
        lines.append(
            f"  Delta_t PSNR     {paper}mean over t=1..{self.controllability.horizon}: {_fmt(mean_t['mean'])} dB "
            f"(std {_fmt(mean_t['std'])}, sem {_fmt(mean_t['sem'])}, {mean_t['n']} clips)"
        )
        truth = self.latent_actions["ground_truth"]
        usage = self.latent_actions["usage"]
        if truth.get("available"):
            probe = truth["probe"]
            probe_text = (
                f"probe {_fmt(probe['accuracy'], 3)} vs chance {_fmt(probe['chance_accuracy'], 3)}"
                if probe.get("available")
                else f"probe n/a ({probe['reason']})"
            )
            lines.append(
                f"  latent actions   NMI {_fmt(truth['nmi'], 3)} (random {_fmt(truth['nmi_random']['mean'], 3)}); "
                f"{probe_text}; entropy {_fmt(usage['normalized_entropy'], 2)} of max"
            )
            if head["nmi_collapsed"] is not None:
                lines.append(
                    f"  collapsed        NMI {_fmt(head['nmi_collapsed'], 3)} (random "
                    f"{_fmt(head['nmi_collapsed_random'], 3)}); few-label K=200 {_fmt(head['few_label_k200_collapsed'], 3)} "
                    f"vs chance {_fmt(head['few_label_chance_collapsed'], 3)}; linear probe "
                    f"{_fmt(head['linear_probe_collapsed_accuracy'], 3)}"
                )
            names = self.latent_names()
            if names:
                lines.append("  latent names     " + ", ".join(f"{a}: {n}" for a, n in enumerate(names)))
        else:
            lines.append(
                f"  latent actions   entropy {_fmt(usage['normalized_entropy'], 2)} of max; no ground truth "
                f"({truth['reason']})"
            )
        tok, lam = self.codebooks["tokenizer"], self.codebooks["lam"]
        lines.append(
            f"  codebooks        tokenizer {tok.num_used}/{tok.num_codes} used, perplexity {_fmt(tok.perplexity, 1)}; "
            f"LAM {lam.num_used}/{lam.num_codes} used, perplexity {_fmt(lam.perplexity, 2)}"
        )
        if head["gen_psnr_t4"] is not None:
            lines.append(
                f"  generated        PSNR at t={PAPER_T} {_fmt(head['gen_psnr_t4'])} dB with the inferred actions, "
                f"{_fmt(head['random_psnr_t4'])} dB with random ones"
            )
        if self.baseline is not None:
            lines.append(
                f"  baseline         recorded actions ({self.baseline.get('model_name')}): Delta_t PSNR t={PAPER_T} "
                f"{_fmt(head['baseline_delta_psnr_t4'])} dB (sem {_fmt(head['baseline_delta_psnr_t4_sem'])}), "
                f"generated PSNR {_fmt(head['baseline_gen_psnr_t4'])} dB"
            )
        if self.outcomes.get("available"):
            o = self.outcomes
            lines.append(
                f"  rewards          predicted vs recorded: correlation {_fmt(o['reward_correlation'], 3)}, sign "
                f"accuracy {_fmt(o['reward_sign_accuracy'], 3)} ({o['nonzero_rewards']} non-zero of "
                f"{o['transitions']}); episode ends {o['terminations']}, accuracy {_fmt(o['termination_accuracy'], 3)}"
            )
        lines.append(f"  {self.fvd.describe()}")
        lines.append(f"  time             {_fmt(self.timings.get('total'), 1)} s")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The content of ``report.md``: headline table, Delta_t PSNR per ``t``, contingency table."""
        s = self.settings
        head = self.headline()
        rec = self.reconstruction
        control = self.controllability_dict()
        truth = self.latent_actions["ground_truth"]
        usage = self.latent_actions["usage"]
        tok, lam = self.codebooks["tokenizer"], self.codebooks["lam"]
        n = self.controllability.num_clips
        lines = [
            f"# Evaluation report: {_md_cell(s.get('model_name') or 'world model')}",
            "",
            f"Checkpoint `{s['checkpoint']}`; data `{s['data']}` (split `{s['split']}`): {s['num_clips']} of "
            f"{s['dataset_clips']} clips of {s['clip_frames']} frames; horizon {s['horizon']}; seed {s['seed']}; "
            f"device {s['device']}; {s['created']}.",
            "",
            "## Headline numbers",
            "",
            "| metric | value | spread / baseline | n |",
            "|---|---|---|---|",
            f"| Reconstruction PSNR (dB) | {_fmt(head['recon_psnr'])} | std {_fmt(rec['psnr']['std'])}, "
            f"sem {_fmt(rec['psnr']['sem'])} | {rec['psnr']['n']} clips |",
            f"| Reconstruction SSIM | {_fmt(head['recon_ssim'], 4)} | std {_fmt(rec['ssim']['std'], 4)}, "
            f"sem {_fmt(rec['ssim']['sem'], 4)} | {rec['ssim']['n']} clips |",
        ]
        if head["delta_psnr_t4"] is not None:
            lines.append(
                f"| Delta_t PSNR at t={PAPER_T} (dB, the paper's) | {_fmt(head['delta_psnr_t4'])} | "
                f"std {_fmt(head['delta_psnr_t4_std'])}, sem {_fmt(head['delta_psnr_t4_sem'])} | {n} clips |"
            )
        else:
            lines.append(
                f"| Delta_t PSNR at t={PAPER_T} (dB, the paper's) | n/a | horizon {self.controllability.horizon} "
                f"< {PAPER_T} | {n} clips |"
            )
        mean_t = control["mean_over_t"]
        lines.append(
            f"| Delta_t PSNR, mean over t=1..{self.controllability.horizon} (dB) | {_fmt(mean_t['mean'])} | "
            f"std {_fmt(mean_t['std'])}, sem {_fmt(mean_t['sem'])} (over clips) | {mean_t['n']} clips |"
        )
        if head["gen_psnr_t4"] is not None:
            lines.append(
                f"| Generated PSNR at t={PAPER_T}, inferred actions (dB) | {_fmt(head['gen_psnr_t4'])} | random "
                f"actions {_fmt(head['random_psnr_t4'])} | {n} clips |"
            )
        if self.baseline is not None:
            lines.append(
                f"| Recorded-action baseline: Delta_t PSNR at t={PAPER_T} (dB) | "
                f"{_fmt(head['baseline_delta_psnr_t4'])} | sem {_fmt(head['baseline_delta_psnr_t4_sem'])}; "
                f"generated PSNR {_fmt(head['baseline_gen_psnr_t4'])} dB | {n} clips |"
            )
        if truth.get("available"):
            rnd = truth["nmi_random"]
            lines.append(
                f"| Latent-action NMI | {_fmt(truth['nmi'], 4)} | random assignment {_fmt(rnd['mean'], 4)} "
                f"(std {_fmt(rnd['std'], 4)}, {rnd['trials']} shuffles, p={_fmt(rnd['p_value'], 3)}) | "
                f"{truth['num_labelled_transitions']} transitions |"
            )
            probe = truth["probe"]
            if probe.get("available"):
                lines.append(
                    f"| Probe accuracy (latent -> true action) | {_fmt(probe['accuracy'], 4)} | chance (majority) "
                    f"{_fmt(probe['chance_accuracy'], 4)} | fit {probe['num_fit']} / scored {probe['num_scored']} "
                    "transitions |"
                )
            else:
                lines.append(f"| Probe accuracy | n/a | {_md_cell(probe['reason'])} | |")
            collapsed = truth.get("collapsed")
            if collapsed:
                crnd = collapsed["nmi_random"]
                lines.append(
                    f"| Latent-action NMI, collapsed ({', '.join(collapsed['action_names'])}) | "
                    f"{_fmt(collapsed['nmi'], 4)} | random assignment {_fmt(crnd['mean'], 4)} | "
                    f"{collapsed['num_labelled_transitions']} transitions |"
                )
                if head["few_label_k200_collapsed"] is not None:
                    lines.append(
                        f"| Few-label mapping, K=200, collapsed | {_fmt(head['few_label_k200_collapsed'], 4)} | chance "
                        f"{_fmt(head['few_label_chance_collapsed'], 4)} | "
                        f"{collapsed['few_label']['num_scored']} scored transitions |"
                    )
            linear = truth.get("linear_probe", {})
            if linear.get("available"):
                lines.append(
                    f"| Linear probe (latent vector -> true action) | {_fmt(linear['accuracy'], 4)} | chance "
                    f"{_fmt(linear['chance_accuracy'], 4)}; collapsed {_fmt(head['linear_probe_collapsed_accuracy'], 4)} "
                    f"vs {_fmt(head['linear_probe_collapsed_chance'], 4)} | fit {linear['num_fit']} / scored "
                    f"{linear['num_scored']} |"
                )
        else:
            lines.append(f"| Latent-action NMI, probe | n/a | {_md_cell(truth['reason'])} | |")
        if self.outcomes.get("available"):
            o = self.outcomes
            lines.append(
                f"| Predicted rewards: correlation with the recorded ones (one step ahead) | "
                f"{_fmt(o['reward_correlation'], 4)} | sign accuracy {_fmt(o['reward_sign_accuracy'], 4)}, "
                f"{o['nonzero_rewards']} non-zero rewards; episode ends {o['terminations']}, accuracy "
                f"{_fmt(o['termination_accuracy'], 4)} | {o['transitions']} transitions |"
            )
        lines += [
            f"| Latent-action usage entropy | {_fmt(usage['normalized_entropy'], 3)} of log A | "
            f"{_fmt(usage['entropy_nats'], 3)} nats, perplexity {_fmt(usage['perplexity'], 2)} of {lam.num_codes} | "
            f"{self.latent_actions['num_transitions']} transitions |",
            f"| Tokenizer codebook usage | {tok.num_used}/{tok.num_codes} ({100 * tok.usage:.1f}%) | perplexity "
            f"{_fmt(tok.perplexity, 1)} | {int(tok.counts.sum())} tokens |",
            f"| LAM codebook usage | {lam.num_used}/{lam.num_codes} ({100 * lam.usage:.1f}%) | perplexity "
            f"{_fmt(lam.perplexity, 2)} | {int(lam.counts.sum())} transitions |",
            f"| FVD | {_fmt(self.fvd.value) if not self.fvd.skipped else 'skipped'} | "
            f"{_md_cell(self.fvd.reason if self.fvd.skipped else self.fvd.describe())} | "
            f"{self.fvd.num_real} real / {self.fvd.num_fake} generated |",
        ]
        if self.notes:
            lines += ["", *[f"> Note: {note}" for note in self.notes]]

        lines += [
            "",
            "## Delta_t PSNR over t",
            "",
            "Generated from the real first frame with the latent actions inferred from the real clip (x^) and with "
            "uniformly random latent actions (x^'); Delta_t PSNR = PSNR(x_t, x^_t) - PSNR(x_t, x^'_t).",
            "",
            "| t | Delta_t PSNR (dB) | std | sem | PSNR inferred | PSNR random |",
            "|---|---|---|---|---|---|",
        ]
        for i, t in enumerate(control["t"]):
            lines.append(
                f"| {t} | {_fmt(control['delta_psnr_t'][i], 3)} | {_fmt(control['delta_psnr_std_t'][i], 3)} | "
                f"{_fmt(control['delta_psnr_sem_t'][i], 3)} | {_fmt(control['psnr_inferred_t'][i])} | "
                f"{_fmt(control['psnr_random_t'][i])} |"
            )

        if self.baseline is not None:
            base = self.baseline["controllability"]
            lines += [
                "",
                "## Latent actions against recorded actions",
                "",
                f"The same clips, generated by the recorded-action baseline `{_md_cell(self.baseline.get('checkpoint'))}` "
                "(the environment's true actions instead of latent ones; random actions drawn from the "
                "environment's actions). The gap between the two Delta_t PSNR columns is what the latent action "
                "model loses; the baseline's own value is what the dynamics achieve with perfect actions.",
                "",
                "| t | latent: Delta_t PSNR | latent: PSNR inferred | recorded: Delta_t PSNR | recorded: PSNR |",
                "|---|---|---|---|---|",
            ]
            for i, t in enumerate(control["t"]):
                if i >= len(base["delta_psnr_t"]):
                    break
                lines.append(
                    f"| {t} | {_fmt(control['delta_psnr_t'][i], 3)} | {_fmt(control['psnr_inferred_t'][i])} | "
                    f"{_fmt(base['delta_psnr_t'][i], 3)} | {_fmt(base['psnr_inferred_t'][i])} |"
                )

        lines += ["", "## Latent actions", ""]
        names_by_latent = self.latent_names()
        lines.append(
            "Usage per latent action: "
            + ", ".join(
                f"{a}: {100 * f:.1f}%" + (f" ({names_by_latent[a]})" if names_by_latent else "")
                for a, f in enumerate(usage["fraction"])
            )
            + "."
        )
        if truth.get("available"):
            for label, source in (("raw actions", truth), ("collapsed actions", truth.get("collapsed"))):
                few = (source or {}).get("few_label", {})
                if not few.get("available"):
                    continue
                lines += [
                    "",
                    f"Few-label mapping on {label} (the paper's appendix E: map each latent action by majority vote "
                    f"over K labelled transitions of the fit clips, score on the other clips; mean of {few['draws']} "
                    f"draws): chance (majority class) {_fmt(few['chance_accuracy'], 3)}.",
                    "",
                    "| K | " + " | ".join(str(k) for k in few["counts"]) + " |",
                    "|---" * (len(few["counts"]) + 1) + "|",
                    "| accuracy | " + " | ".join(
                        f"{_fmt(a, 3)} ± {_fmt(sd, 3)}" for a, sd in zip(few["accuracy"], few["accuracy_std"])
                    ) + " |",
                ]
        if truth.get("available"):
            names = truth["action_names"]
            table = truth["contingency_table"]
            lines += [
                "",
                "Contingency table: rows are latent actions, columns true actions (transitions with a known true "
                "action).",
                "",
                "| latent \\ true | " + " | ".join(_md_cell(name) for name in names) + " | total |",
                "|---" * (len(names) + 2) + "|",
            ]
            for a, row in enumerate(table):
                lines.append(f"| {a} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |")
            totals = [sum(col) for col in zip(*table)]
            lines.append("| total | " + " | ".join(str(v) for v in totals) + f" | {sum(totals)} |")
            probe = truth["probe"]
            if probe.get("available"):
                lines += [
                    "",
                    "Probe mapping (latent -> most frequent true action in the fit clips; latent actions unseen "
                    "there map to the most frequent true action, marked *): "
                    + ", ".join(
                        f"{a} -> {_md_cell(name)}{'' if probe['latent_fit_counts'][a] else '*'}"
                        for a, name in enumerate(probe["mapping_names"])
                    )
                    + ".",
                ]
        else:
            lines += ["", f"No contingency table: {truth['reason']}."]

        if self.files:
            pictures = [name for name in FIGURE_FILES if name in self.files]
            if pictures:
                lines += ["", "## Pictures", ""]
                captions = {
                    "reconstruction.png": "real / reconstructed / generated with the inferred actions, over time",
                    "latent_actions.png": "each latent action rolled from the same prompt frame",
                    "delta_psnr.png": "Delta_t PSNR over t (band: one standard deviation over clips)",
                }
                lines += [f"![{captions[name]}]({name})" for name in pictures]

        lines += ["", "## Timing", "", "| step | seconds |", "|---|---|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in self.timings.items()]
        lines += ["", "## Settings", "", "```json", json.dumps(_jsonable(self.settings), indent=1), "```", ""]
        return "\n".join(lines)

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``report.json``, ``report.md`` and the pictures into ``out_dir`` (created).

        Each file appears atomically (written under a temporary name, then renamed).

        Returns:
            The output directory.
        """
        from worldmodels.data.shards import atomic_output

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for name, image in self.figures.items():
            with atomic_output(out / name) as tmp:
                image.save(tmp, format="PNG")
            self.files[name] = name
        self.files["report.json"] = "report.json"
        self.files["report.md"] = "report.md"
        self.timings["write"] = time.perf_counter() - start
        with atomic_output(out / "report.md") as tmp:
            tmp.write_text(self.to_markdown())
        with atomic_output(out / "report.json") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return out


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _batches(video: Tensor, batch_size: int) -> Iterator[Tensor]:
    for i in range(0, video.shape[0], batch_size):
        yield video[i : i + batch_size]


def _model_device(model: WorldModel) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _load_model(
    model: WorldModel | str | os.PathLike[str],
    device: str | torch.device | None,
    model_overrides: Mapping[str, Any] | None,
) -> tuple[WorldModel, Path | None]:
    if isinstance(model, WorldModel):
        if model_overrides:
            raise ValueError(
                "model_overrides apply when loading a checkpoint; for a model object, change it before evaluating."
            )
        return (model.to(device) if device is not None else model), None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be a WorldModel or the path of a checkpoint or run directory, got {type(model).__name__}."
        )
    directory = resolve_checkpoint(model)
    loaded = WorldModel.from_pretrained(directory, device=device or "cpu", **dict(model_overrides or {}))
    return loaded, directory


def evaluate(
    model: WorldModel | str | os.PathLike[str],
    data: str | os.PathLike[str] | Any,
    *,
    split: str | None = "test",
    max_clips: int | None = 64,
    horizon: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    fvd_weights: str | os.PathLike[str] | None = None,
    fvd_size: int = I3D_INPUT_SIZE,
    out_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    figure_clips: int = 3,
    latent_steps: int = 4,
    probe_fit_fraction: float = 0.5,
    random_trials: int = 100,
    baseline: WorldModel | str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalReport:
    """Run every evaluation metric on held-out clips and, with ``out_dir``, write the report.

    Clips have the model's ``num_frames`` and ``image_size``. With ``max_clips`` they are spread
    evenly over the split (every ``len / max_clips``-th clip), so they reach many episodes. The
    run is deterministic for a given ``seed`` (random actions, sampler generators, and torch's
    global generator inside the call, which is restored afterwards). The model is put in eval
    mode and its mode restored.

    Shapes:
        clips ``N T C H W`` float in ``[0, 1]`` with ``T = model.num_frames``; true actions
        ``N T-1`` (``-1`` unknown).

    Args:
        model: a :class:`~worldmodels.WorldModel`, a checkpoint directory, or a training run
            directory (see :func:`resolve_checkpoint`).
        data: a directory of recorded shards or videos (read with
            :class:`~worldmodels.data.clips.ClipDataset`), or a data set whose items are dicts with
            ``video`` (``T C H W``) and optionally ``actions`` (``T-1``).
        split: the split of a recorded data set (``None``: every file); ignored for a data set object.
        max_clips: clips to evaluate (``None``: all).
        horizon: ``N``, frames generated per clip for Delta_t PSNR, ``1 <= N <= num_frames - 1``
            (default ``num_frames - 1``; the paper's ``t = 4`` needs ``N >= 4``).
        batch_size: clips per forward pass.
        seed: seed of everything random.
        fvd_weights: a local I3D state dict (``.safetensors`` / ``.pt``); ``None`` skips FVD.
        fvd_size: frame side fed to I3D (224 is the standard; smaller values are not comparable
            with published FVDs).
        out_dir: where to write the report (``None``: write nothing).
        device: where to run the model (default: CPU for a checkpoint, unchanged for a model).
        model_overrides: config overrides when loading a checkpoint, e.g.
            ``{"sampler": {"steps": 8}}`` for fewer MaskGIT iterations.
        figure_clips: clips shown in ``reconstruction.png``.
        latent_steps: steps each latent action is rolled in ``latent_actions.png`` (at most
            ``num_frames - 1``, the context the model was trained on).
        probe_fit_fraction: share of the clips the latent-action probe is fitted on.
        random_trials: shuffles of the random-assignment NMI baseline.
        baseline: a model conditioned on the recorded actions (``action_model="recorded"``; a model,
            checkpoint or run directory): its Delta_t PSNR and generated PSNR on the same clips
            are reported beside the evaluated model's (needs data with true actions).
        log: called with a line before each step (e.g. ``print``), for progress.

    Returns:
        The :class:`EvalReport` (also saved to ``out_dir`` when given).

    Raises:
        CheckpointError: when the checkpoint cannot be found or loaded.
        FileNotFoundError: when ``data`` or ``fvd_weights`` does not exist.
        ValueError: for an impossible horizon, unusable data, or bad settings.
    """
    say = log or (lambda _line: None)
    timings: dict[str, float] = {}
    total_start = time.perf_counter()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if figure_clips < 1 or latent_steps < 1:
        raise ValueError(f"figure_clips and latent_steps must be at least 1, got {figure_clips} and {latent_steps}.")
    if fvd_weights is not None and str(fvd_weights).strip() and not Path(fvd_weights).is_file():
        raise FileNotFoundError(
            f"I3D weights {fvd_weights} do not exist. Pass the path of a local Kinetics-400 I3D state dict "
            "(.safetensors or .pt), or leave the FVD weights out to skip FVD."
        )

    with _timed(timings, "load_model"):
        wm, checkpoint_dir = _load_model(model, device, model_overrides)
    num_frames = wm.num_frames
    if num_frames < 2:
        raise ValueError(f"The model works on clips of {num_frames} frame(s); evaluation needs at least 2.")
    horizon = num_frames - 1 if horizon is None else int(horizon)
    if not 1 <= horizon <= num_frames - 1:
        raise ValueError(
            f"horizon={horizon} is not possible for this model: it generates from one real frame and its action "
            f"model sees horizon + 1 frames, at most its num_frames={num_frames}. Pass 1 <= horizon <= "
            f"{num_frames - 1}."
        )
    notes: list[str] = []
    if checkpoint_dir is not None and checkpoint_dir.name == FINAL_DIR and checkpoint_dir.parent.name != "dynamics":
        notes.append(
            f"the model comes from {checkpoint_dir} (stage {checkpoint_dir.parent.name!r}), not from a finished "
            "dynamics stage: parts trained in later stages are untrained, so Delta_t PSNR and the latent-action "
            "numbers may measure random weights."
        )
    if horizon < PAPER_T:
        notes.append(f"horizon {horizon} < {PAPER_T}: the paper's Delta_t PSNR at t={PAPER_T} is not measured.")

    say(f"loading clips from {data}")
    with _timed(timings, "load_data"):
        clips = _load_clips(data, wm, split, max_clips)
    run_device = _model_device(wm)
    n = clips.video.shape[0]
    was_training = wm.training
    wm.eval()
    devices = [run_device.index or 0] if run_device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            report = _measure(
                wm, clips, horizon=horizon, batch_size=batch_size, seed=seed, fvd_weights=fvd_weights,
                fvd_size=fvd_size, device=run_device, figure_clips=figure_clips, latent_steps=latent_steps,
                probe_fit_fraction=probe_fit_fraction, random_trials=random_trials, timings=timings, say=say,
            )
    finally:
        wm.train(was_training)
    if baseline is not None:
        say("baseline: Delta_t PSNR of the recorded-action model on the same clips")
        with _timed(timings, "baseline"):
            report.baseline = _evaluate_baseline(baseline, clips, device, model_overrides, horizon, batch_size, seed)

    report.notes = notes + report.notes
    report.settings = {
        "checkpoint": str(checkpoint_dir) if checkpoint_dir is not None else None,
        "checkpoint_source": str(model) if checkpoint_dir is not None else None,
        "model_name": wm.name,
        "model": {
            "image_size": list(wm.image_size),
            "in_channels": wm.in_channels,
            "num_frames": wm.num_frames,
            "num_actions": wm.num_actions,
            "tokenizer_vocab_size": int(wm.tokenizer.vocab_size),
            "token_grid": list(wm.token_grid),
            "components": {k: getattr(wm, k).get_config().get("name") for k in
                           ("tokenizer", "action_model", "dynamics", "sampler")},
            "sampler": wm.sampler.get_config(),
        },
        "model_overrides": dict(model_overrides or {}),
        "data": clips.description,
        "split": split if isinstance(data, (str, os.PathLike)) else None,
        "dataset_clips": clips.dataset_size,
        "num_clips": n,
        "clip_indices": clips.indices,
        "clip_frames": num_frames,
        "horizon": horizon,
        "max_clips": max_clips,
        "batch_size": batch_size,
        "seed": seed,
        "device": str(run_device),
        "fvd_weights": str(fvd_weights) if fvd_weights else None,
        "fvd_size": fvd_size,
        "figure_clips": figure_clips,
        "latent_steps": latent_steps,
        "probe_fit_fraction": probe_fit_fraction,
        "random_trials": random_trials,
        "worldmodels_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    report.timings["total"] = time.perf_counter() - total_start
    if out_dir is not None:
        say(f"writing the report to {out_dir}")
        report.save(out_dir)
    return report


def outcome_metrics(
    wm: WorldModel, clips: _Clips, *, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Predicted against recorded rewards and episode ends, one step ahead from the real frames.

    For every transition ``t`` of every clip the model sees the real frames ``0..t`` and the
    actions ``0..t`` and predicts the step's reward and episode end
    (:meth:`~worldmodels.WorldModel.predict_outcome`); only transitions whose outcome the data
    recorded count.

    Returns:
        ``available`` (False, with a reason, when the model predicts no outcomes or the data has
        none), ``reward_correlation`` (Pearson, ``None`` when the recorded rewards are constant),
        ``reward_sign_accuracy``, ``reward_mae``, ``nonzero_rewards``, ``termination_accuracy``,
        ``terminations`` and the transition counts.
    """
    if not wm.dynamics.predicts_outcomes:
        return {"available": False, "reason": f"the {wm.dynamics.get_config()['name']} dynamics predicts no rewards"}
    if clips.rewards is None or not bool(torch.isfinite(clips.rewards).any()):
        return {"available": False, "reason": "the data recorded no rewards"}
    if getattr(wm.action_model, "uses_recorded_actions", False) and bool((clips.actions < 0).all()):
        return {"available": False, "reason": "the data recorded no actions for the model to condition on"}
    predicted_r, predicted_d = [], []
    for start in range(0, clips.video.shape[0], batch_size):
        video = clips.video[start : start + batch_size].to(device)
        given = clips.actions[start : start + batch_size].to(device)
        tokens = wm.encode(video)
        actions = wm.infer_actions(video, given.clamp_min(0)).long()
        rows_r, rows_d = [], []
        for t in range(video.shape[1] - 1):
            reward, done = wm.predict_outcome(tokens[:, : t + 1], actions[:, : t + 1])
            assert reward is not None and done is not None  # predicts_outcomes was checked above
            rows_r.append(reward.float().cpu())
            rows_d.append(done.float().cpu())
        predicted_r.append(torch.stack(rows_r, 1))
        predicted_d.append(torch.stack(rows_d, 1))
    pred_r, pred_d = torch.cat(predicted_r).double(), torch.cat(predicted_d).double()
    known_r = torch.isfinite(clips.rewards) & (clips.actions >= 0)
    true_r = clips.rewards.double()[known_r]
    p_r = pred_r[known_r]
    correlation = None
    if true_r.numel() > 1 and float(true_r.std()) > 0 and float(p_r.std()) > 0:
        correlation = float(torch.corrcoef(torch.stack([p_r, true_r]))[0, 1])
    recorded_d = clips.terminated if clips.terminated is not None else torch.full_like(clips.actions, -1)
    known_d = (recorded_d >= 0) & (clips.actions >= 0)
    true_d = recorded_d[known_d].double()
    return {
        "available": True,
        "transitions": int(known_r.sum()),
        "reward_correlation": correlation,
        "reward_sign_accuracy": float((torch.sign(p_r.round()) == torch.sign(true_r)).double().mean()),
        "reward_mae": float((p_r - true_r).abs().mean()),
        "nonzero_rewards": int((true_r != 0).sum()),
        "termination_transitions": int(known_d.sum()),
        "terminations": int(true_d.sum()),
        "termination_accuracy": float(((pred_d[known_d] > 0.5).double() == true_d).double().mean())
        if int(known_d.sum()) else None,
    }


def _evaluate_baseline(
    baseline: WorldModel | str | os.PathLike[str],
    clips: _Clips,
    device: str | torch.device | None,
    model_overrides: Mapping[str, Any] | None,
    horizon: int,
    batch_size: int,
    seed: int,
) -> dict[str, Any]:
    """Delta_t PSNR of a recorded-action model on the clips whose true actions are all known."""
    base, checkpoint_dir = _load_model(baseline, device, model_overrides)
    if not getattr(base.action_model, "uses_recorded_actions", False):
        raise ValueError(
            f"The baseline {baseline} infers its actions ({type(base.action_model).__name__}); a baseline is a "
            "model conditioned on the recorded actions (action_model=recorded)."
        )
    known = (clips.actions[:, :horizon] >= 0).all(dim=1)
    if not bool(known.any()):
        raise ValueError("The baseline needs clips with recorded actions; this data has none.")
    video, actions = clips.video[known], clips.actions[known]
    run_device = _model_device(base)
    was_training = base.training
    base.eval()
    devices = [run_device.index or 0] if run_device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            batches = [{"video": v, "actions": a} for v, a in zip(_batches(video, batch_size),
                                                                  _batches(actions, batch_size))]
            control = delta_psnr(base, batches, horizon=horizon, seed=seed)
    finally:
        base.train(was_training)
    return {
        "checkpoint": str(checkpoint_dir) if checkpoint_dir is not None else None,
        "model_name": base.name,
        "num_clips": int(known.sum()),
        "controllability": controllability_summary(control),
    }


def _measure(
    wm: WorldModel,
    clips: _Clips,
    *,
    horizon: int,
    batch_size: int,
    seed: int,
    fvd_weights: str | os.PathLike[str] | None,
    fvd_size: int,
    device: torch.device,
    figure_clips: int,
    latent_steps: int,
    probe_fit_fraction: float,
    random_trials: int,
    timings: dict[str, float],
    say: Callable[[str], None],
) -> EvalReport:
    video_NTCHW = clips.video
    n, t = video_NTCHW.shape[:2]
    h, w = video_NTCHW.shape[-2:]

    # Reconstruction and the tokenizer's codebook.
    say(f"reconstruction: encoding and decoding {n} clips")
    with _timed(timings, "reconstruction"):
        psnr_NT, ssim_NT, tokens = [], [], []
        window = 11 if min(h, w) >= 11 else max(1, min(h, w) - (1 - min(h, w) % 2))
        for batch in _batches(video_NTCHW, batch_size):
            batch = batch.to(device)
            tokens_BThw = wm.encode(batch)
            recon = wm.decode(tokens_BThw)
            psnr_NT.append(psnr(batch, recon, reduction="none").cpu())
            ssim_NT.append(ssim(batch, recon, reduction="none", window_size=window).cpu())
            tokens.append(tokens_BThw.cpu())
        psnr_NT_all, ssim_NT_all = torch.cat(psnr_NT).double(), torch.cat(ssim_NT).double()
        tokens_all = torch.cat(tokens)
        reconstruction = {
            "psnr": _spread(psnr_NT_all.mean(dim=1)),
            "ssim": _spread(ssim_NT_all.mean(dim=1)),
            "psnr_per_frame": psnr_NT_all.mean(dim=0).tolist(),
            "ssim_per_frame": ssim_NT_all.mean(dim=0).tolist(),
            "per_clip": {"psnr": psnr_NT_all.mean(dim=1).tolist(), "ssim": ssim_NT_all.mean(dim=1).tolist()},
            "ssim_window": window,
            "num_frames": t,
        }
        tokenizer_stats = codebook_stats(tokens_all, int(wm.tokenizer.vocab_size))

    # Latent actions: usage, and agreement with the true actions where the data has them.
    say(f"latent actions: inferring {n * (t - 1)} transitions")
    with _timed(timings, "latent_actions"):
        recorded = bool(getattr(wm.action_model, "uses_recorded_actions", False))
        latent, vectors = [], []
        for video_b, actions_b in zip(_batches(video_NTCHW, batch_size), _batches(clips.actions, batch_size)):
            given = actions_b.to(device) if recorded else None
            latent.append(wm.infer_actions(video_b.to(device), given).long().cpu())
            vectors.append(wm.action_model.latent_vectors(video_b.to(device), given).float().cpu())
        latent_NT, vectors_NTD = torch.cat(latent), torch.cat(vectors)
        lam_stats = codebook_stats(latent_NT, wm.num_actions)
        latent_actions = {
            "num_actions": wm.num_actions,
            "num_transitions": int(latent_NT.numel()),
            "usage": _usage_dict(lam_stats),
            "ground_truth": ground_truth_metrics(
                latent_NT,
                clips.actions,
                wm.num_actions,
                clips.num_true_actions,
                action_names=clips.action_names,
                action_groups=clips.action_groups,
                vectors=vectors_NTD,
                fit_fraction=probe_fit_fraction,
                random_trials=random_trials,
                seed=seed,
            ),
        }

    # Controllability.
    say(f"Delta_t PSNR: generating {horizon} frames per clip with inferred and with random actions")
    with _timed(timings, "delta_psnr"):
        batches = [{"video": v, "actions": a} for v, a in zip(_batches(video_NTCHW, batch_size),
                                                              _batches(clips.actions, batch_size))]
        control = delta_psnr(wm, batches, horizon=horizon, seed=seed)

    # Rewards and episode ends, where the model predicts them.
    with _timed(timings, "outcomes"):
        outcomes = outcome_metrics(wm, clips, batch_size=batch_size, device=device)

    # FVD of generations with the inferred actions against the real clips.
    notes: list[str] = []
    with _timed(timings, "fvd"):
        if not fvd_weights or not str(fvd_weights).strip():
            fvd_result = compute_fvd(video_NTCHW, video_NTCHW, None, size=fvd_size)
            fvd_result.reason = f"{fvd_result.reason} (command line: worldmodels eval ... --fvd-weights PATH)"
        elif n < 2:
            fvd_result = FVDResult(value=None, skipped=True, reason="FVD needs at least 2 clips", size=fvd_size)
        else:
            say(f"FVD: generating {n} clips and extracting I3D features")
            real = video_NTCHW[:, : horizon + 1]
            fake = torch.cat([
                _generate_inferred(wm, b.to(device), horizon, seed + 1 + i, a).cpu()
                for i, (b, a) in enumerate(zip(_batches(real, batch_size), _batches(clips.actions, batch_size)))
            ])
            fvd_result = compute_fvd(real, fake, fvd_weights, size=fvd_size, device=device)
            if n < 100:
                notes.append(
                    f"FVD from {n} clips is biased upwards and noisy; compare only with FVDs computed on as many clips."
                )

    say("drawing the pictures")
    with _timed(timings, "figures"):
        figures, layouts = _figures(wm, clips, latent_NT, latent_actions, control, horizon=horizon, seed=seed,
                                    device=device, figure_clips=figure_clips, latent_steps=latent_steps)

    return EvalReport(
        settings={},
        reconstruction=reconstruction,
        controllability=control,
        latent_actions=latent_actions,
        codebooks={"tokenizer": tokenizer_stats, "lam": lam_stats},
        fvd=fvd_result,
        timings=timings,
        notes=notes,
        figures=figures,
        figure_layouts=layouts,
        outcomes=outcomes,
    )


def _recorded_or_none(wm: WorldModel, actions: Tensor, horizon: int, device: torch.device) -> Tensor | None:
    """The recorded actions of the first ``horizon`` transitions, for a model conditioned on them."""
    if not getattr(wm.action_model, "uses_recorded_actions", False):
        return None
    return actions[:, :horizon].to(device)


def _generate_inferred(
    wm: WorldModel, video_BTCHW: Tensor, horizon: int, seed: int, actions_BT: Tensor | None = None
) -> Tensor:
    """Generate ``horizon`` frames from the first frame with the actions inferred from the real clip.

    Shapes:
        ``B T C H W`` (recorded actions ``B T-1``) -> ``B (1 + horizon) C H W``.
    """
    clip = video_BTCHW[:, : horizon + 1]
    given = None if actions_BT is None else _recorded_or_none(wm, actions_BT, horizon, clip.device)
    actions_BN = wm.infer_actions(clip, given).long()
    generator = torch.Generator(device=clip.device).manual_seed(seed)
    return wm.generate(clip[:, 0], actions_BN, generator=generator)


def _figures(
    wm: WorldModel,
    clips: _Clips,
    latent_NT: Tensor,
    latent_actions: dict[str, Any],
    control: ControllabilityResult,
    *,
    horizon: int,
    seed: int,
    device: torch.device,
    figure_clips: int,
    latent_steps: int,
) -> tuple[dict[str, PILImage], dict[str, dict[str, Any]]]:
    figures: dict[str, PILImage] = {}
    layouts: dict[str, dict[str, Any]] = {}
    video = clips.video
    p = min(figure_clips, video.shape[0])

    # real / reconstructed / generated over time, three rows per clip.
    shown = video[:p, : horizon + 1].to(device)
    recon = wm.decode(wm.encode(video[:p].to(device)))[:, : horizon + 1]
    actions_PN = wm.infer_actions(shown, _recorded_or_none(wm, clips.actions[:p], horizon, device)).long()
    generated = wm.generate(shown[:, 0], actions_PN, generator=torch.Generator(device=device).manual_seed(seed + 1))
    rows, labels = [], []
    for i in range(p):
        rows += [shown[i], recon[i], generated[i]]
        acts = " ".join(str(a) for a in actions_PN[i].tolist())
        labels += [f"clip {clips.indices[i]}\nreal", "reconstructed", f"generated\nactions {acts}"]
    col_labels = [f"t={k}" for k in range(horizon + 1)]
    image, layout = draw_frame_grid(
        torch.stack(rows).cpu(),
        row_labels=labels,
        col_labels=col_labels,
        title="Per clip: real frames / tokenizer reconstruction / generated from the real frame 0\n"
        "with the latent actions inferred from the real clip",
        group_rows=3,
    )
    figures["reconstruction.png"], layouts["reconstruction.png"] = image, layout.to_dict()

    # Every latent action rolled from the same prompt frames (the paper's consistency figure): one
    # row per action, one group of columns per prompt, so a consistent action moves alike in each group.
    a = wm.num_actions
    steps = min(latent_steps, max(1, wm.num_frames - 1))
    picks = spread_indices(video.shape[0], min(LATENT_FIGURE_PROMPTS, video.shape[0]))
    groups = []
    for i, clip in enumerate(picks):
        prompt_ACHW = video[clip : clip + 1, 0].to(device).expand(a, -1, -1, -1)
        actions_AS = torch.arange(a, device=device)[:, None].expand(a, steps)
        generator = torch.Generator(device=device).manual_seed(seed + 2 + i)
        groups.append(wm.generate(prompt_ACHW, actions_AS, generator=generator))
    rolled = torch.cat(groups, dim=1)  # A (P (1 + steps)) C H W
    fractions = latent_actions["usage"]["fraction"]
    truth = latent_actions["ground_truth"]
    source = (truth.get("collapsed") or truth) if truth.get("available") else None
    row_labels = []
    for k in range(a):
        label = f"action {k}\n{100 * fractions[k]:.0f}% of use"
        if source is not None:
            row = source["contingency_table"][k]
            if sum(row):
                top = max(range(len(row)), key=row.__getitem__)
                label += f"\nmostly {source['action_names'][top]} ({100 * row[top] / sum(row):.0f}%)"
        row_labels.append(label)
    image, layout = draw_frame_grid(
        rolled.cpu(),
        row_labels=row_labels,
        col_labels=[label for i in picks for label in [f"clip {clips.indices[i]}", *(f"+{k}" for k in range(1, steps + 1))]],
        title=f"Each latent action repeated {steps} times from the same {len(picks)} prompts (frame 0 of each clip);\n"
        "a consistent action moves the player the same way in every group of columns",
    )
    figures["latent_actions.png"], layouts["latent_actions.png"] = image, layout.to_dict()

    # Delta_t PSNR over t with one standard deviation over clips.
    t_values = list(range(1, control.horizon + 1))
    mean = control.delta_psnr_t.tolist()
    std = control.delta_psnr_std_t.tolist()
    image = draw_curve(
        t_values,
        mean,
        band_low=[m - s for m, s in zip(mean, std)],
        band_high=[m + s for m, s in zip(mean, std)],
        title="Controllability: Delta_t PSNR = PSNR(x_t, x^_t) - PSNR(x_t, x^'_t)",
        xlabel="t (generated frame)",
        ylabel="Delta_t PSNR (dB)",
        legend=f"mean over {control.num_clips} clips; band: +/- 1 std",
        mark_x=PAPER_T if control.horizon >= PAPER_T else None,
        mark_label=f"t={PAPER_T} (paper)",
    )
    figures["delta_psnr.png"] = image
    layouts["delta_psnr.png"] = {"size": list(image.size), "points": len(t_values)}
    return figures, layouts
