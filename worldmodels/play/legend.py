"""What each latent action does: a legend for the play window and the arrow-key binding.

Axis legend: ``A`` latent actions, ``K`` steps rolled per action, ``H W`` pixels.

Latent actions are learned without labels, so their meaning has to be found out. Two sources:

* the ``worldmodels eval`` report of the checkpoint, when its data had true actions: the
  latent-vs-true-action contingency table (:func:`labels_from_eval_report`): each latent action is named after the true action it
  most often co-occurs with;
* otherwise, a measurement (:func:`estimate_action_effects`): every latent action is rolled a few
  steps from the prompt and the motion of the frame content is measured
  (:func:`describe_motion`), giving labels such as "moves right", "jumps" or "no visible change".
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldmodels.world_model import WorldModel

__all__ = [
    "ARROWS",
    "EVAL_REPORT_FILE",
    "ActionEffect",
    "MotionEstimate",
    "action_legend",
    "arrow_bindings",
    "describe_motion",
    "estimate_action_effects",
    "find_eval_report",
    "labels_from_eval_report",
    "phase_correlation",
]

ARROWS: tuple[str, ...] = ("left", "right", "up", "down")
"""The arrow keys, in the order they are bound."""

EVAL_REPORT_FILE = "eval/report.json"
"""Where ``worldmodels eval CHECKPOINT`` puts its report, relative to the checkpoint (see :func:`find_eval_report`)."""

_DIRECTIONS = {  # unit vectors in image coordinates (y grows downwards)
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}


@dataclass(frozen=True)
class MotionEstimate:
    """The measured motion of one latent action's rollout.

    Attributes:
        dx: mean horizontal displacement of the moving content, pixels per step (+ right).
        dy: mean vertical displacement, pixels per step (+ down).
        change: mean absolute change between consecutive frames, in ``[0, 1]``.
        label: a short description ("moves right", "jumps", "no visible change", ...).
    """

    dx: float
    dy: float
    change: float
    label: str


@dataclass(frozen=True)
class ActionEffect:
    """What one latent action was observed to do.

    Attributes:
        action: the latent action index.
        label: text for the legend.
        source: ``"eval report"`` (named after the true action) or ``"rollout"`` (measured).
        dx: measured pixels per step to the right (0 when named from a report).
        dy: measured pixels per step downwards (0 when named from a report).
        change: measured mean absolute change per step (0 when named from a report).
    """

    action: int
    label: str
    source: str
    dx: float = 0.0
    dy: float = 0.0
    change: float = 0.0


# ---------------------------------------------------------------------------------------- measuring
def phase_correlation(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """The global shift ``(dy, dx)`` that moves ``before``'s content onto ``after``'s.

    Args:
        before: ``H W`` float image.
        after: ``H W`` float image.

    Returns:
        ``(dy, dx)`` in whole pixels (+ down, + right), wrapped to ``[-H/2, H/2)`` x ``[-W/2, W/2)``.

    Shapes:
        ``H W`` each.
    """
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1])) if min(a.shape) > 2 else 1.0
    fa = np.fft.fft2((a - a.mean()) * window)
    fb = np.fft.fft2((b - b.mean()) * window)
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.fft.ifft2(cross).real
    peak_y, peak_x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    h, w = surface.shape
    dy = peak_y - h if peak_y >= (h + 1) // 2 else peak_y
    dx = peak_x - w if peak_x >= (w + 1) // 2 else peak_x
    return float(dy), float(dx)


def _direction_name(dx: float, dy: float) -> str:
    angle = math.degrees(math.atan2(-dy, dx)) % 360.0  # 0 = right, 90 = up
    names = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
    return names[int(((angle + 22.5) % 360.0) // 45.0)]


def describe_motion(
    frames: np.ndarray,
    background: np.ndarray | None = None,
    *,
    change_threshold: float = 0.01,
    pixel_threshold: float = 0.1,
    min_shift: float = 0.5,
    scroll_coverage: float = 0.5,
) -> MotionEstimate:
    """Measure how the content of a short rollout moves and describe it in words.

    The moving content is what differs from ``background`` (by default the per-pixel median of
    the frames, which is the static scene when an object moves across it). Its centroid is
    followed from frame to frame. When most of the frame differs (a scrolling view), the global
    shift between consecutive frames is measured by :func:`phase_correlation` instead, and the
    view's motion (opposite to the content's) is reported.

    Args:
        frames: the rollout, starting with the frame it started from.
        background: the static scene ``H W 3``; pass the median over several rollouts of the same
            prompt for a better estimate.
        change_threshold: mean absolute change per step below which nothing visibly happens.
        pixel_threshold: per-pixel difference from the background that counts as content.
        min_shift: displacement (pixels per step) below which the content does not move.
        scroll_coverage: share of changed pixels above which the whole view is taken to move.

    Returns:
        :class:`MotionEstimate`.

    Shapes:
        ``frames``: ``K+1 H W 3`` uint8 (or float in ``[0, 1]``), ``K >= 1``.
    """
    video = np.asarray(frames)
    video = video.astype(np.float64) / 255.0 if video.dtype == np.uint8 else video.astype(np.float64)
    if video.ndim != 4 or video.shape[0] < 2:
        raise ValueError(f"describe_motion needs frames shaped K+1 H W C with K >= 1, got {video.shape}.")
    change = float(np.abs(np.diff(video, axis=0)).mean())
    if change < change_threshold:
        return MotionEstimate(0.0, 0.0, change, "no visible change")
    if background is None:
        background = np.median(video, axis=0)
    else:
        background = np.asarray(background)
        background = background.astype(np.float64) / 255.0 if background.dtype == np.uint8 else background
    content = np.abs(video - background[None]).max(axis=-1)  # K+1 H W
    mask = content > pixel_threshold
    coverage = float(mask[1:].mean())
    if coverage > scroll_coverage:
        grey = video.mean(axis=-1)
        shifts = np.array([phase_correlation(grey[t], grey[t + 1]) for t in range(len(grey) - 1)])
        dy, dx = (-shifts.mean(axis=0)).tolist()  # the view moves against its content
        if math.hypot(dx, dy) < min_shift:
            return MotionEstimate(0.0, 0.0, change, "changes everywhere")
        return MotionEstimate(dx, dy, change, f"view moves {_direction_name(dx, dy)}")
    weights = content * mask
    ys, xs = np.mgrid[0 : video.shape[1], 0 : video.shape[2]]
    centroids: list[tuple[float, float] | None] = []
    for weight in weights:
        total = float(weight.sum())
        if total <= 0:
            centroids.append(None)
        else:
            centroids.append((float((weight * ys).sum() / total), float((weight * xs).sum() / total)))
    steps = [
        (c1[0] - c0[0], c1[1] - c0[1])
        for c0, c1 in zip(centroids[:-1], centroids[1:])
        if c0 is not None and c1 is not None
    ]
    if not steps:
        return MotionEstimate(0.0, 0.0, change, "changes in place")
    dys = [s[0] for s in steps]
    dy, dx = float(np.mean(dys)), float(np.mean([s[1] for s in steps]))
    rise = sum(d for d in dys if d < 0)
    first_up = next((i for i, d in enumerate(dys) if d < -min_shift), None)
    falls_after = first_up is not None and any(d > min_shift for d in dys[first_up + 1 :])
    if falls_after and rise < -2 * min_shift:
        side = f" {_direction_name(dx, 0.0)}" if abs(dx) >= min_shift else ""
        return MotionEstimate(dx, dy, change, f"jumps{side}")
    if math.hypot(dx, dy) < min_shift:
        return MotionEstimate(dx, dy, change, "changes in place")
    return MotionEstimate(dx, dy, change, f"moves {_direction_name(dx, dy)}")


def estimate_action_effects(
    model: WorldModel,
    prompt: torch.Tensor | None = None,
    *,
    steps: int = 4,
    seed: int = 0,
) -> list[ActionEffect]:
    """Roll every latent action ``steps`` times from the prompt and describe what it does.

    All ``A`` rollouts run as one batch through :meth:`~worldmodels.WorldModel.generate`; the
    static scene is the per-pixel median over all of them, and each rollout's motion is measured
    by :func:`describe_motion` starting from the tokenizer's reconstruction of the prompt.

    Args:
        model: the world model.
        prompt: ``T C H W`` (or ``C H W``) float frames of the model's size (``None``: a black frame).
        steps: frames generated per action (at least 2 to see a jump).
        seed: seed of the sampler's generator.

    Returns:
        One :class:`ActionEffect` per latent action, in index order.

    Shapes:
        ``prompt``: ``T C H W`` in ``[0, 1]``.
    """
    from worldmodels.envs.prompts import frame_to_uint8

    if steps < 1:
        raise ValueError(f"estimate_action_effects needs steps >= 1, got {steps}.")
    device = next(iter(model.parameters())).device
    num_actions = model.num_actions
    if prompt is None:
        prompt = torch.zeros(1, model.in_channels, *model.image_size)
    if prompt.ndim == 3:
        prompt = prompt[None]
    prompt_BTCHW = prompt[-model.num_frames :].to(device)[None]
    generator = torch.Generator(device=device).manual_seed(int(seed))
    with torch.inference_mode():
        tokens = model.encode(prompt_BTCHW)
        start = model.decode(tokens[:, -model.num_frames :])[:, -1]  # 1 C H W
        actions = torch.arange(num_actions, device=device)[:, None].expand(num_actions, steps)
        batch = prompt_BTCHW.expand(num_actions, -1, -1, -1, -1)
        video = model.generate(batch, actions, generator=generator)[:, -steps:]  # A K C H W
        video = torch.cat([start[:, None].expand(num_actions, -1, -1, -1, -1), video], dim=1)
    frames = np.stack([np.stack([frame_to_uint8(f) for f in clip]) for clip in video])  # A K+1 H W 3
    background = np.median(frames.reshape(-1, *frames.shape[2:]).astype(np.float64) / 255.0, axis=0)
    effects = []
    for action in range(num_actions):
        motion = describe_motion(frames[action], background)
        effects.append(ActionEffect(action, motion.label, "rollout", motion.dx, motion.dy, motion.change))
    return effects


# ---------------------------------------------------------------------------------------- eval reports
def find_eval_report(checkpoint: str | os.PathLike[str], levels: int = 3) -> Path | None:
    """The ``worldmodels eval`` report of a checkpoint: ``eval/report.json`` in it or in one of its parents.

    ``worldmodels eval CHECKPOINT`` writes ``CHECKPOINT/eval/report.json``; the demo writes
    ``OUT/eval/report.json`` beside ``OUT/run/dynamics/final``. Both are found from the checkpoint.

    Args:
        checkpoint: the checkpoint directory.
        levels: how many parent directories to look in.

    Returns:
        The report path, or ``None``.
    """
    base = Path(checkpoint)
    for directory in [base, *base.parents[:levels]]:
        for candidate in (directory / EVAL_REPORT_FILE, directory / "report.json"):
            if candidate.is_file():
                return candidate
    return None


def labels_from_eval_report(report: str | os.PathLike[str], num_actions: int) -> list[str] | None:
    """Name each latent action after the true action it most often co-occurs with.

    Reads the latent-vs-true contingency table that :func:`worldmodels.eval.evaluation.evaluate`
    writes to ``report.json`` (``latent_actions.ground_truth.contingency_table`` with
    ``action_names``).

    Args:
        report: a ``report.json`` file, or a checkpoint directory (see :func:`find_eval_report`).
        num_actions: ``A``; a table with another number of rows (another model) is ignored.

    Returns:
        ``A`` labels such as ``"RIGHT (87%)"``, or ``None`` when there is no report, the data had no
        true actions, or the table belongs to another model.

    Shapes:
        the table is ``A K``.
    """
    path: Path | None = Path(report)
    if path is not None and path.is_dir():
        path = find_eval_report(path)
    if path is None or not path.is_file():
        return None
    try:
        truth = json.loads(path.read_text())["latent_actions"]["ground_truth"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    table, names = truth.get("contingency_table"), truth.get("action_names") or []
    if not truth.get("available") or not isinstance(table, list) or len(table) != num_actions:
        return None
    labels = []
    for row in table:
        counts = [float(c) for c in row]
        total = sum(counts)
        if total <= 0:
            labels.append("never used")
            continue
        best = int(np.argmax(counts))
        name = names[best] if best < len(names) else f"true action {best}"
        labels.append(f"{name} ({100 * counts[best] / total:.0f}%)")
    return labels


# ---------------------------------------------------------------------------------------- together
def action_legend(
    model: WorldModel,
    prompt: torch.Tensor | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    steps: int = 4,
    seed: int = 0,
) -> list[ActionEffect]:
    """The legend of the play window: from an eval report when there is one, else measured.

    Args:
        model: the world model.
        prompt: ``T C H W`` frames of the model's size (for the measurement).
        checkpoint: the checkpoint directory (searched for an eval report, see :func:`find_eval_report`).
        report: an eval ``report.json`` to use instead of searching.
        steps: steps rolled per action when measuring.
        seed: sampler seed when measuring.

    Returns:
        One :class:`ActionEffect` per latent action.

    Shapes:
        ``prompt``: ``T C H W``.
    """
    source = report if report is not None else checkpoint
    if source is not None:
        labels = labels_from_eval_report(source, model.num_actions)
        if labels is not None:
            return [ActionEffect(a, label, "eval report") for a, label in enumerate(labels)]
    return estimate_action_effects(model, prompt, steps=steps, seed=seed)


def arrow_bindings(effects: Sequence[ActionEffect], num_actions: int) -> dict[str, int]:
    """Bind the arrow keys to latent actions.

    An arrow goes to the action whose label names its direction (a report's true action such as
    ``LEFT``, or a measured "moves left"; "up" prefers a jump), else to the measured motion that
    best matches the direction; arrows left unbound then take the unused actions in index order.

    Args:
        effects: the legend (:func:`action_legend`).
        num_actions: ``A``.

    Returns:
        ``{"left": a, "right": a, "up": a, "down": a}`` (fewer when ``A < 4``).

    Shapes:
        not applicable.
    """
    bound: dict[str, int] = {}
    used: set[int] = set()
    for arrow in ARROWS:
        candidates = []
        for effect in effects:
            if effect.action in used:
                continue
            words = effect.label.lower().replace("+", " ").replace("-", " ").replace("(", " ").split()
            if arrow in words and not any(o in words for o in ARROWS if o != arrow):
                candidates.append((0, effect.action))  # names exactly this direction
            elif arrow in words:
                candidates.append((1, effect.action))  # a diagonal or combination with it
            elif arrow == "up" and "jumps" in words:
                candidates.append((0, effect.action))
        if not candidates and effects and effects[0].source == "rollout":
            ux, uy = _DIRECTIONS[arrow]
            scored = [(e.dx * ux + e.dy * uy, e.action) for e in effects if e.action not in used]
            scored = [s for s in scored if s[0] >= 0.5]
            if scored:
                candidates.append((2, max(scored)[1]))
        if candidates:
            action = min(candidates)[1]
            bound[arrow] = action
            used.add(action)
    free = [a for a in range(num_actions) if a not in used]
    for arrow in ARROWS:
        if arrow not in bound and free:
            bound[arrow] = free.pop(0)
    return bound
