"""A learned world model as a :class:`gymnasium.Env`: play it one latent action at a time.

Axis legend: ``T`` frames, ``C H W`` pixels, ``h w`` token grid, ``A`` latent actions.

:class:`WorldModelEnv` wraps any :class:`~worldmodels.WorldModel` (a model object, a checkpoint
directory or a preset name). ``reset`` tokenizes a prompt image once and starts a
:class:`~worldmodels.rollout.Rollout`; every ``step`` then

1. samples the next frame's tokens. For a dynamics that streams (``maskgit`` with rotary temporal
   positions, the Genie presets) the rollout keeps each cached frame's keys and values in a
   rolling buffer: a step runs the sampler's passes and one commit pass over the new frame's
   tokens only, and the cost of a step does not grow with the frames played. Otherwise the
   sampler calls :meth:`~worldmodels.Dynamics.prefill` once per step (the context frames) and
   :meth:`~worldmodels.Dynamics.next_logits` at every iteration;
2. decodes only the newest frame (from a window of the latest token frames).

The past is never re-encoded: the env keeps the tokens of the last ``num_frames`` frames and
the latent actions between them, and slides that window once it is full. Everything runs
under :func:`torch.inference_mode`, optionally under bf16 (autocast, or only the layers where
bf16 is faster: ``bf16="auto"``) and with :func:`torch.compile`.

Example:
    >>> import gymnasium as gym
    >>> import worldmodels.envs  # registers "worldmodels/WorldModel-v0"
    >>> env = gym.make("worldmodels/WorldModel-v0", checkpoint="runs/genie-tiny/model")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0, options={"prompt": "level.png"})  # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(3)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import operator
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from worldmodels.envs.precision import bf16_linears, check_bf16, decode_in_bf16
from worldmodels.envs.prompts import PromptLike, frame_to_uint8, prompt_to_video
from worldmodels.interfaces import Sampler
from worldmodels.rollout import Rollout
from worldmodels.world_model import WorldModel

if TYPE_CHECKING:
    pass

__all__ = [
    "TERMINATION_THRESHOLD", "WorldModelEnv", "compile_world_model", "load_world_model",
]

TERMINATION_THRESHOLD = 0.5
"""A step ends the episode when the model's predicted termination probability exceeds this."""

# ---------------------------------------------------------------------------------------- loading
def _sampler_steps(sampler_steps: int | None, maskgit_steps: int | None) -> int | None:
    """``sampler_steps``, or its deprecated name ``maskgit_steps``."""
    if maskgit_steps is None:
        return None if sampler_steps is None else int(sampler_steps)
    warnings.warn("maskgit_steps is now called sampler_steps; the old name will be removed.", DeprecationWarning,
                  stacklevel=3)
    if sampler_steps is not None and int(sampler_steps) != int(maskgit_steps):
        raise ValueError(f"sampler_steps={sampler_steps} and maskgit_steps={maskgit_steps} disagree; "
                         "give sampler_steps only.")
    return int(maskgit_steps)


