"""The composed world model: tokenizer + action model + dynamics + sampler.

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels, ``h w`` token grid,
``D`` action embedding width, ``N`` number of generated frames.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from worldmodels._version import __version__
from worldmodels.build_config import build_component, resolve_model_config
from worldmodels.checkpoint import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_directory,
    check_state_dict,
    file_sha256,
    load_tensors,
    read_json,
    resolve_model_dir,
    save_tensors,
    write_json,
)
from worldmodels.context_window import last_frames
from worldmodels.interfaces import (
    ActionModel,
    Dynamics,
    LossOutput,
    Metrics,
    Sampler,
    StepOutput,
    Tokenizer,
    check_actions,
    check_video,
)
from worldmodels.rollout import Rollout


def _pair(size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {size!r}.")
    return (int(size[0]), int(size[1]))


class WorldModel(nn.Module):
    """A playable world model composed of four registered components.

    Build one by name (``worldmodels.build("genie-tiny")``) or from a config; play it frame by
    frame with :meth:`play`, roll it out with :meth:`generate`, and save it with
    :meth:`save_pretrained`.

    Shapes:
        video ``B T C H W`` float in ``[0, 1]``; tokens ``B T h w`` int64 (``B T h w L`` float for a
        continuous tokenizer); actions ``B T-1`` int64.

    Args:
        tokenizer: turns frames into tokens and back.
        action_model: infers latent actions and embeds them.
        dynamics: predicts next-frame tokens.
        sampler: turns the dynamics' predictions into tokens.
        image_size: frame size ``H`` (or ``(H, W)``).
        in_channels: ``C``.
        num_frames: the context length ``T`` the model is trained on.
        name: the preset name it was built from.
        frame_skip: game frames per step of the learned world: the ``frame_skip`` of the clips it
            was trained on (the trainer records it). The evaluation and ``serve`` cut a data
            directory's clips with it, so a model trained on every second frame is measured and
            played on every second frame.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        action_model: ActionModel,
        dynamics: Dynamics,
        sampler: Sampler,
        *,
        image_size: int | tuple[int, int] = 64,
        in_channels: int = 3,
        num_frames: int = 16,
        name: str | None = None,
        frame_skip: int = 1,
    ) -> None:
        super().__init__()
        if int(frame_skip) < 1:
            raise ValueError(f"frame_skip is the game frames per step of the world, at least 1; got {frame_skip}.")
        if bool(getattr(tokenizer, "continuous", False)) != bool(getattr(dynamics, "continuous", False)):
            kinds = {True: "continuous latents", False: "discrete token ids"}
            raise ValueError(
                f"The tokenizer {type(tokenizer).__name__} makes {kinds[bool(tokenizer.continuous)]} but the dynamics "
                f"{type(dynamics).__name__} reads {kinds[bool(dynamics.continuous)]}; pair components of one kind."
            )
        self.tokenizer = tokenizer
        self.action_model = action_model
        self.dynamics = dynamics
        self.sampler = sampler
        self.image_size = _pair(image_size)
        self.in_channels = int(in_channels)
        self.num_frames = int(num_frames)
        self.name = name
        self.frame_skip = int(frame_skip)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str, **overrides: Any) -> WorldModel:
        """Build from a model config dict or preset name (see :func:`worldmodels.build`)."""
        cfg = resolve_model_config(config, **overrides)
        image_size = cfg.get("image_size", 64)
        in_channels = cfg.get("in_channels", 3)
        num_frames = cfg.get("num_frames", 16)
        shared = {"image_size": list(_pair(image_size)), "in_channels": in_channels, "num_frames": num_frames}
        tokenizer = cast(Tokenizer, build_component("tokenizer", cfg["tokenizer"], **shared))
        action_model = cast(ActionModel, build_component("action_model", cfg["action_model"], **shared))
        h, w = _pair(image_size)
        dynamics = build_component(
            "dynamics",
            cfg["dynamics"],
            **tokenizer.dynamics_arguments(),  # vocab_size for token ids, latent_dim for continuous latents
            token_grid=list(tokenizer.token_grid(h, w)),
            max_frames=num_frames,
            action_dim=action_model.action_dim,
            num_actions=action_model.num_actions,
        )
        sampler = build_component("sampler", cfg["sampler"])
        return cls(
            tokenizer,
            action_model,
            cast(Dynamics, dynamics),
            cast(Sampler, sampler),
            image_size=image_size,
            in_channels=in_channels,
            num_frames=num_frames,
            name=cfg.get("name"),
            frame_skip=int(cfg.get("frame_skip", 1)),
        )

    @property
    def config(self) -> dict[str, Any]:
        """The full resolved config: rebuilds this exact architecture."""

        return {
            "name": self.name,
            "image_size": list(self.image_size),
            "in_channels": self.in_channels,
            "num_frames": self.num_frames,
            "frame_skip": self.frame_skip,
            "tokenizer": self.tokenizer.get_config(),
            "action_model": self.action_model.get_config(),
            "dynamics": self.dynamics.get_config(),
            "sampler": self.sampler.get_config(),
            "library_version": __version__,
        }

    @property
    def num_actions(self) -> int:
        """Number of latent actions ``A``."""
        return self.action_model.num_actions

    @property
    def device(self) -> torch.device:
        """Where the model lives: its first parameter's device, else its first buffer's, else the CPU."""
        for tensor in self.parameters():
            return tensor.device
        for buffer in self.buffers():
            return buffer.device
        return torch.device("cpu")

    @property
    def token_grid(self) -> tuple[int, int]:
        """Token grid ``(h, w)`` of one frame."""
        return self.tokenizer.token_grid(*self.image_size)

    def training_stages(self) -> tuple[str, ...]:
        """The stages that train this model, in training order: what its components declare.

        Each component class lists the stages that train it
        (:attr:`~worldmodels.interfaces.Component.training_stages`): the tokenizer ``tokenizer``,
        a latent action model ``lam``, the dynamics ``dynamics``; a recorded-action model none.
        """
        stages: list[str] = []
        for kind in ("tokenizer", "action_model", "dynamics", "sampler"):
            for name in type(getattr(self, kind)).training_stages:
                if name not in stages:
                    stages.append(name)
        return tuple(stages)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """One frame's tokens: ``(h, w)`` ids, or ``(h, w, L)`` for a continuous tokenizer."""
        return self.tokenizer.latent_shape(*self.image_size)

    # ------------------------------------------------------------------ validation
    def _check_frames(self, video: Tensor, name: str = "video", min_frames: int = 1) -> None:
        check_video(video, name, min_frames)
        _, _, c, h, w = video.shape
        if (c, h, w) != (self.in_channels, *self.image_size):
            raise ValueError(
                f"{name} frames are {c}x{h}x{w} (C x H x W) but this model expects "
                f"{self.in_channels}x{self.image_size[0]}x{self.image_size[1]}; resize with "
                "torch.nn.functional.interpolate or build the model with a matching image_size."
            )

    def _as_video(self, frames: Tensor, name: str) -> Tensor:
        if frames.ndim == 4:
            frames = frames[:, None]
        self._check_frames(frames, name)
        return frames

    # ------------------------------------------------------------------ training losses
    def tokenizer_loss(self, video: Tensor) -> LossOutput:
        """Tokenizer reconstruction loss on ``B T C H W`` (stage 1)."""
        self._check_frames(video)
        return self.tokenizer.loss(video)

    def action_model_loss(self, video: Tensor, actions: Tensor | None = None) -> LossOutput:
        """Action model loss alone on ``B T C H W`` (``actions``: the recorded ``B T-1``, where known)."""
        self._check_frames(video, min_frames=2)
        return self.action_model.loss(video, actions)

    def dynamics_loss(
        self,
        video: Tensor,
        train_action_model: bool = True,
        actions: Tensor | None = None,
        tokens: Tensor | None = None,
        rewards: Tensor | None = None,
        terminated: Tensor | None = None,
    ) -> LossOutput:
        """Co-training loss of the paper's second stage on ``B T C H W``.

        The LAM's reconstruction + VQ loss plus the dynamics' masked cross-entropy. Tokens come
        from the frozen tokenizer; the action embeddings fed to the dynamics are stop-gradient.

        Args:
            video: the clip.
            train_action_model: include the action model's loss (``False`` trains the dynamics
                alone on the actions of a frozen action model).
            actions: the recorded actions ``B T-1`` (``-1`` unknown) where the data has them; an
                action model with :attr:`~worldmodels.ActionModel.uses_recorded_actions` needs them.
            tokens: the clip's tokens ``B T h w`` when already known (a token cache); otherwise
                the frozen tokenizer encodes ``video``.
            rewards: recorded rewards ``B T-1`` (``NaN`` unknown), for dynamics that predict them.
            terminated: recorded episode ends ``B T-1`` (``-1`` unknown), likewise.
        """
        self._check_frames(video, min_frames=2)
        if tokens is None:
            with torch.no_grad():
                tokens = self.tokenizer.encode(video)
        elif tuple(tokens.shape) != (*video.shape[:2], *self.latent_shape):
            raise ValueError(
                f"tokens {tuple(tokens.shape)} do not match the clip {tuple(video.shape)}: expected B T h w = "
                f"{(*video.shape[:2], *self.latent_shape)}; a stale token cache? Delete it to rebuild."
            )
        metrics: Metrics = {}
        recorded = actions
        if train_action_model:
            lam_loss, lam_metrics, actions = self.action_model.loss_and_actions(video, recorded)
            metrics.update({f"lam/{k}": v for k, v in lam_metrics.items()})
        else:
            with torch.no_grad():
                actions = self.action_model.infer(video, recorded)
            lam_loss = None
        embeddings = self.action_model.embed(actions).detach()
        if self.dynamics.predicts_outcomes:
            outcome_loss: Any = self.dynamics.loss  # a dynamics that predicts outcomes takes these keywords
            dyn_loss, dyn_metrics = outcome_loss(tokens, embeddings, rewards=rewards, terminated=terminated)
        else:
            dyn_loss, dyn_metrics = self.dynamics.loss(tokens, embeddings)
        metrics.update({f"dynamics/{k}": v for k, v in dyn_metrics.items()})
        total = dyn_loss if lam_loss is None else dyn_loss + lam_loss
        metrics["loss"] = total.detach()
        return total, metrics

    # ------------------------------------------------------------------ inference
    def encode(self, video: Tensor) -> Tensor:
        """Frames ``B T C H W`` -> tokens ``B T h w``."""
        self._check_frames(video)
        return self.tokenizer.encode(video)

    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens ``B T h w`` -> frames ``B T C H W``."""
        return self.tokenizer.decode(tokens)

    def infer_actions(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        """The action of every transition: ``B T C H W`` -> ``B T-1`` int64.

        Latent action models infer it from the frames; a recorded-action model returns the
        recorded ``actions`` (``B T-1``), which it then needs.
        """
        self._check_frames(video, min_frames=2)
        return self.action_model.infer(video, actions)

    @property
    def context_window(self) -> int:
        """The most past frames the dynamics conditions on: ``num_frames - 1`` (a training clip's context).

        :class:`~worldmodels.context_window.ContextWindow` applies it in :meth:`generate`, :meth:`play`
        and :class:`~worldmodels.envs.WorldModelEnv`.
        """
        return max(1, self.num_frames - 1)

    @property
    def history_frames(self) -> int:
        """Past frames that decide the next one: the context window, or more for a dynamics whose cached
        frames carry their own window (:meth:`~worldmodels.Dynamics.history_frames`)."""
        return self.dynamics.history_frames(self.context_window)

    def rollout(
        self, tokens: Tensor, actions: Tensor | None = None, *, keep: int | None = None, use_cache: bool = True
    ) -> Rollout:
        """Start a :class:`~worldmodels.rollout.Rollout` from token frames ``B T h w`` and the ``B T-1`` actions between them.

        Args:
            tokens: the first frames' tokens (:meth:`encode`).
            actions: latent actions between them (``None`` for one frame).
            keep: the most frames kept for reading back (``None``: all).
            use_cache: use the dynamics' stream or key/value cache.
        """
        return Rollout(self, tokens, actions, keep=keep, use_cache=use_cache)

    @torch.no_grad()
    def predict_next_tokens(
        self,
        tokens: Tensor,
        actions: Tensor,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Sample the tokens of the next frame.

        Args:
            tokens: context ``B T h w`` (only the last :attr:`history_frames` are used).
            actions: ``B T`` latent actions; entry ``t`` leads from frame ``t`` to ``t+1``, so the
                last one leads into the predicted frame.
            generator: random generator for the sampler.
            use_cache: use the dynamics' key/value cache across sampler iterations.

        Returns:
            Tokens ``B h w`` of the next frame.
        """
        if actions.shape[:2] != tokens.shape[:2]:
            raise ValueError(
                f"Need one action per context frame (the last leads into the new frame): tokens "
                f"{tuple(tokens.shape)} vs actions {tuple(actions.shape)}."
            )
        check_actions(actions, self.num_actions)
        tokens, actions = last_frames(tokens, actions, self.history_frames)
        embeddings = self.action_model.embed(actions.long())
        return self.sampler.sample(self.dynamics, tokens, embeddings, generator=generator, use_cache=use_cache)

    @torch.no_grad()
    def play(
        self,
        frames: Tensor,
        action: Tensor | int,
        past_actions: Tensor | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> StepOutput:
        """One interactive step: the frame that follows ``frames`` under ``action``.

        Args:
            frames: the context, ``B T C H W`` or ``B C H W`` (one frame).
            action: the latent action index per batch element, ``B`` (or an int).
            past_actions: ``B T-1`` actions of the context transitions; inferred with the
                action model when omitted.
            generator: random generator for the sampler.
            use_cache: use the dynamics' key/value cache.

        Returns:
            :class:`~worldmodels.interfaces.StepOutput` with the new frame ``B C H W``, its tokens, and
            where the dynamics predicts them the step's reward and episode-end probability.
        """
        video = self._as_video(frames, "frames")
        b, t = video.shape[:2]
        action = torch.as_tensor(action, device=video.device).long().reshape(-1).expand(b)
        check_actions(action, self.num_actions, "action")
        video = video[:, -self.context_window :]  # a single step: the stream and the plain path agree on these
        t = video.shape[1]
        if past_actions is None:
            past_actions = self.infer_actions(video) if t > 1 else video.new_zeros((b, 0), dtype=torch.long)
        else:
            past_actions = past_actions[:, -(t - 1) :] if t > 1 else past_actions[:, :0]
        rollout = self.rollout(self.tokenizer.encode(video), past_actions, keep=self.num_frames, use_cache=use_cache)
        out = rollout.step(action, generator=generator)
        out.frame = rollout.decode_newest()
        return out

    @torch.no_grad()
    def predict_outcome(self, tokens: Tensor, actions: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The predicted reward and episode-end probability of the step out of the last context frame.

        Args:
            tokens: context ``B T h w`` (the last ``num_frames - 1`` frames are used).
            actions: ``B T``; the last one is the action taken at the last context frame.

        Returns:
            ``(reward B, termination probability B)``; ``(None, None)`` for dynamics that do
            not predict outcomes (:attr:`~worldmodels.Dynamics.predicts_outcomes`).
        """
        if not self.dynamics.predicts_outcomes:
            return None, None
        tokens, actions = last_frames(tokens, actions, self.context_window)
        outcome = self.dynamics.predict_outcome(tokens, self.action_model.embed(actions.long()))
        return (None, None) if outcome is None else outcome

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        actions: Tensor | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        *,
        num_frames: int | None = None,
        prompt_actions: Tensor | None = None,
    ) -> Tensor:
        """Roll the world forward from a prompt under a sequence of latent actions.

        Args:
            prompt: ``B C H W`` (one frame) or ``B T0 C H W`` (the context actions of a
                multi-frame prompt are inferred with the action model).
            actions: ``B N`` latent action indices; when omitted, ``num_frames - T0`` actions are
                drawn uniformly at random (with ``generator``).
            generator: random generator for the sampler (and the random actions).
            use_cache: use the dynamics' key/value cache.
            num_frames: total length ``T0 + N`` of the returned video (the familiar
                ``model.generate(prompt_frame, num_frames=16)``); must agree with ``actions``
                when both are given.
            prompt_actions: ``B T0-1``, the recorded actions between the prompt frames (passed to
                :meth:`infer_actions`; a recorded-action model needs them for a multi-frame prompt).

        Returns:
            Video ``B (T0 + N) C H W``: the prompt frames followed by ``N`` generated frames.
        """
        video = self._as_video(prompt, "prompt")
        b, t0 = video.shape[:2]
        if actions is None:
            if num_frames is None or num_frames <= t0:
                raise ValueError(
                    f"Pass actions (B N latent action indices) or num_frames > the prompt's {t0} frame(s), "
                    f"e.g. generate(prompt, num_frames={t0 + 15}); got num_frames={num_frames}."
                )
            device = generator.device if generator is not None else video.device
            actions = torch.randint(0, self.num_actions, (b, num_frames - t0), generator=generator, device=device)
        elif num_frames is not None and t0 + actions.shape[-1] != num_frames:
            raise ValueError(
                f"num_frames={num_frames} disagrees with a {t0}-frame prompt plus {actions.shape[-1]} actions; "
                "pass one of the two."
            )
        if actions.ndim != 2 or actions.shape[0] != b:
            raise ValueError(f"actions must have shape B N = ({b}, N), got {tuple(actions.shape)}.")
        check_actions(actions, self.num_actions)
        actions = actions.to(video.device).long()
        video_ctx = video[:, -self.num_frames :]
        tokens = self.tokenizer.encode(video_ctx)
        if prompt_actions is not None:
            prompt_actions = prompt_actions[:, -(video_ctx.shape[1] - 1) :] if video_ctx.shape[1] > 1 else None
        all_actions = (
            self.infer_actions(video_ctx, prompt_actions) if video_ctx.shape[1] > 1 else actions.new_zeros((b, 0))
        )
        rollout = self.rollout(tokens, all_actions, use_cache=use_cache)  # keeps every frame
        for n in range(actions.shape[1]):
            rollout.step(actions[:, n], generator=generator)
        generated = self._decode_long(rollout.tokens)[:, video_ctx.shape[1] :]
        return torch.cat([video, generated], dim=1)

    def _decode_long(self, tokens: Tensor) -> Tensor:
        """Decode any number of frames with a sliding window of ``num_frames``."""
        t = tokens.shape[1]
        if t <= self.num_frames:
            return self.tokenizer.decode(tokens)
        out = [self.tokenizer.decode(tokens[:, : self.num_frames])]
        for end in range(self.num_frames + 1, t + 1):
            out.append(self.tokenizer.decode(tokens[:, end - self.num_frames : end])[:, -1:])
        return torch.cat(out, dim=1)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory`` atomically.

        Returns:
            The checkpoint directory.
        """
        with atomic_directory(directory) as tmp:
            save_tensors(self.state_dict(), tmp / WEIGHTS_FILE)
            config = self.config
            meta = {
                "format_version": FORMAT_VERSION,
                "kind": "worldmodels.WorldModel",
                "weights_sha256": file_sha256(tmp / WEIGHTS_FILE),
                "components": {k: config[k]["name"] for k in ("tokenizer", "action_model", "dynamics", "sampler")},
            }
            write_json({"model": config, "meta": meta}, tmp / CONFIG_FILE)
        return Path(directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], device: str | torch.device = "cpu", **overrides: Any
    ) -> WorldModel:
        """Rebuild a model saved with :meth:`save_pretrained` (no pickle is ever executed).

        Args:
            directory: a :meth:`save_pretrained` directory, a training checkpoint
                (``RUN/<stage>/checkpoints/step-N``) or a training run directory (its finished
                model; :func:`~worldmodels.checkpoint.resolve_model_dir`).
            device: where to put the weights.
            **overrides: config overrides that keep the architecture (e.g. ``sampler={"steps": 8}``).

        Raises:
            CheckpointError: for a missing, corrupt or mismatched checkpoint.
        """
        directory = resolve_model_dir(directory)
        saved = read_json(directory / CONFIG_FILE)
        if not isinstance(saved, dict) or "model" not in saved:
            raise CheckpointError(
                f"{directory / CONFIG_FILE} is not a worldmodels model config (no 'model' section); "
                "training checkpoints hold the model in their 'model' subdirectory."
            )
        meta = saved.get("meta", {})
        weights_path = directory / WEIGHTS_FILE
        expected_sha = meta.get("weights_sha256")
        if expected_sha and weights_path.is_file() and file_sha256(weights_path) != expected_sha:
            raise CheckpointError(
                f"{weights_path} does not match the checksum recorded in {CONFIG_FILE}: the file is truncated "
                "or was altered. Restore it from a backup or re-save the model."
            )
        config = {k: v for k, v in saved["model"].items() if k != "library_version"}
        model = cls.from_config(config, **overrides)
        weights = load_tensors(weights_path)
        check_state_dict(model, weights, str(weights_path), model.name)
        model.load_state_dict(weights)
        return model.to(device)
