"""A learned world model as a :class:`gymnasium.Env`: play it one latent action at a time.

Axis legend: ``T`` frames, ``C H W`` pixels, ``h w`` token grid, ``A`` latent actions.

:class:`WorldModelEnv` wraps any :class:`~worldmodels.WorldModel` (a model object, a checkpoint
directory or a preset name). ``reset`` tokenizes a prompt image once; every ``step`` then

1. samples the next frame's tokens from the kept token context and actions
   (:meth:`~worldmodels.WorldModel.predict_next_tokens`; the sampler calls the dynamics'
   :meth:`~worldmodels.Dynamics.prefill` once and :meth:`~worldmodels.Dynamics.next_logits` at
   every MaskGIT iteration, so a dynamics with a key/value cache runs the context frames once
   per step and only the new frame per iteration), and
2. decodes only the newest frame (from a window of the latest token frames).

The past is never re-encoded: the env keeps the tokens of the last ``num_frames`` frames and
the latent actions between them, and slides that window once it is full. Everything runs
under :func:`torch.inference_mode`, optionally under bf16 autocast and with
:func:`torch.compile`.

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor

from worldmodels.interfaces import Sampler
from worldmodels.world_model import WorldModel

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "TERMINATION_THRESHOLD", "PromptError", "PromptLike", "WorldModelEnv", "load_world_model", "prompt_to_video",
]

TERMINATION_THRESHOLD = 0.5
"""A step ends the episode when the model's predicted termination probability exceeds this."""

PromptLike = Union[str, os.PathLike, np.ndarray, Tensor, "PIL.Image.Image", None]
"""What a prompt can be: an image file path, a PIL image, a numpy array (channels last,
``H W C`` or ``T H W C``, uint8 or float in ``[0, 1]``), a torch tensor (channels first,
``C H W`` or ``T C H W``, float in ``[0, 1]`` or uint8), or ``None`` (a black frame)."""


class PromptError(ValueError):
    """A prompt that cannot be turned into frames (unreadable file, wrong shape or value range)."""


# ---------------------------------------------------------------------------------------- loading
def load_world_model(
    source: str | os.PathLike[str] | WorldModel,
    *,
    device: str | torch.device | None = None,
    maskgit_steps: int | None = None,
) -> WorldModel:
    """A world model from a checkpoint directory, a preset name or a model object.

    Args:
        source: a directory written by :meth:`~worldmodels.WorldModel.save_pretrained`, a
            registered preset name (random weights: for speed tests and demos of the plumbing),
            or a :class:`~worldmodels.WorldModel` (returned as is, moved to ``device``).
        device: where to put the model (default: CPU for a directory or preset, unchanged for a model).
        maskgit_steps: override the sampler's ``steps`` (MaskGIT iterations per frame); a model
            object's sampler is replaced by one built with that setting.

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: when ``source`` is neither an existing directory nor a registered preset.
        worldmodels.ConfigError: when the sampler takes no ``steps`` but ``maskgit_steps`` is given.

    Shapes:
        not applicable (returns a model).
    """
    from worldmodels import registry
    from worldmodels.build import build

    overrides: dict[str, Any] = {} if maskgit_steps is None else {"sampler": {"steps": int(maskgit_steps)}}
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


