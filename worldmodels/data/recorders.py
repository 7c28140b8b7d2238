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

import abc
import difflib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.data.shards import Episode, ShardWriter

__all__ = [
    "POLICIES",
    "PROCGEN_COMBOS",
    "RECORDERS",
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

POLICIES: tuple[str, ...] = ("random", "biased", "sticky", "scripted")
"""Built-in policy names (which of them an environment supports: :meth:`Recorder.policies`)."""

DEFAULT_SPLITS = "train=0.8,val=0.1,test=0.1"

STICKY_MEAN_HOLD = 8.0
"""Mean number of steps the ``sticky`` policy holds an action (geometric distribution)."""

PROCGEN_STICKY_WEIGHTS: dict[tuple[str, ...], float] = {
    ("RIGHT",): 0.25, ("RIGHT", "UP"): 0.2, ("LEFT",): 0.2, ("LEFT", "UP"): 0.1, ("UP",): 0.1, (): 0.15,
}  # fmt: skip
"""The ``sticky`` policy's Procgen button combinations and how often each is chosen (more right than
left, so the agent still gets through levels)."""


# ---------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class SplitPlan:
    """What to record for one split.

    Attributes:
        name: split name (``train``, ``val``, ``test``, ...).
        index: position of the split (seeds the policy's random generator).
        episodes: episodes to record.
        level_start: first level seed of the split's range.
        num_levels: size of the split's level-seed range.
    """

    name: str
    index: int
    episodes: int
    level_start: int
    num_levels: int

    @property
    def level_stop(self) -> int:
        """One past the last level seed of the split."""
        return self.level_start + self.num_levels


def parse_splits(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """Parse ``"train=0.8,val=0.1,test=0.1"`` (fractions) or ``"train=100,val=10"`` (counts).

    Args:
        text: the specification, a mapping, or ``None`` for the default 80/10/10.

    Returns:
        Split name -> fraction (a float) or episode count (an int), in the given order.

    Raises:
        ValueError: on malformed entries, negative values, or mixed fractions and counts.

    Shapes:
        none.
    """
    if text is None:
        text = DEFAULT_SPLITS
    items: list[tuple[str, float]] = []
    if isinstance(text, Mapping):
        items = [(str(k), v) for k, v in text.items()]
    else:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(
                    f"Bad split entry {part!r} in {text!r}; write NAME=VALUE, e.g. train=0.8,val=0.1,test=0.1."
                )
            try:
                number: float = int(value) if value.strip().lstrip("+").isdigit() else float(value)
            except ValueError:
                raise ValueError(
                    f"Bad split value {value!r} for {name.strip()!r}: expected a fraction or a count."
                ) from None
            items.append((name.strip(), number))
    out: dict[str, float] = {}
    for name, number in items:
        if name in out:
            raise ValueError(f"Split {name!r} is given twice in {text!r}.")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"Split name {name!r} must be a plain word such as train, val or test.")
        if number < 0:
            raise ValueError(f"Split {name!r} has a negative size {number}.")
        out[name] = number
    if not out:
        raise ValueError(f"No splits in {text!r}; e.g. train=0.8,val=0.1,test=0.1.")
    kinds = {isinstance(v, int) for v in out.values()}
    if len(kinds) > 1:
        raise ValueError(f"Splits {text!r} mix counts and fractions; give all as counts or all as fractions.")
    if not isinstance(next(iter(out.values())), int) and not math.isclose(sum(out.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"Split fractions {text!r} sum to {sum(out.values()):g}, not 1.")
    return out


def plan_splits(
    episodes: int | None,
    splits: str | Mapping[str, float] | None = None,
    *,
    start_level: int = 0,
    num_levels: int | None = None,
) -> list[SplitPlan]:
    """Turn a split specification into episode counts and disjoint level-seed ranges.

    Fractions are turned into counts by largest remainder; a split with a positive fraction
    gets at least one episode when there are enough episodes to go round.

    Args:
        episodes: total episodes (may be ``None`` when ``splits`` gives counts).
        splits: see :func:`parse_splits`.
        start_level: first level seed of the first split.
        num_levels: level seeds per split (default: one per episode of the split).

    Returns:
        One :class:`SplitPlan` per split with at least one episode, in order.

    Shapes:
        none.
    """
    spec = parse_splits(splits)
    if all(isinstance(v, int) for v in spec.values()):
        counts = {k: int(v) for k, v in spec.items()}
        if episodes is not None and sum(counts.values()) != episodes:
            raise ValueError(
                f"The split counts {dict(counts)} add up to {sum(counts.values())} episodes, but {episodes} were "
                "requested; make them agree or leave out the episode count."
            )
    else:
        if episodes is None or episodes < 1:
            raise ValueError(f"Recording needs episodes >= 1 when splits are fractions, got {episodes}.")
        exact = {k: v * episodes for k, v in spec.items()}
        counts = {k: int(math.floor(x)) for k, x in exact.items()}
        for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: episodes - sum(counts.values())]:
            counts[k] += 1
        for k in spec:  # every requested split gets an episode if another split can spare one
            if spec[k] > 0 and counts[k] == 0:
                donor = max(counts, key=lambda d: counts[d])
                if counts[donor] > 1:
                    counts[donor] -= 1
                    counts[k] = 1
    if num_levels is not None and num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}.")
    if start_level < 0:
        raise ValueError(f"start_level must be >= 0, got {start_level}.")
    plans = []
    level = start_level
    for index, (name, count) in enumerate(counts.items()):
        if count <= 0:
            continue
        levels = num_levels or count
        plans.append(SplitPlan(name, index, count, level, levels))
        level += levels
    if not plans:
        raise ValueError(f"The splits {spec} leave no episode to record.")
    return plans