def load_world_model(
    source: str | os.PathLike[str] | WorldModel,
    *,
    device: str | torch.device | None = None,
    sampler_steps: int | None = None,
    maskgit_steps: int | None = None,
) -> WorldModel:
    """A world model from a checkpoint directory, a preset name or a model object.

    Args:
        source: a directory written by :meth:`~worldmodels.WorldModel.save_pretrained`, a
            registered preset name (random weights: for speed tests and demos of the plumbing),
            or a :class:`~worldmodels.WorldModel` (returned as is, moved to ``device``).
        device: where to put the model (default: CPU for a directory or preset, unchanged for a model).
        sampler_steps: override the sampler's ``steps`` (e.g. MaskGIT iterations per frame); a
            model object's sampler is replaced by one built with that setting.
        maskgit_steps: the former name of ``sampler_steps`` (deprecated; still accepted).

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: when ``source`` is neither an existing directory nor a registered preset.
        worldmodels.ConfigError: when the sampler takes no ``steps`` but ``sampler_steps`` is given.
        ValueError: when ``sampler_steps`` and ``maskgit_steps`` are both given and differ.

    Shapes:
        not applicable (returns a model).
    """
    from worldmodels import registry
    from worldmodels.build import build

    steps = _sampler_steps(sampler_steps, maskgit_steps)
    overrides: dict[str, Any] = {} if steps is None else {"sampler": {"steps": steps}}
    if isinstance(source, WorldModel):
        model = source
        if overrides:
            from worldmodels.build_config import build_component, merge_overrides

            sampler_cfg = merge_overrides({"sampler": model.sampler.get_config()}, overrides)["sampler"]
            model.sampler = cast(Sampler, build_component("sampler", sampler_cfg))
        if device is not None:
            model = model.to(device)
        return model.eval()
    path = Path(source)
    if path.is_dir():
        return WorldModel.from_pretrained(path, device=device or "cpu", **overrides).eval()
    name = str(source)
    if "model" in registry.find_kinds(name):
        return cast(WorldModel, build(name, device=device, **overrides)).eval()
    presets = ", ".join(registry.list_components("model")) or "(none)"
    raise FileNotFoundError(
        f"{name!r} is neither a checkpoint directory nor a registered model preset. Pass a directory written "
        f"by WorldModel.save_pretrained (e.g. runs/NAME/model) or one of the presets: {presets}."
    )


# ---------------------------------------------------------------------------------------- compile
def compile_world_model(model: WorldModel, backend: str = "inductor") -> WorldModel:
    """Compile the inference path of ``model`` in place with :func:`torch.compile`.

    Compiles the dynamics' inference (:meth:`Dynamics.compile_inference
    <worldmodels.Dynamics.compile_inference>`: by default ``forward``, ``prefill`` and
    ``next_logits``, what the sampler calls at every pass; a streaming ``maskgit`` compiles its
    stream's blocks) and the tokenizer's ``decode`` and ``decode_last``. Like
    :meth:`torch.nn.Module.compile` it changes the model it is given; calling it twice does
    nothing the second time. The first steps after compiling are slow (tracing).

    Args:
        model: the world model.
        backend: a :func:`torch.compile` backend (``"eager"`` traces without code generation).

    Returns:
        The same model.

    Shapes:
        not applicable.
    """
    if getattr(model, "_compiled_backend", None) is not None:
        return model
    model.dynamics.compile_inference(backend)
    for name in ("decode", "decode_last"):
        fn = getattr(model.tokenizer, name, None)
        if callable(fn):
            object.__setattr__(model.tokenizer, name, torch.compile(fn, backend=backend))
    object.__setattr__(model, "_compiled_backend", backend)
    return model