# ---------------------------------------------------------------------------------------- prompts
def _read_image_file(path: Path) -> np.ndarray:
    """All frames of an image file as ``T H W 3`` uint8 (animated GIF/PNG/WebP give several)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    if not path.exists():
        raise FileNotFoundError(
            f"Prompt image {path} does not exist. Pass the path of an image file (PNG, JPEG, GIF, ...), a "
            "uint8 H x W x 3 array or a float C x H x W tensor."
        )
    if path.is_dir():
        raise PromptError(f"Prompt {path} is a directory; pass one image file.")
    try:
        with Image.open(path) as image:
            frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PromptError(
            f"Cannot read prompt image {path}: {exc}. Pass an image file Pillow can open (PNG, JPEG, GIF, "
            "BMP, WebP, ...)."
        ) from exc
    if not frames:
        raise PromptError(f"Prompt image {path} holds no frames; pass a non-empty image file.")
    return np.stack(frames)


def _to_float_tchw(prompt: Any) -> Tensor:
    """Any supported prompt (except paths and None) as a ``T C H W`` float tensor in ``[0, 1]``."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a core dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(prompt, Image.Image):
        prompt = np.asarray(prompt.convert("RGB"))
    if isinstance(prompt, np.ndarray):
        array = prompt
        if array.ndim == 2:  # H W grayscale
            array = array[..., None]
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
            raise PromptError(
                f"A numpy prompt must be channels-last, H x W x C or T x H x W x C with C in (1, 3, 4), got shape "
                f"{prompt.shape}. Convert a C x H x W image with array.transpose(1, 2, 0)."
            )
        video = torch.from_numpy(np.array(array, order="C", copy=True)).permute(0, 3, 1, 2)  # owns writable memory
    elif isinstance(prompt, Tensor):
        video = prompt.detach()
        if video.ndim == 5 and video.shape[0] == 1:  # 1 T C H W
            video = video[0]
        if video.ndim == 3:
            video = video[None]
        if video.ndim != 4 or video.shape[1] not in (1, 3, 4):
            raise PromptError(
                f"A tensor prompt must be channels-first, C x H x W or T x C x H x W with C in (1, 3, 4), got shape "
                f"{tuple(prompt.shape)}. Convert an H x W x C image with tensor.permute(2, 0, 1)."
            )
    else:
        raise PromptError(
            f"Unsupported prompt of type {type(prompt).__name__}: pass an image path, a PIL image, a numpy array "
            "(H x W x 3 uint8) or a torch tensor (C x H x W float in [0, 1])."
        )
    if video.dtype == torch.uint8:
        video = video.float() / 255.0
    elif video.is_floating_point():
        video = video.float()
        if video.numel() and (float(video.min()) < 0.0 or float(video.max()) > 1.0):
            raise PromptError(
                f"A float prompt must hold values in [0, 1], got [{float(video.min()):.3g}, {float(video.max()):.3g}]. "
                "Divide 0..255 values by 255, or pass uint8."
            )
    else:
        raise PromptError(f"A prompt must be uint8 (0..255) or float (0..1), got dtype {video.dtype}.")
    if video.shape[-2] < 1 or video.shape[-1] < 1:
        raise PromptError(f"A prompt image must be at least 1x1 pixels, got shape {tuple(video.shape)}.")
    return video.cpu()


