"""The four component interfaces a world model is composed of.

Axis legend used throughout the library:

* ``B`` batch, ``T`` time (frames), ``C`` channels, ``H W`` pixels,
* ``h w`` token grid of one frame, ``N = h * w`` tokens per frame,
* ``D`` embedding width, ``V`` vocabulary size, ``A`` number of latent actions.

Conventions (see the specification, section 3):

* video is ``B T C H W`` float in ``[0, 1]``;
* tokens are ``B T h w`` int64 ids for a discrete tokenizer, or ``B T h w D`` float latents for
  a continuous one (:attr:`Tokenizer.continuous`); the dynamics and sampler of a model work on
  whichever its tokenizer makes;
* actions are ``B T-1`` int64, action ``t`` explains the transition from frame ``t`` to
  frame ``t + 1``.

A component is an :class:`torch.nn.Module` that subclasses one of these abstract classes,
is registered with :func:`worldmodels.register`, and takes only JSON-serialisable keyword
arguments in its constructor (so the resolved config can rebuild it).
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

Metrics = dict[str, Tensor]
"""Scalar metrics of one loss evaluation, detached 0-d tensors keyed by name."""

LossOutput = tuple[Tensor, Metrics]
"""``(loss, metrics)``: a differentiable 0-d loss and detached scalar metrics."""


def check_video(video: Tensor, name: str = "video", min_frames: int = 1) -> None:
    """Validate a ``B T C H W`` float video tensor.

    Args:
        video: the tensor to check.
        name: how the tensor is called in the error message.
        min_frames: the least number of frames ``T`` that is acceptable.

    Raises:
        ValueError: if the tensor has the wrong rank, dtype or too few frames.
    """
    if not isinstance(video, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape B T C H W, got {type(video).__name__}.")
    if video.ndim != 5:
        raise ValueError(
            f"{name} must have shape B T C H W (5 dims), got shape {tuple(video.shape)}. "
            "Add a batch axis with video[None] or a time axis with video[:, None]."
        )
    if not video.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor with values in [0, 1], got dtype {video.dtype}. "
            "Convert uint8 frames with video.float() / 255."
        )
    if video.shape[1] < min_frames:
        raise ValueError(f"{name} needs at least {min_frames} frames (axis T), got shape {tuple(video.shape)}.")


def check_actions(actions: Tensor, num_actions: int, name: str = "actions") -> None:
    """Validate an int64 tensor of latent action indices.

    Raises:
        ValueError: if the dtype is not integer or an index lies outside ``[0, num_actions)``.
    """
    if actions.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name} must be an integer tensor of latent action indices, got dtype {actions.dtype}.")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= num_actions):
        raise ValueError(
            f"{name} holds indices in [{int(actions.min())}, {int(actions.max())}] but this model has "
            f"{num_actions} latent actions: use indices 0..{num_actions - 1}."
        )


@runtime_checkable
class DeferredStateUpdates(Protocol):
    """A module whose training forward changes its own state (a VQ codebook's usage, EMA codes, resets).

    The trainer sets ``defer_state_updates = True`` on every such module of the model, then calls
    :meth:`commit_state_updates` after each optimizer step it takes and
    :meth:`discard_state_updates` after each step it skips, so that micro-batches of one step are
    counted once and a skipped step leaves the model untouched.
    :class:`~worldmodels.layers.VectorQuantizer` implements it; a plug-in's own stateful module
    only needs these three members to be handled the same way.
    """

    defer_state_updates: bool

    def commit_state_updates(self) -> dict[str, Tensor]:
        """Apply the recorded updates; return ``{parameter name: rows bool}`` whose optimizer moments must be cleared."""
        ...

    def discard_state_updates(self) -> None:
        """Forget the recorded updates."""
        ...


_CAPTURED = "_constructor_arguments"


def _capture_constructor_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a component's ``__init__`` so the arguments of the outermost call are kept, with defaults."""
    signature = inspect.signature(init)
    parameters = list(signature.parameters.values())[1:]

    @functools.wraps(init)
    def __init__(self: Component, *args: Any, **kwargs: Any) -> None:
        if _CAPTURED not in self.__dict__:  # the outermost __init__ of the class chain speaks for the object
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            captured: dict[str, Any] = {}
            for p in parameters:
                value = bound.arguments.get(p.name)
                if p.kind is inspect.Parameter.VAR_KEYWORD:
                    captured.update(value or {})
                elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        raise TypeError(
                            f"{type(self).__name__} got positional arguments {value!r} for *{p.name}; a component's "
                            "config holds named arguments only: give them by name."
                        )
                else:
                    captured[p.name] = value
            object.__setattr__(self, _CAPTURED, captured)
        init(self, *args, **kwargs)

    __init__.__wrapped_for_config__ = True  # type: ignore[attr-defined]
    return __init__


class Component(nn.Module):
    """Base of every registered component.

    The arguments a component is constructed with (its ``__init__``'s parameters, defaults
    filled in; for a subclass chain, the outermost ``__init__``'s) are captured from the
    signature, as diffusers' ``register_to_config`` does, so :meth:`get_config` returns a dict
    that rebuilds the component without the constructor listing them a second time. A value
    the constructor derives (e.g. the vocabulary an FSQ ``levels`` implies) is recorded on top
    with :meth:`_record_config`. Arguments must be JSON-serialisable (numbers, strings, lists,
    dicts, ``None``) for :meth:`~worldmodels.WorldModel.save_pretrained`.
    """

    kind: ClassVar[str] = "component"
    registered_name: ClassVar[str | None] = None
    training_stages: ClassVar[tuple[str, ...]] = ()
    """The training stages that train this component (:mod:`worldmodels.training.stages`); a
    model's stages are its components' (:meth:`worldmodels.WorldModel.training_stages`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "__wrapped_for_config__", False):
            cls.__init__ = _capture_constructor_arguments(init)  # type: ignore[method-assign]

    def __init__(self) -> None:
        super().__init__()
        self._config: dict[str, Any] = dict(self.__dict__.get(_CAPTURED, {}))

    def _record_config(self, **kwargs: Any) -> None:
        """Record values on top of the captured constructor arguments (derived settings, e.g. a vocabulary size)."""
        self._config.update(kwargs)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments plus ``name``: enough to rebuild the component."""
        return {"name": self.registered_name, **self._config}


class Tokenizer(Component, abc.ABC):
    """Turns video into tokens and back: discrete ids (a codebook) or continuous latent vectors.

    Shapes: ``encode``: ``B T C H W`` float -> ``B T h w`` int64 (discrete) or ``B T h w D``
    float (continuous, ``D = latent_dim``); ``decode``: those -> ``B T C H W`` float in ``[0, 1]``.
    """

    kind: ClassVar[str] = "tokenizer"
    training_stages: ClassVar[tuple[str, ...]] = ("tokenizer",)
    continuous: ClassVar[bool] = False
    """True when tokens are float latent vectors ``B T h w D`` instead of ids ``B T h w``."""
    vocab_size: int | None
    """Number of distinct token ids (codebook size); ``None`` for a continuous tokenizer."""
    latent_dim: int | None = None
    """Width ``D`` of a continuous tokenizer's latent vectors; ``None`` for a discrete one."""
    temporally_causal: bool = True
    """Whether the tokens of frame ``t`` depend only on frames ``<= t``."""

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The shape of one frame's tokens: ``(h, w)`` for ids, ``(h, w, D)`` for continuous latents."""
        grid = self.token_grid(height, width)
        if not self.continuous:
            return grid
        if not self.latent_dim:
            raise ValueError(f"{type(self).__name__} is continuous but sets no latent_dim (the width D of its latents).")
        return (*grid, int(self.latent_dim))

    def dynamics_arguments(self) -> dict[str, int]:
        """What a dynamics model is built with to read these tokens: ``vocab_size`` or ``latent_dim``."""
        if self.continuous:
            if not self.latent_dim:
                raise ValueError(f"{type(self).__name__} is continuous but sets no latent_dim.")
            return {"latent_dim": int(self.latent_dim)}
        if self.vocab_size is None:
            raise ValueError(f"{type(self).__name__} is discrete but its vocab_size is None.")
        return {"vocab_size": int(self.vocab_size)}

    @abc.abstractmethod
    def encode(self, video: Tensor) -> Tensor:
        """encode(video: B T C H W float) -> tokens: B T h w int64 (or B T h w D float when continuous)."""
        raise NotImplementedError("encode(video: B T C H W float in [0,1]) -> tokens: B T h w int64")

    @abc.abstractmethod
    def decode(self, tokens: Tensor) -> Tensor:
        """decode(tokens: B T h w int64 (or B T h w D float)) -> video: B T C H W float in [0, 1]."""
        raise NotImplementedError("decode(tokens: B T h w int64) -> video: B T C H W float in [0,1]")

    def decode_last(self, tokens: Tensor) -> Tensor:
        """decode_last(tokens: B T h w int64) -> frame: B C H W, the newest frame of ``tokens``.

        What play needs each step. The default decodes the whole window and keeps its last frame;
        a tokenizer whose decoder looks at fewer frames (a per-frame one) overrides it.
        """
        return self.decode(tokens)[:, -1]

    @abc.abstractmethod
    def loss(self, video: Tensor) -> LossOutput:
        """loss(video: B T C H W) -> (loss, metrics): reconstruction and quantiser losses."""
        raise NotImplementedError("loss(video: B T C H W) -> (loss: 0-d Tensor, metrics: dict[str, Tensor])")

    @abc.abstractmethod
    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """The token grid ``(h, w)`` of one ``height x width`` frame."""
        raise NotImplementedError("token_grid(height: int, width: int) -> (h, w)")

    def reconstruct(self, video: Tensor) -> Tensor:
        """Encode then decode: ``B T C H W`` -> ``B T C H W``."""
        return self.decode(self.encode(video))


class ActionModel(Component, abc.ABC):
    """Gives one discrete action per transition of a video, and the vectors the dynamics are conditioned on.

    Actions are either *latent* (inferred from the frames, Genie's latent action model) or
    *recorded* (read from the data set; :attr:`uses_recorded_actions`). Every method takes the
    recorded actions of the clip when the data has them (``actions``, ``-1`` where unknown);
    latent action models ignore them.

    Shapes: ``infer``: ``B T C H W`` (and ``actions`` ``B T-1``) -> ``B T-1`` int64;
    ``embed``: ``B T-1`` -> ``B T-1 D``.
    """

    kind: ClassVar[str] = "action_model"
    training_stages: ClassVar[tuple[str, ...]] = ("lam",)
    """A latent action model trains alone in ``lam`` (and with the dynamics in ``dynamics``)."""
    num_actions: int
    """Size of the action vocabulary ``A``."""
    action_dim: int
    """Width ``D`` of the action embeddings returned by :meth:`embed`."""
    uses_recorded_actions: ClassVar[bool] = False
    """True when the actions come from the data set (``infer`` needs ``actions``), not from the frames."""

    @abc.abstractmethod
    def infer(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        """infer(video: B T C H W, actions: B T-1 | None) -> actions: B T-1 int64 in [0, num_actions)."""
        raise NotImplementedError("infer(video: B T C H W, actions: B T-1 | None = None) -> actions: B T-1 int64")

    @abc.abstractmethod
    def embed(self, actions: Tensor) -> Tensor:
        """embed(actions: B T-1 int64) -> embeddings: B T-1 D (e.g. the action codebook vectors)."""
        raise NotImplementedError("embed(actions: B T-1 int64) -> B T-1 D")

    @abc.abstractmethod
    def loss(self, video: Tensor, actions: Tensor | None = None) -> LossOutput:
        """loss(video: B T C H W, actions: B T-1 | None) -> (loss, metrics)."""
        raise NotImplementedError("loss(video: B T C H W, actions: B T-1 | None = None) -> (loss, metrics)")

    def latent_vectors(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        """The continuous vector behind each transition's action (for linear probes): ``B T-1 D'``.

        The default is :meth:`embed` of :meth:`infer`; latent action models return their
        pre-quantisation latents.
        """
        return self.embed(self.infer(video, actions))

    def loss_and_actions(self, video: Tensor, actions: Tensor | None = None) -> tuple[Tensor, Metrics, Tensor]:
        """Loss, metrics and the actions ``B T-1`` in one pass.

        The default calls :meth:`loss` then :meth:`infer`; models override it to share the
        encoder pass when the action model is co-trained with the dynamics.
        """
        loss, metrics = self.loss(video, actions)
        with torch.no_grad():
            inferred = self.infer(video, actions)
        return loss, metrics, inferred


class DynamicsCache:
    """State kept between the passes of one next-frame prediction (e.g. a sampler's refinement iterations).

    The default holds the context itself (no speed-up); dynamics models with a
    key/value cache subclass it.

    Attributes:
        tokens: context tokens ``B T h w``.
        action_embeddings: ``B T D`` embeddings, entry ``t`` leading from frame ``t`` to ``t+1``
            (the last one leads into the frame being predicted).
    """

    def __init__(self, tokens: Tensor, action_embeddings: Tensor) -> None:
        self.tokens = tokens
        self.action_embeddings = action_embeddings


class DynamicsStream(abc.ABC):
    """A rollout's running state inside a dynamics model: what it keeps between frames.

    A dynamics that can append frames to what it has computed (a rolling key/value cache over
    rotary temporal positions, a recurrent state) returns one from :meth:`Dynamics.open_stream`;
    each new frame then costs only that frame, however long the rollout. One frame is predicted
    at a time: :meth:`prepare` the prediction under an action, let a sampler refine it with the
    returned cache, then :meth:`push` the chosen tokens.

    Attributes:
        batch: ``B``, the rollouts advanced together.
        frames: frames pushed since the stream opened (the context included).
    """

    batch: int
    frames: int

    @abc.abstractmethod
    def prepare(self, action_embedding: Tensor) -> DynamicsCache:
        """The cache for predicting the next frame under ``action_embedding`` (``B D``)."""
        raise NotImplementedError("prepare(action_embedding: B D) -> DynamicsCache")

    @abc.abstractmethod
    def push(self, frame_tokens: Tensor) -> None:
        """Append the frame ``B h w`` predicted under the last :meth:`prepare`'s action."""
        raise NotImplementedError("push(frame_tokens: B h w) -> None")

    def select(self, rows: list[int]) -> DynamicsStream:
        """A stream of the batch elements ``rows`` only (for rollouts that leave a batch)."""
        raise NotImplementedError(f"{type(self).__name__} cannot split its batch.")

    @classmethod
    def cat(cls, streams: list[DynamicsStream]) -> DynamicsStream:
        """Streams at the same frame stacked along the batch (for rollouts that join one)."""
        raise NotImplementedError(f"{cls.__name__} cannot stack streams.")


class Dynamics(Component, abc.ABC):
    """Predicts the tokens of frame ``t+1`` from tokens of frames ``<= t`` and actions ``<= t``.

    Over discrete tokens (built with the tokenizer's ``vocab_size``) it predicts logits. A
    dynamics whose input may hold unknown tokens, for samplers that refine a draft frame over
    several passes (MaskGIT's), says which id marks them with a ``mask_token_id`` attribute
    (the Genie plug-in's ``maskgit`` uses ``vocab_size``); the core assumes no such id. Over continuous latents (built with the
    tokenizer's ``latent_dim``; :attr:`continuous` is True) it predicts the latents themselves,
    or whatever its sampler reads (e.g. a diffusion model's denoiser output).

    Shapes: ``forward(tokens: B T h w, action_embeddings: B T-1 D) -> logits: B T h w V`` where
    the logits at frame ``t`` predict the tokens of frame ``t`` (frame 0's are unused);
    continuous: ``forward(latents: B T h w L, action_embeddings) -> B T h w L``.
    """

    kind: ClassVar[str] = "dynamics"
    training_stages: ClassVar[tuple[str, ...]] = ("dynamics",)
    continuous: ClassVar[bool] = False
    """True for a dynamics over continuous latents (it must match the tokenizer's :attr:`Tokenizer.continuous`)."""
    vocab_size: int | None
    max_frames: int
    predicts_outcomes: ClassVar[bool] = False
    """True when the model also predicts each transition's reward and episode end: its ``loss``
    then takes ``rewards`` and ``terminated`` keywords and :meth:`predict_outcome` answers."""

    @abc.abstractmethod
    def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        """forward(tokens: B T h w, action_embeddings: B T-1 D) -> logits: B T h w V."""
        raise NotImplementedError("forward(tokens: B T h w, action_embeddings: B T-1 D) -> logits: B T h w V")

    @abc.abstractmethod
    def loss(self, tokens: Tensor, action_embeddings: Tensor) -> LossOutput:
        """loss(tokens: B T h w, action_embeddings: B T-1 D) -> (loss, metrics)."""
        raise NotImplementedError("loss(tokens: B T h w, action_embeddings: B T-1 D) -> (loss, metrics)")

    def predict_outcome(self, tokens: Tensor, action_embeddings: Tensor) -> tuple[Tensor, Tensor] | None:
        """Reward and episode-end probability of the transition out of the last frame of ``tokens``.

        Args:
            tokens: context ``B T h w``.
            action_embeddings: ``B T D``; entry ``T-1`` is the action taken at the last frame.

        Returns:
            ``(reward B, termination probability B)``, or ``None`` for a model that does not
            predict them (the default).
        """
        return None

    def prefill(self, tokens: Tensor, action_embeddings: Tensor) -> DynamicsCache:
        """Prepare to predict the frame after ``tokens``.

        Args:
            tokens: context ``B T h w``.
            action_embeddings: ``B T D``; entry ``T-1`` leads into the predicted frame.

        Returns:
            A cache passed to every :meth:`next_logits` call of this prediction.
        """
        return DynamicsCache(tokens, action_embeddings)

    def open_stream(self, tokens: Tensor, action_embeddings: Tensor, frames: int) -> DynamicsStream | None:
        """Start a rollout whose frames are appended one at a time, or ``None`` if this dynamics cannot.

        Without a stream (the default) every frame is predicted from the last
        :meth:`history_frames` context frames afresh (:meth:`prefill`).

        Args:
            tokens: the rollout's first frames ``B T h w``.
            action_embeddings: ``B T-1 D``, the actions between them.
            frames: the past frames a prediction sees (the world model's context window).
        """
        return None

    def history_frames(self, frames: int) -> int:
        """Past frames that decide the next one when a prediction sees ``frames`` past frames.

        ``frames`` for a dynamics that reads its context afresh (the default). A stream over
        sliding-window attention reaches further: each cached frame carries its own window, so
        ``depth`` layers look back ``depth * frames`` frames; the uncached path then reads that
        many, so that it gives what the stream gives.
        """
        return frames

    def compile_inference(self, backend: str = "inductor") -> None:
        """Compile what generating a frame runs, in place, with :func:`torch.compile`.

        The default compiles :meth:`forward`, :meth:`prefill` and :meth:`next_logits` (what a
        sampler calls at every pass). A dynamics whose inference holds Python bookkeeping (a
        stream's slots and frame counts) compiles its tensor-only core instead, so that one graph
        serves every frame. :func:`~worldmodels.envs.compile_world_model` calls it.

        Args:
            backend: a :func:`torch.compile` backend (``"eager"`` traces without generating code).
        """
        for name in ("forward", "prefill", "next_logits"):
            object.__setattr__(self, name, torch.compile(getattr(self, name), backend=backend))

    def next_logits(self, draft: Tensor, cache: DynamicsCache) -> Tensor:
        """Logits ``B h w V`` for the frame being predicted given a ``draft`` ``B h w`` of it.

        The draft holds what a sampler has decided so far (and the dynamics' ``mask_token_id``
        where it has not, for a dynamics that has one). The default runs the whole context again;
        a dynamics with a key/value cache computes only the new frame.
        """
        tokens = torch.cat([cache.tokens, draft[:, None]], dim=1)
        return self(tokens, cache.action_embeddings)[:, -1]


class Sampler(Component, abc.ABC):
    """Turns a dynamics model's predictions into the next frame's tokens.

    Shapes: ``sample(dynamics, tokens: B T h w, action_embeddings: B T D) -> B h w`` int64
    (continuous latents: ``B T h w L`` -> ``B h w L`` float).
    """

    kind: ClassVar[str] = "sampler"

    @abc.abstractmethod
    def sample(
        self,
        dynamics: Dynamics,
        tokens: Tensor,
        action_embeddings: Tensor,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        cache: DynamicsCache | None = None,
    ) -> Tensor:
        """sample(dynamics, tokens: B T h w, action_embeddings: B T D) -> next tokens: B h w int64 (or B h w L float).

        ``cache``, when given, is a prepared cache (:meth:`DynamicsStream.prepare`) to use
        instead of :meth:`Dynamics.prefill`; ``tokens`` and ``action_embeddings`` are then the
        same context, for samplers that read them.
        """
        raise NotImplementedError(
            "sample(dynamics, tokens: B T h w, action_embeddings: B T D, generator=None, use_cache=True, cache=None)"
            " -> B h w"
        )


@dataclass
class StepOutput:
    """What one :meth:`worldmodels.WorldModel.play` step returns.

    Attributes:
        frame: the generated frame ``B C H W`` in ``[0, 1]``.
        tokens: its tokens ``B h w`` (``B h w L`` for continuous latents).
        reward: the predicted reward of the step ``B``, where the dynamics predicts it (else ``None``).
        terminated: the predicted probability that the step ended the episode ``B`` (else ``None``).
    """

    frame: Tensor
    tokens: Tensor
    reward: Tensor | None = None
    terminated: Tensor | None = None


COMPONENT_KINDS: tuple[str, ...] = ("tokenizer", "action_model", "dynamics", "sampler")
"""The component kinds a :class:`~worldmodels.WorldModel` is composed of, in build order."""

KIND_BASES: dict[str, type[Component]] = {
    "tokenizer": Tokenizer,
    "action_model": ActionModel,
    "dynamics": Dynamics,
    "sampler": Sampler,
}