# ---------------------------------------------------------------------------------------- the env
class WorldModelEnv(gym.Env):
    """A learned world as a Gymnasium environment: the action is a latent action index.

    ``reset`` tokenizes a prompt; each ``step(action)`` generates the next frame. Rewards are
    always 0 and the world never terminates by itself; with ``max_episode_steps`` the episode
    is truncated after that many steps. Sampling is seeded: ``reset(seed=s)`` seeds
    :attr:`np_random` and, from it, the torch generator the sampler draws from, so the same
    seed, prompt and actions give the same frames.

    Without a ``"prompt"`` option, ``reset`` uses the ``prompt`` given at construction, or, when
    there is none, one black frame.

    Shapes:
        observations ``H W 3`` uint8 (the model's frame size; a one-channel model's frames are
        repeated to RGB); actions are ints in ``[0, A)``.

    Args:
        model: a :class:`~worldmodels.WorldModel` or a preset name (random weights).
        checkpoint: a checkpoint directory (instead of ``model``).
        prompt: the default prompt (see :func:`prompt_to_video`), read once here; ``None``: one
            black frame.
        max_episode_steps: truncate after this many steps (``None``: never).
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the current frame).
        use_cache: let the dynamics use its key/value cache across MaskGIT iterations (same
            tokens, faster); ``False`` reruns the whole context at every iteration.
        bf16: ``True``: run the model (sampling and decoding) under bfloat16 autocast; ``"auto"``:
            only the dynamics' linear layers whose shape multiplies faster in bf16 on this machine do
            (:class:`~worldmodels.layers.bf16_linear.Bf16Linears`, measured once), and decoding where
            autocast was measured faster; ``False``: fp32.
        compile: compile the model's inference path in place (:func:`compile_world_model`);
            a string names the :func:`torch.compile` backend.
        decode_window: token frames the tokenizer sees to decode the newest frame. ``None``
            (default) uses the model's ``num_frames``, exactly what
            :meth:`~worldmodels.WorldModel.generate` does; ``1`` decodes each frame alone, which
            is exact for per-frame tokenizers and an approximation (the one every training clip
            uses for its first frame) for temporal ones, at a fraction of the cost.
        context_frames: past frames the dynamics conditions on. ``None`` (default) uses the
            model's full window (``num_frames - 1``), exactly what
            :meth:`~worldmodels.WorldModel.generate` does; fewer is faster (the cost of a step
            grows linearly with it) and stays in the training distribution of a causal dynamics
            model, which learns every prefix length.
        sampler_steps: override the sampler's steps per frame, e.g. MaskGIT iterations (a model
            object gets a new sampler with that setting).
        maskgit_steps: the former name of ``sampler_steps`` (deprecated; still accepted).
        device: where to run (default: where the model's parameters are; a model object is moved).

    Raises:
        ValueError: when neither or both of ``model`` and ``checkpoint`` are given, or for an
            unsupported ``render_mode``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        model: WorldModel | str | None = None,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        prompt: PromptLike = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        use_cache: bool = True,
        bf16: bool | str = False,
        compile: bool | str = False,  # noqa: A002 - mirrors torch.compile
        decode_window: int | None = None,
        context_frames: int | None = None,
        sampler_steps: int | None = None,
        maskgit_steps: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        if (model is None) == (checkpoint is None):
            raise ValueError(
                "WorldModelEnv needs exactly one of model= (a WorldModel or preset name) and checkpoint= "
                f"(a checkpoint directory); got model={model!r:.60} and checkpoint={checkpoint!r}."
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of {self.metadata['render_modes']} or None "
                "(the interactive window is worldmodels.play.window)."
            )
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}.")
        source = model if model is not None else checkpoint
        self.model: WorldModel = load_world_model(
            source, device=device, sampler_steps=_sampler_steps(sampler_steps, maskgit_steps))  # type: ignore[arg-type]
        if self.model.in_channels not in (1, 3):
            raise ValueError(f"WorldModelEnv shows 1- or 3-channel frames; this model has {self.model.in_channels}.")
        self.device = self.model.device
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.use_cache = bool(use_cache)
        self.bf16 = check_bf16(bf16)
        self._bf16_linears = bf16_linears(self.model, batch=1) if self.bf16 == "auto" else None
        self._decode_bf16 = decode_in_bf16(self.model, self.bf16, batch=1)
        num_frames = self.model.num_frames
        if decode_window is not None and not 1 <= decode_window <= num_frames:
            raise ValueError(
                f"decode_window must lie in 1..{num_frames} (the model's num_frames), got {decode_window}."
            )
        self.decode_window = int(decode_window or num_frames)
        full_context = max(1, num_frames - 1)
        if context_frames is not None and not 1 <= context_frames <= full_context:
            raise ValueError(
                f"context_frames must lie in 1..{full_context} (the model's num_frames - 1), got {context_frames}."
            )
        self.context_frames = int(context_frames or full_context)
        if compile:
            compile_world_model(self.model, backend=compile if isinstance(compile, str) else "inductor")
        # read (and check) the default prompt now, so a bad path fails here rather than at the first reset
        self.default_prompt: Tensor = prompt_to_video(
            prompt, self.model.image_size, self.model.in_channels, self.model.num_frames
        )
        height, width = self.model.image_size
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(self.model.num_actions)
        self._rollout: Rollout | None = None  # the episode's frames, actions and dynamics stream
        self._frame: np.ndarray | None = None
        self._generator: torch.Generator | None = None
        self._steps = 0
        self.last_timings: dict[str, float] = {}
        """Seconds spent in each stage of the last ``reset`` or ``step`` (kept out of ``info`` so
        that ``info`` stays deterministic)."""

    # ------------------------------------------------------------------ properties
    @property
    def num_actions(self) -> int:
        """The number of latent actions ``A``."""
        return self.model.num_actions

    @property
    def generator(self) -> torch.Generator:
        """The torch generator the sampler draws from (seeded by ``reset``).

        Raises:
            RuntimeError: before the first ``reset``.
        """
        self._require_reset()
        assert self._generator is not None
        return self._generator

    @property
    def context_tokens(self) -> Tensor:
        """The kept token context ``1 T h w`` (at most ``num_frames`` frames, or the dynamics'
        :meth:`~worldmodels.Dynamics.history_frames` when that is longer; newest last)."""
        return self._require_reset().tokens

    @property
    def context_actions(self) -> Tensor:
        """The latent actions ``1 T-1`` between the frames of :attr:`context_tokens`."""
        return self._require_reset().actions

    @property
    def started(self) -> bool:
        """Whether :meth:`reset` has started an episode (:meth:`step` needs one)."""
        return self._rollout is not None

    @property
    def frame_index(self) -> int:
        """Steps taken since the last reset."""
        return self._steps

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start from a prompt; returns the tokenizer's reconstruction of its last frame.

        Args:
            seed: seeds :attr:`np_random` and the sampler's torch generator.
            options: ``{"prompt": ...}`` (see :func:`prompt_to_video`); a multi-frame prompt keeps
                its last ``num_frames`` frames and its actions are inferred by the action model.

        Returns:
            ``(observation, info)``; ``info`` holds ``frame_index`` and ``prompt_frames``.
            :attr:`last_timings` holds the seconds spent in ``tokenize_s`` and ``decode_s``.

        Raises:
            FileNotFoundError: for a prompt file that does not exist.
            PromptError: for an unreadable or malformed prompt.

        Shapes:
            observation ``H W 3`` uint8.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"prompt"})
        if unknown:
            raise ValueError(
                f"Unknown reset option(s) {unknown}; WorldModelEnv.reset accepts options={{'prompt': ...}}."
            )
        prompt = options.get("prompt", self.default_prompt)
        video = prompt_to_video(prompt, self.model.image_size, self.model.in_channels, self.model.num_frames)
        torch_seed = int(self.np_random.integers(0, 2**62))
        self._generator = torch.Generator(device=self.device).manual_seed(torch_seed)
        with self._inference():
            start = time.perf_counter()
            video_BTCHW = video.to(self.device)[None]
            tokens = self.model.encode(video_BTCHW)
            if video_BTCHW.shape[1] > 1:
                actions = self.model.infer_actions(video_BTCHW).long()
            else:
                actions = torch.zeros((1, 0), dtype=torch.long, device=self.device)
            _sync(self.device)
            rollout = Rollout(self.model, tokens, actions, keep=self.model.num_frames, use_cache=self.use_cache,
                              frames=self.context_frames)
            _sync(self.device)
            tokenize_s = time.perf_counter() - start
            start = time.perf_counter()
            frame = self._decode_newest(tokens)
            _sync(self.device)
            decode_s = time.perf_counter() - start
        self._rollout, self._frame, self._steps = rollout, frame, 0
        self.last_timings = {"tokenize_s": tokenize_s, "decode_s": decode_s}
        info = {"frame_index": 0, "prompt_frames": int(video.shape[0])}
        return frame.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Generate the next frame under a latent action.

        Args:
            action: a latent action index in ``[0, A)`` (int, numpy integer or 0-d integer tensor).

        Returns:
            ``(observation, reward, terminated, truncated, info)``: the reward and episode end the
            model predicts where its dynamics predicts them (:attr:`~worldmodels.Dynamics.predicts_outcomes`;
            terminated when the predicted probability exceeds :data:`TERMINATION_THRESHOLD`),
            ``0.0`` and ``False`` otherwise; ``info`` holds ``frame_index``, ``action``,
            ``context_frames`` and, with predicted outcomes, ``termination_probability``. :attr:`last_timings` holds the seconds spent in
            ``dynamics_s`` (token sampling, all MaskGIT iterations) and ``decode_s``.

        Raises:
            ValueError: for an action outside ``[0, A)``.
            TypeError: for an action that is not an integer.
            RuntimeError: before ``reset``.

        Shapes:
            observation ``H W 3`` uint8.
        """
        rollout = self._require_reset()
        index = self._check_action(action)
        with self._inference():
            start = time.perf_counter()
            step_action = torch.full((1,), index, dtype=torch.long, device=self.device)
            out = rollout.step(step_action, generator=self._generator)  # slides the window once it is full
            reward, terminated = out.reward, out.terminated
            tokens = rollout.tokens
            _sync(self.device)
            dynamics_s = time.perf_counter() - start
            start = time.perf_counter()
            frame = self._decode_newest(tokens)
            _sync(self.device)
            decode_s = time.perf_counter() - start
        self._frame = frame
        self._steps += 1
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        self.last_timings = {"dynamics_s": dynamics_s, "decode_s": decode_s}
        info: dict[str, Any] = {"frame_index": self._steps, "action": index,
                                "context_frames": min(int(tokens.shape[1]), self.model.num_frames)}
        reward_value = float(reward[0]) if reward is not None else 0.0
        done = terminated is not None and float(terminated[0]) > TERMINATION_THRESHOLD
        if terminated is not None:
            info["termination_probability"] = float(terminated[0])
        return frame.copy(), reward_value, bool(done), bool(truncated), info

    def render(self) -> np.ndarray | None:
        """The current frame ``H W 3`` uint8 in ``"rgb_array"`` mode (``None`` without a render mode).

        Shapes:
            ``H W 3``.
        """
        if self.render_mode is None:
            gym.logger.warn("WorldModelEnv.render() was called without a render_mode; pass render_mode='rgb_array'.")
            return None
        self._require_reset()
        assert self._frame is not None
        return self._frame.copy()

    # ------------------------------------------------------------------ helpers
    def _require_reset(self) -> Rollout:
        if self._rollout is None:
            raise RuntimeError("Call WorldModelEnv.reset() before step(), render() or reading the context.")
        return self._rollout

    def _check_action(self, action: Any) -> int:
        if isinstance(action, (bool, np.bool_)):
            raise TypeError(f"A latent action is an integer index in 0..{self.num_actions - 1}, got the bool {action}.")
        try:
            index = operator.index(action)
        except TypeError:
            raise TypeError(
                f"A latent action is an integer index in 0..{self.num_actions - 1}, got {action!r} of type "
                f"{type(action).__name__}."
            ) from None
        if not 0 <= index < self.num_actions:
            raise ValueError(
                f"Latent action {index} is out of range: this world model has {self.num_actions} latent actions; "
                f"pass an index in 0..{self.num_actions - 1}."
            )
        return int(index)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16 is True):
            with self._bf16_linears or contextlib.nullcontext():
                yield

    def _decode_newest(self, tokens: Tensor) -> np.ndarray:
        """Decode the newest frame of ``tokens`` ``1 T h w`` from its last ``decode_window`` frames."""
        window = tokens[:, -self.decode_window :]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._decode_bf16):
            return frame_to_uint8(self.model.tokenizer.decode_last(window)[0].float())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
