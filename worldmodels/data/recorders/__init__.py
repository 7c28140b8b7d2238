"""Record environments into data sets: roll out a policy, write uint8 shards and a manifest.

Two families of environments are supported, looked up by name in :data:`RECORDERS`:

* ``coinrun`` / ``procgen:GAME``: Procgen through ``procgen.ProcgenGym3Env`` (vectorised,
  64x64 observations), the paper's CoinRun case study. Install the ``coinrun`` extra.
* ``gym:ENV_ID``: any gymnasium environment that renders with ``render_mode="rgb_array"``,
  e.g. ``gym:ALE/Breakout-v5`` (needs ``ale-py``) or ``gym:MiniGrid-Empty-8x8-v0`` (needs
  ``minigrid``).

Policies, by name:

* ``random``: uniform over the action space.
* ``biased``: random, but biased toward making progress. Procgen: *sticky* random button
  combinations (the previous one is held with probability 0.75, so motions last long enough
  for their effect to show despite the game's inertia), ``RIGHT`` and ``RIGHT+UP`` (jump right)
  most of the time so the agent crosses CoinRun levels, but also left, jump, stand still and
  the other combinations, so every kind of motion appears in the data. MiniGrid: mostly
  ``forward``. Other gymnasium environments: *sticky* random actions (the previous action is
  repeated with probability 0.8), which gives longer, more coherent motions than ``random``.
* ``sticky``: one of the actions that visibly do something, *held* for a random number of steps
  (geometric, mean :data:`STICKY_MEAN_HOLD`), so a motion outlasts the game's inertia and each
  stretch of frames shows what its action does. Procgen: walk left, walk right, jump in place,
  jump left, jump right, stand still. Gymnasium: any action.
* ``scripted``: a simple controller. Procgen: run right, jump in bursts and whenever the view
  stops scrolling (a wall or crate ahead); finishes many CoinRun levels. MiniGrid: walk
  greedily toward the goal square. Not available for other environments.

A Python callable may be passed instead of a name (see :meth:`Recorder.record`).

**Levels and splits.** Each split (train / val / test) plays its own disjoint range of level
seeds: split ``k`` uses ``[start_level + offset_k, start_level + offset_k + num_levels_k)``, where
``num_levels_k`` is ``num_levels`` or, by default, the number of episodes of the split. For
gymnasium, episode ``j`` of a split resets with seed ``range_start + j % num_levels_k``; Procgen
draws levels from the range itself (``start_level``/``num_levels``) and the level actually
played is read back from the environment.

**Rewards and episode ends.** Every recorded action keeps its reward and whether it ended the
game episode (``terminated``; truncation by a time limit is not termination). Procgen resets a
finished game by itself, so the frame after the last action of a game is never seen: that
action's outcome is kept on the window's last frame, which no transition of a clip uses.

**Episodes.** A recorded episode holds at most ``frames_per_episode`` frames and never crosses
a game-episode boundary. Gymnasium episodes are the first frames after a reset. Procgen
cannot reset one environment of a vector, so a Procgen episode is a *window* of consecutive
frames of one game episode: when a window is full the next one continues the same game (its
``step`` column says where in the game it starts). Windows of fewer than two frames (no
transition) are dropped.

Axis legend: ``N`` parallel environments, ``T`` frames, ``H W C`` pixels.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from worldmodels.data.recorders.base import POLICIES, STICKY_MEAN_HOLD, Recorder, RecordResult, resize_frames
from worldmodels.data.recorders.gym import GymRecorder
from worldmodels.data.recorders.procgen import (
    PROCGEN_COMBOS,
    PROCGEN_STICKY_WEIGHTS,
    ProcgenRecorder,
    procgen_action_groups,
)
from worldmodels.data.recorders.splits import DEFAULT_SPLITS, SplitPlan, parse_splits, plan_splits

__all__ = [
    "DEFAULT_SPLITS",
    "POLICIES",
    "PROCGEN_COMBOS",
    "PROCGEN_STICKY_WEIGHTS",
    "RECORDERS",
    "STICKY_MEAN_HOLD",
    "GymRecorder",
    "ProcgenRecorder",
    "RecordResult",
    "Recorder",
    "SplitPlan",
    "get_recorder",
    "parse_splits",
    "plan_splits",
    "procgen_action_groups",
    "record",
    "resize_frames",
]


RECORDERS: dict[str, Callable[..., Recorder]] = {
    "coinrun": lambda arg=None, **kw: ProcgenRecorder("coinrun", **kw),
    "procgen": lambda arg=None, **kw: ProcgenRecorder(arg or "coinrun", **kw),
    "gym": lambda arg=None, **kw: GymRecorder(_require(arg, "gym:ENV_ID, e.g. gym:ALE/Breakout-v5"), **kw),
}
"""Recorder factories by name. ``NAME`` or ``NAME:ARG`` selects ``RECORDERS[NAME](ARG, **kwargs)``:
``coinrun``, ``procgen:ninja``, ``gym:ALE/Breakout-v5``, ``gym:MiniGrid-Empty-8x8-v0``. Add an
entry to support another family of environments."""


def _require(arg: str | None, usage: str) -> str:
    if not arg:
        raise ValueError(f"Missing environment id; write {usage}.")
    return arg


def get_recorder(env: str, **kwargs: Any) -> Recorder:
    """Build the recorder for an environment name such as ``coinrun`` or ``gym:ALE/Breakout-v5``.

    Args:
        env: ``NAME`` or ``NAME:ARG`` with ``NAME`` a key of :data:`RECORDERS`.
        **kwargs: options of the recorder (Procgen options, or ``gymnasium.make`` arguments).

    Returns:
        A :class:`Recorder`.

    Raises:
        ValueError: for an unknown name (with close matches and a hint for bare gym ids).

    Shapes:
        none.
    """
    name, _, arg = env.partition(":")
    if name in RECORDERS:
        return RECORDERS[name](arg or None, **kwargs)
    close = difflib.get_close_matches(name, list(RECORDERS), n=2)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    if not arg:
        hint += f" For a gymnasium environment write gym:{env}."
    raise ValueError(f"Unknown environment {env!r}; recorders exist for {', '.join(f'{k}' for k in RECORDERS)} "
                     f"(as coinrun, procgen:GAME, gym:ENV_ID).{hint}")


def record(env: str, out: str | Path, *, env_options: Mapping[str, Any] | None = None, **kwargs: Any) -> RecordResult:
    """Record a data set: ``get_recorder(env, **env_options).record(out, **kwargs)``.

    Args:
        env: e.g. ``coinrun`` or ``gym:MiniGrid-Empty-8x8-v0``.
        out: the data set directory.
        env_options: recorder options (see :func:`get_recorder`).
        **kwargs: arguments of :meth:`Recorder.record` (``episodes``, ``frames_per_episode``, ...).

    Returns:
        :class:`RecordResult`.

    Example:
        >>> result = record("coinrun", "data/coinrun", episodes=100, frames_per_episode=500)  # doctest: +SKIP
        >>> result.manifest["counts"]                                                          # doctest: +SKIP

    Shapes:
        stored frames ``T H W C`` uint8.
    """
    return get_recorder(env, **dict(env_options or {})).record(out, **kwargs)
