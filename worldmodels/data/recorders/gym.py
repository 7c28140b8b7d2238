"""Any gymnasium environment that renders ``rgb_array`` frames: ALE, MiniGrid, Box2D, ...

Episode ``j`` of a split resets with seed ``range_start + j % num_levels_k``; an episode is the
first frames after a reset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from worldmodels.data.recorders.base import POLICIES, STICKY_MEAN_HOLD, Recorder, resize_frames
from worldmodels.data.recorders.splits import SplitPlan
from worldmodels.data.shards import Episode

__all__ = ["GymRecorder"]

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
