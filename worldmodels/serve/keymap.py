"""The game's own keys for a learned world: which latent action each control most likely is.

Axis legend: ``A`` latent actions, ``K`` true actions (or control groups).

Latent actions are learned without labels. Recorded data with true actions tells which true
action each latent action co-occurs with: the latent-vs-true contingency table of a
``worldmodels eval`` report, or one counted here from a data set (:func:`contingency_from_data`).
A control (``left``, ``right``, ``jump``, ``stay`` for CoinRun's collapsed groups) is bound to the
latent action ``a`` that maximises ``P(control | a)``, the few-label mapping read in reverse; its
confidence is that probability, next to the control's base rate ``P(control)``. A binding is
``confident`` when it is well above the base rate and seen often enough; the page says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from worldmodels.world_model import WorldModel

__all__ = ["KeyBinding", "KeyMap", "contingency_from_data", "keymap_from_report", "keymap_from_table"]

CONTROL_KEYS: dict[str, list[str]] = {
    "left": ["ArrowLeft", "a"],
    "right": ["ArrowRight", "d"],
    "jump": ["ArrowUp", " ", "w"],
    "up": ["ArrowUp", "w"],
    "down": ["ArrowDown", "s"],
}
"""Keyboard keys (``KeyboardEvent.key``) per control name; a control named after none of them gets no key."""

MIN_SUPPORT = 10
"""Transitions a latent action needs in the table before a binding to it counts as confident."""


@dataclass(frozen=True)
class KeyBinding:
    """One control of the game bound to a latent action.

    Attributes:
        control: the control's name (``"left"``, ``"jump"``, ...).
        keys: the keyboard keys that play it.
        action: the latent action it plays.
        probability: ``P(control | action)`` in the table.
        base_rate: ``P(control)`` over all transitions (what a random latent action would give).
        support: transitions of ``action`` in the table.
        confident: ``probability`` is at least 1.5x the base rate and 0.4, with ``support >= MIN_SUPPORT``.
    """

    control: str
    keys: tuple[str, ...]
    action: int
    probability: float
    base_rate: float
    support: int
    confident: bool


@dataclass(frozen=True)
class KeyMap:
    """The game's controls bound to latent actions, and the idle action (no key held).

    Attributes:
        bindings: one :class:`KeyBinding` per control that has keys (``stay`` / ``NOOP`` on the down
            arrow when the game has no down control).
        idle: the ``stay`` / ``NOOP`` control's latent action, or ``None``.
        source: where the table came from (a report path or a data set), for the page's legend.
        labels: per latent action, the true action it most often co-occurs with (``"right (53%)"``).
    """

    bindings: tuple[KeyBinding, ...]
    idle: int | None
    source: str
    labels: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the page)."""
        return {"bindings": [asdict(b) for b in self.bindings], "idle": self.idle, "source": self.source,
                "labels": list(self.labels)}


def keymap_from_table(table_AK: np.ndarray, names: list[str], source: str) -> KeyMap:
    """Bind each named control to the latent action most specific to it.

    Args:
        table_AK: counts of (latent action, true action or control group).
        names: the ``K`` column names (``"left"``, ``"RIGHT"``, ``"jump"``, ``"NOOP"``, ...).
        source: where the table came from.

    Returns:
        The key map (controls named after no key are left out).

    Shapes:
        ``table_AK`` ``A K``.
    """
    table = np.asarray(table_AK, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise ValueError(f"A contingency table A K with {len(names)} columns is needed, got shape {table.shape}.")
    per_latent = table.sum(1)
    total = max(float(table.sum()), 1.0)
    labels = []
    for a in range(table.shape[0]):
        if per_latent[a] <= 0:
            labels.append("never used")
        else:
            best = int(np.argmax(table[a]))
            labels.append(f"{names[best]} ({100 * table[a, best] / per_latent[a]:.0f}%)")
    given = np.divide(table, np.maximum(per_latent, 1.0)[:, None])  # P(control | latent)
    bindings, idle = [], None
    for k, name in enumerate(names):
        lowered = name.lower()
        column = given[:, k] * (per_latent > 0)
        action = int(np.argmax(column))
        base = float(table[:, k].sum() / total)
        keys = CONTROL_KEYS.get(lowered)
        if lowered in ("stay", "noop", "none"):
            idle = action
            keys = None if "down" in [n.lower() for n in names] else CONTROL_KEYS["down"]  # a free key plays it
        if keys is None or base <= 0:
            continue
        probability, support = float(column[action]), int(per_latent[action])
        confident = probability >= max(0.4, 1.5 * base) and support >= MIN_SUPPORT
        bindings.append(KeyBinding("stay" if lowered in ("noop", "none") else lowered, tuple(keys), action,
                                   probability, base, support, confident))
    if "jump" in {b.control for b in bindings}:  # "up" is the jump's key in a game with a jump
        bindings = [b for b in bindings if b.control != "up"]
    return KeyMap(tuple(bindings), idle, source, tuple(labels))


def keymap_from_report(report: str | os.PathLike[str], num_actions: int) -> KeyMap | None:
    """The key map of a ``worldmodels eval`` report (its collapsed groups where it has them), or ``None``.

    ``None`` when the file is missing, unreadable, had no true actions, or belongs to a model with
    another number of latent actions.
    """
    path = Path(report)
    try:
        truth = json.loads(path.read_text())["latent_actions"]["ground_truth"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    table, names = truth.get("contingency_table"), list(truth.get("action_names") or [])
    if not truth.get("available") or not isinstance(table, list) or len(table) != num_actions:
        return None
    table_AK = np.asarray(table, dtype=np.float64)
    collapsed = truth.get("collapsed") or {}
    groups = collapsed.get("groups")
    if isinstance(groups, dict) and groups:
        index = {n: i for i, n in enumerate(names)}
        group_names = list(groups)
        table_AK = np.stack([table_AK[:, [index[n] for n in groups[g] if n in index]].sum(1) for g in group_names], 1)
        names = group_names
    return keymap_from_table(table_AK, names, str(path))


def contingency_from_data(
    model: WorldModel, data: str | os.PathLike[str], split: str | None = "test", max_clips: int = 64
) -> tuple[np.ndarray, list[str]] | None:
    """Count (latent action, true action group) over held-out clips of a data set with true actions.

    Returns:
        The table ``A K`` and its column names (the data's collapsed groups where it has them),
        or ``None`` when the data recorded no true actions.
    """
    import torch

    from worldmodels.eval.held_out import load_held_out_clips

    clips = load_held_out_clips(data, model, split, max_clips)
    if clips.num_true_actions is None or not bool((clips.actions >= 0).any()):
        return None
    with torch.no_grad():
        latent = model.infer_actions(clips.video).cpu().numpy().reshape(-1)
    true = clips.actions.cpu().numpy().reshape(-1)
    known = true >= 0
    latent, true = latent[known], true[known]
    names = list(clips.action_names or [f"action {k}" for k in range(clips.num_true_actions)])
    columns: list[tuple[str, list[int]]] = [(n, [k]) for k, n in enumerate(names)]
    if clips.action_groups:
        columns = [(g, [int(k) for k in ks]) for g, ks in clips.action_groups.items()]
    table = np.zeros((model.num_actions, len(columns)))
    for j, (_, members) in enumerate(columns):
        for a in range(model.num_actions):
            table[a, j] = np.sum((latent == a) & np.isin(true, members))
    return table, [n for n, _ in columns]
