"""Procgen (the paper's CoinRun case study) through ``procgen.ProcgenGym3Env``: vectorised, 64x64.

A Procgen episode is a *window* of consecutive frames of one game episode (Procgen cannot reset
one environment of a vector); the level actually played is read back from the environment.
Install the ``coinrun`` extra.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from worldmodels.data.recorders.base import POLICIES, STICKY_MEAN_HOLD, Recorder, resize_frames
from worldmodels.data.recorders.splits import SplitPlan
from worldmodels.data.shards import Episode

__all__ = ["PROCGEN_COMBOS", "PROCGEN_STICKY_WEIGHTS", "ProcgenRecorder", "procgen_action_groups"]

PROCGEN_COMBOS: tuple[tuple[str, ...], ...] = (
    ("LEFT", "DOWN"), ("LEFT",), ("LEFT", "UP"), ("DOWN",), (), ("UP",), ("RIGHT", "DOWN"), ("RIGHT",),
    ("RIGHT", "UP"), ("D",), ("A",), ("W",), ("S",), ("Q",), ("E",),
)
"""Procgen's 15 actions as the buttons each presses (index = action); checked against the
installed procgen when an environment is created."""

PROCGEN_STICKY_WEIGHTS: dict[tuple[str, ...], float] = {
    ("RIGHT",): 0.25, ("RIGHT", "UP"): 0.2, ("LEFT",): 0.2, ("LEFT", "UP"): 0.1, ("UP",): 0.1, (): 0.15,
}  # fmt: skip
"""The ``sticky`` policy's Procgen button combinations and how often each is chosen (more right than
left, so the agent still gets through levels)."""


def procgen_action_groups(combos: tuple[tuple[str, ...], ...] | list[tuple[str, ...]] = PROCGEN_COMBOS) -> dict[str, list[int]]:
    """Procgen's actions grouped by what they visibly do in a platformer such as CoinRun.

    ``jump``: any combination with ``UP`` (a jump, possibly to a side); ``left`` / ``right``: the
    other combinations with ``LEFT`` / ``RIGHT``; ``stay``: the rest (no-op, ``DOWN`` and the
    letter keys, which CoinRun ignores). Written to the manifest as ``env.action_groups``, so an
    evaluation can score latent actions against these groups as well as against the raw actions.
    """
    groups: dict[str, list[int]] = {"left": [], "right": [], "jump": [], "stay": []}
    for index, combo in enumerate(combos):
        if "UP" in combo:
            groups["jump"].append(index)
        elif "LEFT" in combo:
            groups["left"].append(index)
        elif "RIGHT" in combo:
            groups["right"].append(index)
        else:
            groups["stay"].append(index)
    return groups


def _import_procgen():
    try:
        import procgen
    except ImportError as exc:
        raise ImportError(
            f"Recording Procgen games needs the procgen-mirror package ({exc}). Install it with "
            "pip install 'worldmodels[coinrun]' (it needs numpy<2)."
        ) from exc
    return procgen


class ProcgenRecorder(Recorder):
    """Records a Procgen game (``coinrun`` by default) with a vectorised ``ProcgenGym3Env``.

    Args:
        game: a Procgen game name (``coinrun``, ``ninja``, ``jumper``, ...).
        distribution_mode: ``easy``, ``hard`` (the Genie paper's setting), ``extreme``, ``memory``.
        num_envs: environments stepped in parallel (capped by the episodes of a split and by
            a memory budget for very long episodes).
        action_repeat: game steps per recorded step: each action the policy picks is held for
            ``action_repeat`` steps and only the frame after them is stored (Atari's frame skip),
            so every recorded transition has one known action; rewards are summed over the steps,
            and the shards' ``step`` counts recorded steps (game steps // ``action_repeat``).
            ``2`` records CoinRun at 7.5 frames per second.
        **options: further ``ProcgenGym3Env`` options (``use_backgrounds``, ``center_agent``,
            ``restrict_themes``, ``use_monochrome_assets``, ``paint_vel_info``, ...).

    Shapes:
        observations ``N 64 64 3`` uint8.
    """

    kind = "procgen"
    _BUFFER_BYTES = 2 << 30  # frames held in unfinished windows, over all environments

    def __init__(self, game: str = "coinrun", *, distribution_mode: str = "hard", num_envs: int = 64,
                 action_repeat: int = 1, **options: Any):
        procgen = _import_procgen()
        from procgen.env import DISTRIBUTION_MODE_DICT, ENV_NAMES

        modes = [m for m in DISTRIBUTION_MODE_DICT if m != "exploration"]  # exploration fixes the levels itself
        if distribution_mode not in modes:
            raise ValueError(f"Unknown Procgen distribution_mode {distribution_mode!r}; choose one of {modes}.")
        if game not in ENV_NAMES:
            close = difflib.get_close_matches(game, ENV_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown Procgen game {game!r}.{hint} Games: {', '.join(ENV_NAMES)}.")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if int(action_repeat) != action_repeat or int(action_repeat) < 1:
            raise ValueError(f"action_repeat is the game steps per recorded step, an integer >= 1; got {action_repeat!r}.")
        self.action_repeat = int(action_repeat)
        self._procgen = procgen
        self.game = game
        self.name = game if game == "coinrun" else f"procgen:{game}"
        self.distribution_mode = distribution_mode
        self.num_envs = num_envs
        self.options = dict(options)
        self.combos: list[tuple[str, ...]] = list(PROCGEN_COMBOS)

    def policies(self) -> tuple[str, ...]:
        return POLICIES

    @property
    def fps(self) -> float:
        """Procgen runs at 15 game steps per second; a recorded step spans ``action_repeat`` of them."""
        return 15.0 / self.action_repeat

    def env_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "game": self.game,
            "options": {"distribution_mode": self.distribution_mode, **self.options},
            "action_repeat": self.action_repeat,
            "num_actions": len(self.combos),
            "action_names": ["+".join(c) or "NOOP" for c in self.combos],
            "action_groups": procgen_action_groups(self.combos),
        }

    def _policy(self, policy: str | Callable[..., Any], n: int, rng: np.random.Generator) -> Callable[..., np.ndarray]:
        if callable(policy):
            return lambda obs, first: np.asarray(policy(obs, first), dtype=np.int64).reshape(n)
        index = {c: i for i, c in enumerate(self.combos)}
        right, jump_right = index[("RIGHT",)], index[("RIGHT", "UP")]
        if policy == "random":
            return lambda obs, first: rng.integers(0, len(self.combos), size=n)
        if policy == "biased":
            weights = {("RIGHT",): 0.33, ("RIGHT", "UP"): 0.25, ("LEFT",): 0.12, ("LEFT", "UP"): 0.06, ("UP",): 0.08, (): 0.08}
            rest = [i for i, c in enumerate(self.combos) if c not in weights]
            p = np.zeros(len(self.combos))
            for combo, weight in weights.items():
                p[index[combo]] = weight
            p[rest] = (1.0 - p.sum()) / len(rest)
            held = {"action": rng.choice(len(self.combos), size=n, p=p)}

            def biased(obs: np.ndarray, first: np.ndarray) -> np.ndarray:
                fresh = rng.choice(len(self.combos), size=n, p=p)
                keep = (rng.random(n) < 0.75) & ~first
                held["action"] = np.where(keep, held["action"], fresh)
                return held["action"]

            return biased
        if policy == "sticky":
            combos = [index[c] for c in PROCGEN_STICKY_WEIGHTS]
            sticky_p = np.array(list(PROCGEN_STICKY_WEIGHTS.values()))
            sticky_p = sticky_p / sticky_p.sum()
            current = {"action": rng.choice(combos, size=n, p=sticky_p)}

            def sticky(obs: np.ndarray, first: np.ndarray) -> np.ndarray:
                change = (rng.random(n) < 1.0 / STICKY_MEAN_HOLD) | first
                current["action"] = np.where(change, rng.choice(combos, size=n, p=sticky_p), current["action"])
                return current["action"]

            return sticky
        # scripted: run right; jump for 6 of every 16 steps and whenever the view stopped moving
        state: dict[str, Any] = {"prev": None, "t": np.zeros(n, np.int64)}

        def scripted(obs: np.ndarray, first: np.ndarray) -> np.ndarray:
            state["t"] = np.where(first, 0, state["t"] + 1)
            frame = obs.astype(np.int16)
            prev = state["prev"]
            stuck = np.zeros(n, bool) if prev is None else np.abs(frame - prev).mean(axis=(1, 2, 3)) < 1.0
            state["prev"] = frame
            return np.where(stuck | (state["t"] % 16 < 6), jump_right, right)

        return scripted

    def _episodes(
        self,
        plan: SplitPlan,
        frames_per_episode: int,
        policy: str | Callable[..., Any],
        image_size: tuple[int, int],
        rng: np.random.Generator,
    ) -> Iterator[Episode]:
        L = frames_per_episode
        budget_envs = max(1, self._BUFFER_BYTES // (L * 64 * 64 * 3))
        n = max(1, min(self.num_envs, plan.episodes, budget_envs))
        env = self._procgen.ProcgenGym3Env(
            num=n,
            env_name=self.game,
            distribution_mode=self.distribution_mode,
            start_level=plan.level_start,
            num_levels=plan.num_levels,
            rand_seed=int(rng.integers(0, 2**31 - 1)),
            **self.options,
        )
        if [tuple(c) for c in env.combos] != self.combos:
            env.close()
            raise RuntimeError(
                f"This procgen build maps actions to buttons as {env.combos}, not as worldmodels expects "
                f"({self.combos}); the recorded action labels would be wrong. Use procgen-mirror."
            )
        act = self._policy(policy, n, rng)
        frames: list[list[np.ndarray]] = [[] for _ in range(n)]
        actions: list[list[int]] = [[] for _ in range(n)]
        rewards: list[list[float]] = [[] for _ in range(n)]  # of each recorded action; NaN until observed
        ended: list[list[int]] = [[] for _ in range(n)]  # 1 where the action ended the game episode
        level_seed = np.full(n, -1, np.int64)
        window_start = np.zeros(n, np.int64)
        game_step = np.zeros(n, np.int64)
        pending = np.zeros(n, np.float64)  # reward of the last recorded action over its earlier repeats
        cut = np.zeros(n, bool)  # its game episode ended before its last repeat
        emitted = 0

        def close(i: int) -> Episode | None:
            window = frames[i], actions[i], rewards[i], ended[i]
            frames[i], actions[i], rewards[i], ended[i] = [], [], [], []
            if len(window[0]) < 2:
                return None
            return Episode(
                resize_frames(np.stack(window[0]), image_size),
                np.asarray(window[1], np.int64),
                level_seed=int(level_seed[i]),
                start_step=int(window_start[i]),
                rewards=np.asarray(window[2], np.float32),
                terminated=np.asarray(window[3], np.int8),
            )

        try:
            step = 0
            while emitted < plan.episodes:
                rew, ob, first = env.observe()
                rgb = np.array(ob["rgb"], dtype=np.uint8, copy=True)
                first = np.asarray(first, bool)
                ending = first | cut
                outcome = np.where(cut, pending, pending + np.asarray(rew, np.float64))
                if step > 0:  # the outcome of the last recorded action of every open window
                    for i in range(n):
                        if frames[i]:
                            rewards[i][-1] = float(outcome[i])
                            ended[i][-1] = int(ending[i])
                if step > 0 and ending.any():  # game episodes that ended: close their windows
                    for i in np.flatnonzero(ending):
                        episode = close(int(i))
                        if episode is not None and emitted < plan.episodes:
                            emitted += 1
                            yield episode
                    game_step[first] = 0
                if emitted >= plan.episodes:
                    break
                starting = [i for i in range(n) if not frames[i]]
                if starting:
                    info = env.get_info()
                    for i in starting:
                        level_seed[i] = int(info[i].get("level_seed", -1))
                        window_start[i] = game_step[i] // self.action_repeat  # in recorded steps
                a = np.asarray(act(rgb, first), dtype=np.int64)
                for i in range(n):
                    frames[i].append(rgb[i])
                    actions[i].append(int(a[i]))
                    rewards[i].append(float("nan"))
                    ended[i].append(-1)
                env.act(a.astype(np.int32))
                game_step += 1
                pending[:], cut[:] = 0.0, False
                for _ in range(self.action_repeat - 1):  # hold the action; these frames are not stored
                    rew, _, first = env.observe()
                    first = np.asarray(first, bool)
                    live = ~cut
                    pending[live] += np.asarray(rew, np.float64)[live]
                    game_step[first] = 0  # an episode that ended plays on, unrecorded, in its next level
                    cut |= first
                    env.act(a.astype(np.int32))
                    game_step += 1
                step += 1
                for i in range(n):
                    if len(frames[i]) >= L and emitted < plan.episodes:
                        episode = close(i)
                        if episode is not None:
                            emitted += 1
                            yield episode
        finally:
            env.close()