# ---------------------------------------------------------------------------------------- frames
def resize_frames(frames: np.ndarray, image_size: int | tuple[int, int]) -> np.ndarray:
    """Resize uint8 frames with Pillow's antialiased bilinear filter (no-op at the same size).

    Args:
        frames: ``T H W C`` uint8 (``C = 3``).
        image_size: ``S`` or ``(H, W)``.

    Returns:
        ``T H' W' C`` uint8.

    Shapes:
        ``T H W C -> T H' W' C``.
    """
    from PIL import Image

    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    if tuple(frames.shape[1:3]) == (h, w):
        return frames
    out = np.empty((len(frames), h, w, frames.shape[-1]), dtype=np.uint8)
    for t, frame in enumerate(frames):
        out[t] = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))
    return out


# ---------------------------------------------------------------------------------------- base
@dataclass
class RecordResult:
    """What :meth:`Recorder.record` did.

    Attributes:
        directory: the data set directory.
        manifest: the manifest written (see :mod:`worldmodels.data.shards`).
        seconds: wall time of the recording (stepping, resizing, writing).
    """

    directory: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def frames_per_second(self) -> float:
        """Recorded frames per second of wall time."""
        return self.manifest["counts"]["frames"] / max(self.seconds, 1e-9)


class Recorder(abc.ABC):
    """Rolls out one environment with a policy and writes a data set.

    Subclasses implement :meth:`env_metadata`, :meth:`policies` and :meth:`_episodes`.
    """

    kind: str = ""
    name: str = ""

    @abc.abstractmethod
    def env_metadata(self) -> dict[str, Any]:
        """The manifest's ``env`` entry (name, kind, options, num_actions, action_names)."""

    @abc.abstractmethod
    def policies(self) -> tuple[str, ...]:
        """Names of the built-in policies this environment supports."""

    @property
    def fps(self) -> float:
        """Frames per second at which the recording plays back naturally."""
        return 15.0

    @abc.abstractmethod
    def _episodes(
        self,
        plan: SplitPlan,
        frames_per_episode: int,
        policy: str | Callable[..., Any],
        image_size: tuple[int, int],
        rng: np.random.Generator,
    ) -> Iterator[Episode]:
        """Yield exactly ``plan.episodes`` episodes of the split."""

    def _check_policy(self, policy: str | Callable[..., Any]) -> None:
        if callable(policy):
            return
        if policy not in self.policies():
            close = difflib.get_close_matches(str(policy), POLICIES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close and close[0] in self.policies() else ""
            raise ValueError(
                f"Policy {policy!r} is not available for {self.name}; choose one of {list(self.policies())}.{hint}"
            )

    def record(
        self,
        out: str | Path,
        *,
        episodes: int | None,
        frames_per_episode: int,
        policy: str | Callable[..., Any] = "biased",
        image_size: int | tuple[int, int] = 64,
        splits: str | Mapping[str, float] | None = None,
        seed: int = 0,
        start_level: int = 0,
        num_levels: int | None = None,
        frames_per_shard: int = 4096,
        compress: bool = False,
        overwrite: bool = False,
        progress: bool = True,
    ) -> RecordResult:
        """Record a data set into ``out`` (shards per split plus ``manifest.json``).

        The manifest is written last: an interrupted recording leaves shards but no manifest,
        and is never mistaken for a complete data set.

        Args:
            out: the data set directory.
            episodes: total episodes over all splits (``None`` when ``splits`` gives counts).
            frames_per_episode: ``L``, the most frames of one episode.
            policy: a name of :meth:`policies`, or a callable. Procgen calls it as
                ``policy(obs_NHWC_uint8, first_N_bool) -> N actions``; gymnasium as
                ``policy(env, frame_HWC_uint8) -> action``.
            image_size: stored frame size, ``S`` or ``(H, W)``.
            splits: e.g. ``"train=0.8,val=0.1,test=0.1"`` or ``"train=100,val=10"``.
            seed: seeds the policies (and Procgen's level sampling).
            start_level: first level seed of the first split.
            num_levels: level seeds per split (default: one per episode of the split).
            frames_per_shard: frames per shard file.
            compress: write compressed shards.
            overwrite: replace an existing data set in ``out``.
            progress: show a tqdm progress bar.

        Returns:
            :class:`RecordResult`.

        Shapes:
            stored frames ``T H W C`` uint8 with ``(H, W) = image_size``.
        """
        from tqdm.auto import tqdm

        if frames_per_episode < 2:
            raise ValueError(f"frames_per_episode must be >= 2 (one transition), got {frames_per_episode}.")
        self._check_policy(policy)
        hw = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
        if min(hw) < 1:
            raise ValueError(f"image_size must be positive, got {image_size}.")
        plans = plan_splits(episodes, splits, start_level=start_level, num_levels=num_levels)
        policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", type(policy).__name__)
        metadata = {
            "env": self.env_metadata(),
            "policy": {"name": policy_name, "builtin": isinstance(policy, str)},
            "seed": seed,
            "image_size": list(hw),
            "fps": self.fps,
            "frames_per_episode": frames_per_episode,
            "splits": {p.name: {"level_seeds": [p.level_start, p.level_stop]} for p in plans},
        }
        total = sum(p.episodes for p in plans) * frames_per_episode
        start = time.perf_counter()
        writer = ShardWriter(out, metadata, frames_per_shard=frames_per_shard, compress=compress, overwrite=overwrite)
        bar = tqdm(total=total, unit="frame", unit_scale=True, disable=not progress, desc=f"record {self.name}")
        try:
            for plan in plans:
                bar.set_postfix_str(plan.name)
                rng = np.random.default_rng([seed, plan.index])
                for episode in self._episodes(plan, frames_per_episode, policy, hw, rng):
                    writer.add(plan.name, episode)
                    if len(episode) < frames_per_episode:
                        bar.total -= frames_per_episode - len(episode)
                    bar.update(len(episode))
            writer.metadata["recording"] = {"seconds": round(time.perf_counter() - start, 3)}
            manifest = writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        return RecordResult(Path(out), manifest, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------- procgen
PROCGEN_COMBOS: tuple[tuple[str, ...], ...] = (
    ("LEFT", "DOWN"), ("LEFT",), ("LEFT", "UP"), ("DOWN",), (), ("UP",), ("RIGHT", "DOWN"), ("RIGHT",),
    ("RIGHT", "UP"), ("D",), ("A",), ("W",), ("S",), ("Q",), ("E",),
)
"""Procgen's 15 actions as the buttons each presses (index = action); checked against the
installed procgen when an environment is created."""


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
        **options: further ``ProcgenGym3Env`` options (``use_backgrounds``, ``center_agent``,
            ``restrict_themes``, ``use_monochrome_assets``, ``paint_vel_info``, ...).

    Shapes:
        observations ``N 64 64 3`` uint8.
    """

    kind = "procgen"
    _BUFFER_BYTES = 2 << 30  # frames held in unfinished windows, over all environments

    def __init__(self, game: str = "coinrun", *, distribution_mode: str = "hard", num_envs: int = 64, **options: Any):
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
        self._procgen = procgen
        self.game = game
        self.name = game if game == "coinrun" else f"procgen:{game}"
        self.distribution_mode = distribution_mode
        self.num_envs = num_envs
        self.options = dict(options)
        self.combos: list[tuple[str, ...]] = list(PROCGEN_COMBOS)

    def policies(self) -> tuple[str, ...]:
        return POLICIES

    def env_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "game": self.game,
            "options": {"distribution_mode": self.distribution_mode, **self.options},
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
                if step > 0:  # the outcome of the last recorded action of every open window
                    for i in range(n):
                        if frames[i]:
                            rewards[i][-1] = float(rew[i])
                            ended[i][-1] = int(first[i])
                if step > 0 and first.any():  # game episodes that ended: close their windows
                    for i in np.flatnonzero(first):
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
                        window_start[i] = game_step[i]
                a = np.asarray(act(rgb, first), dtype=np.int64)
                for i in range(n):
                    frames[i].append(rgb[i])
                    actions[i].append(int(a[i]))
                    rewards[i].append(float("nan"))
                    ended[i].append(-1)
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


# ---------------------------------------------------------------------------------------- gymnasium
_GYM_NAMESPACE_MODULES: dict[str, tuple[str, str]] = {
    "ALE": ("ale_py", "ale-py"),
    "MiniGrid": ("minigrid", "minigrid"),
    "BabyAI": ("minigrid", "minigrid"),
}
"""Environment-id prefix -> (module registering it, pip package)."""


def _make_gym_env(env_id: str, **kwargs: Any):
    import gymnasium

    prefix = env_id.split("/")[0] if "/" in env_id else env_id.split("-")[0]
    if prefix in _GYM_NAMESPACE_MODULES:
        module_name, package = _GYM_NAMESPACE_MODULES[prefix]
        try:
            module = __import__(module_name)
        except ImportError as exc:
            raise ImportError(
                f"{env_id} needs the {package} package ({exc}); install it with pip install {package}."
            ) from exc
        gymnasium.register_envs(module)
    try:
        return gymnasium.make(env_id, render_mode="rgb_array", **kwargs)
    except gymnasium.error.Error as exc:
        raise ValueError(
            f"gymnasium cannot make {env_id!r}: {exc}. List known ids with "
            "python -c 'import gymnasium; gymnasium.pprint_registry()'."
        ) from exc


def _is_minigrid(env: Any) -> bool:
    return hasattr(env.unwrapped, "agent_pos") and hasattr(env.unwrapped, "grid")


class _StickyRandom:
    """Random actions that repeat the previous one with probability ``repeat``."""

    def __init__(self, n: int, rng: np.random.Generator, repeat: float = 0.8, weights: np.ndarray | None = None):
        self.n, self.rng, self.repeat, self.weights = n, rng, repeat, weights
        self.prev: int | None = None

    def __call__(self, env: Any, frame: np.ndarray) -> int:
        if self.prev is None or self.rng.random() >= self.repeat:
            self.prev = int(self.rng.choice(self.n, p=self.weights))
        return self.prev


class _MiniGridGoalSeeker:
    """Greedy walk toward the goal square: forward when that gets closer, else turn toward it."""

    _DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid agent_dir 0..3: right, down, left, up

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, env: Any, frame: np.ndarray) -> int:
        u = env.unwrapped
        cells = ((x, y, u.grid.get(x, y)) for x in range(u.width) for y in range(u.height))
        goal = next(((x, y) for x, y, c in cells if c is not None and c.type == "goal"), None)
        if goal is None:
            return int(self.rng.choice([0, 1, 2], p=[0.2, 0.2, 0.6]))
        ax, ay = (int(v) for v in u.agent_pos)

        def free(d: int) -> bool:
            cell = u.grid.get(ax + self._DIRS[d][0], ay + self._DIRS[d][1])
            return cell is None or cell.can_overlap()

        wanted = [d for d, (dx, dy) in enumerate(self._DIRS) if dx * (goal[0] - ax) + dy * (goal[1] - ay) > 0]
        if u.agent_dir in wanted and free(u.agent_dir):
            return 2  # forward
        target = next((d for d in wanted if free(d)), None)
        if target is None:
            return int(self.rng.choice([0, 1, 2]))
        return 1 if (target - u.agent_dir) % 4 == 1 else 0  # right turns clockwise


class GymRecorder(Recorder):
    """Records any gymnasium environment that renders ``rgb_array`` frames.

    Args:
        env_id: a registered id, e.g. ``ALE/Breakout-v5`` or ``MiniGrid-Empty-8x8-v0``.
        **make_kwargs: passed to ``gymnasium.make``. For MiniGrid, ``tile_size`` defaults to
            the smallest tile that renders at least the requested image size (fast, crisp).

    Shapes:
        rendered frames ``H W 3`` uint8, stored resized to ``image_size``.
    """

    kind = "gymnasium"

    def __init__(self, env_id: str, **make_kwargs: Any) -> None:
        self.env_id = env_id
        self.name = f"gym:{env_id}"
        self.make_kwargs = dict(make_kwargs)
        env = _make_gym_env(env_id, **self.make_kwargs)
        try:
            import gymnasium

            space = env.action_space
            self.discrete = isinstance(space, gymnasium.spaces.Discrete)
            self.num_actions = int(space.n) if self.discrete else None
            self.minigrid = _is_minigrid(env)
            self.action_names: list[str] | None
            self._fps = float(env.metadata.get("render_fps") or 15)
            u = env.unwrapped
            if hasattr(u, "get_action_meanings"):
                self.action_names = list(u.get_action_meanings())
            elif self.minigrid and hasattr(u, "actions"):
                self.action_names = [a.name for a in u.actions][: self.num_actions]
            else:
                self.action_names = None
        finally:
            env.close()

    @property
    def fps(self) -> float:
        return self._fps

    def policies(self) -> tuple[str, ...]:
        if not self.discrete:
            return ("random",)
        return POLICIES if self.minigrid else ("random", "biased", "sticky")

    def env_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.env_id,
            "options": self.make_kwargs,
            "num_actions": self.num_actions,
            "action_names": self.action_names,
            "actions": "true discrete actions" if self.discrete else "unavailable (non-discrete action space): -1",
        }

    def _policy(self, policy: str | Callable[..., Any], env: Any, rng: np.random.Generator) -> Callable[..., Any]:
        if callable(policy):
            return policy
        if not self.discrete:
            env.action_space.seed(int(rng.integers(0, 2**31 - 1)))
            return lambda env, frame: env.action_space.sample()
        n = self.num_actions
        assert n is not None
        if policy == "random":
            return lambda env, frame: int(rng.integers(0, n))
        if policy == "biased":
            if self.minigrid:  # mostly forward, some turning, rarely anything else
                weights = np.full(n, 0.1 / max(1, n - 3))
                weights[:3] = (0.15, 0.15, 0.6)
                weights /= weights.sum()
                return lambda env, frame: int(rng.choice(n, p=weights))
            return _StickyRandom(n, rng)
        if policy == "sticky":
            return _StickyRandom(n, rng, repeat=1.0 - 1.0 / STICKY_MEAN_HOLD)
        return _MiniGridGoalSeeker(rng)

    def _episodes(
        self,
        plan: SplitPlan,
        frames_per_episode: int,
        policy: str | Callable[..., Any],
        image_size: tuple[int, int],
        rng: np.random.Generator,
    ) -> Iterator[Episode]:
        kwargs = dict(self.make_kwargs)
        env = _make_gym_env(self.env_id, **kwargs)
        try:
            u = env.unwrapped
            if self.minigrid and "tile_size" not in kwargs and hasattr(u, "tile_size"):
                u.tile_size = max(1, math.ceil(max(image_size[0] / u.height, image_size[1] / u.width)))
            for j in range(plan.episodes):
                level = plan.level_start + j % plan.num_levels
                env.reset(seed=level)
                act = self._policy(policy, env, rng)
                frames = [self._render(env)]
                actions: list[int] = []
                rewards: list[float] = []
                ended: list[int] = []
                while len(frames) < frames_per_episode:
                    action = act(env, frames[-1])
                    _, reward, terminated, truncated, _ = env.step(action)
                    actions.append(int(action) if self.discrete else -1)
                    rewards.append(float(reward))
                    ended.append(int(bool(terminated)))
                    frames.append(self._render(env))
                    if terminated or truncated:
                        break
                actions.append(-1)
                rewards.append(float("nan"))
                ended.append(-1)
                yield Episode(resize_frames(np.stack(frames), image_size), np.asarray(actions), level_seed=level,
                              rewards=np.asarray(rewards, np.float32), terminated=np.asarray(ended, np.int8))
        finally:
            env.close()

    def _render(self, env: Any) -> np.ndarray:
        frame = env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] not in (3, 4):
            raise ValueError(
                f"{self.env_id} rendered {type(frame).__name__} {getattr(frame, 'shape', '')}; recording needs "
                "render_mode='rgb_array' frames of shape H W 3."
            )
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


# ---------------------------------------------------------------------------------------- registry
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