def prompt_to_video(
    prompt: PromptLike,
    image_size: tuple[int, int],
    in_channels: int = 3,
    max_frames: int | None = None,
) -> Tensor:
    """Turn a prompt into frames of the model's size.

    Any image size is resized (bilinear, antialiased; the aspect ratio is not kept) to
    ``image_size``; an alpha channel is dropped; grey images are repeated to RGB and RGB
    images averaged to grey for a one-channel model.

    Args:
        prompt: an image file path (animated images give several frames), a PIL image, a numpy
            array ``H W C`` / ``T H W C`` (uint8, or float in ``[0, 1]``), a tensor ``C H W`` /
            ``T C H W`` (float in ``[0, 1]``, or uint8), or ``None`` for one black frame.
        image_size: the model's ``(H, W)``.
        in_channels: the model's ``C`` (1 or 3).
        max_frames: keep only the last ``max_frames`` frames.

    Returns:
        ``T C H W`` float32 in ``[0, 1]`` on the CPU.

    Raises:
        FileNotFoundError: for a path that does not exist (the message names it).
        PromptError: for an unreadable file or an array of the wrong shape, dtype or range.

    Shapes:
        returns ``T C H W``.
    """
    height, width = int(image_size[0]), int(image_size[1])
    if prompt is None:
        return torch.zeros(1, in_channels, height, width)
    if isinstance(prompt, (str, os.PathLike)):
        video = _to_float_tchw(_read_image_file(Path(prompt)))
    else:
        video = _to_float_tchw(prompt)
    if max_frames is not None:
        video = video[-max_frames:]
    channels = video.shape[1]
    if channels == 4:
        video, channels = video[:, :3], 3
    if in_channels == 3 and channels == 1:
        video = video.expand(-1, 3, -1, -1)
    elif in_channels == 1 and channels == 3:
        video = video.mean(dim=1, keepdim=True)
    elif channels != in_channels:
        raise PromptError(f"Cannot turn a {channels}-channel prompt into the model's {in_channels} channels.")
    if tuple(video.shape[-2:]) != (height, width):
        video = F.interpolate(video, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return video.clamp(0.0, 1.0).contiguous()


def frame_to_uint8(frame: Tensor) -> np.ndarray:
    """A ``C H W`` float frame in ``[0, 1]`` as an ``H W 3`` uint8 array (grey repeated to RGB).

    Shapes:
        ``C H W`` -> ``H W 3``.
    """
    image = (frame.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())


# ---------------------------------------------------------------------------------------- compile
def compile_world_model(model: WorldModel, backend: str = "inductor") -> WorldModel:
    """Compile the inference path of ``model`` in place with :func:`torch.compile`.

    Compiles the dynamics' ``forward``, ``prefill`` and ``next_logits`` (what the sampler calls
    at every MaskGIT iteration) and the tokenizer's ``decode`` and ``decode_last``. Like
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
    parts = ((model.dynamics, ("forward", "prefill", "next_logits")), (model.tokenizer, ("decode", "decode_last")))
    for module, names in parts:
        for name in names:
            fn = getattr(module, name, None)
            if callable(fn):
                object.__setattr__(module, name, torch.compile(fn, backend=backend))
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
        bf16: run the model under bfloat16 autocast.
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
        maskgit_steps: override the sampler's MaskGIT iterations per frame (a model object gets
            a new sampler with that setting).
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
        bf16: bool = False,
        compile: bool | str = False,  # noqa: A002 - mirrors torch.compile
        decode_window: int | None = None,
        context_frames: int | None = None,
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
        self.model: WorldModel = load_world_model(source, device=device, maskgit_steps=maskgit_steps)  # type: ignore[arg-type]
        if self.model.in_channels not in (1, 3):
            raise ValueError(f"WorldModelEnv shows 1- or 3-channel frames; this model has {self.model.in_channels}.")
        self.device = _model_device(self.model)
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.use_cache = bool(use_cache)
        self.bf16 = bool(bf16)
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
        self._tokens: Tensor | None = None  # 1 T h w, the last num_frames frames
        self._actions: Tensor | None = None  # 1 T-1, the actions between them
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
        """The kept token context ``1 T h w`` (at most ``num_frames`` frames, newest last)."""
        self._require_reset()
        assert self._tokens is not None
        return self._tokens

    @property
    def context_actions(self) -> Tensor:
        """The latent actions ``1 T-1`` between the frames of :attr:`context_tokens`."""
        self._require_reset()
        assert self._actions is not None
        return self._actions

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
            tokenize_s = time.perf_counter() - start
            start = time.perf_counter()
            frame = self._decode_newest(tokens)
            _sync(self.device)
            decode_s = time.perf_counter() - start
        self._tokens, self._actions, self._frame, self._steps = tokens, actions, frame, 0
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
        self._require_reset()
        index = self._check_action(action)
        assert self._tokens is not None and self._actions is not None
        num_frames = self.model.num_frames
        with self._inference():
            start = time.perf_counter()
            step_action = torch.full((1, 1), index, dtype=torch.long, device=self.device)
            actions = torch.cat([self._actions, step_action], dim=1)  # one per context frame
            context = self.context_frames
            next_tokens = self.model.predict_next_tokens(
                self._tokens[:, -context:], actions[:, -context:], generator=self._generator, use_cache=self.use_cache
            )
            reward, terminated = self.model.predict_outcome(self._tokens[:, -context:], actions[:, -context:])
            tokens = torch.cat([self._tokens, next_tokens[:, None].to(self._tokens.dtype)], dim=1)
            tokens = tokens[:, -num_frames:]  # slide the window once it is full
            actions = actions[:, actions.shape[1] - (tokens.shape[1] - 1) :]  # the transitions between kept frames
            _sync(self.device)
            dynamics_s = time.perf_counter() - start
            start = time.perf_counter()
            frame = self._decode_newest(tokens)
            _sync(self.device)
            decode_s = time.perf_counter() - start
        self._tokens, self._actions, self._frame = tokens, actions, frame
        self._steps += 1
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        self.last_timings = {"dynamics_s": dynamics_s, "decode_s": decode_s}
        info: dict[str, Any] = {"frame_index": self._steps, "action": index, "context_frames": int(tokens.shape[1])}
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
    def _require_reset(self) -> None:
        if self._tokens is None:
            raise RuntimeError("Call WorldModelEnv.reset() before step(), render() or reading the context.")

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
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            yield

    def _decode_newest(self, tokens: Tensor) -> np.ndarray:
        """Decode the newest frame of ``tokens`` ``1 T h w`` from its last ``decode_window`` frames."""
        window = tokens[:, -self.decode_window :]
        return frame_to_uint8(self.model.tokenizer.decode_last(window)[0])


def _model_device(model: WorldModel) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
