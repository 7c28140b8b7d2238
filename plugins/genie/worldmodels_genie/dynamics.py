"""Genie's dynamics model: a decoder-only MaskGIT ST-transformer over video tokens.

Axis legend: ``B`` batch, ``T`` frames, ``h w`` token grid, ``N = h * w``, ``D`` model width,
``E`` action embedding width (the LAM's code width), ``V`` token vocabulary.

* input: the tokens of every frame (id ``V`` marks a masked token) plus additive action
  embeddings; the action leading from frame ``t`` to ``t+1`` (a LAM codebook vector, projected to
  ``D`` by a linear layer) is added to the tokens of frame ``t+1``. The caller stops the gradient
  into the LAM (:meth:`worldmodels.WorldModel.dynamics_loss`).
* the ST-transformer is causal in time, so the logits of frame ``t`` depend on tokens and actions
  of frames ``<= t`` only;
* training (paper, section 2.3): each clip's input tokens are masked with a Bernoulli rate drawn
  uniformly from ``[0.5, 1]`` (the first frame is never masked), and the cross-entropy is taken on
  the masked tokens of frames ``2..T``;
* inference: :meth:`MaskGITDynamics.prefill` runs the context frames once and caches the keys and
  values of every temporal attention layer; each MaskGIT iteration then runs
  :meth:`MaskGITDynamics.next_logits` on the new frame's ``N`` tokens only;
* ``temporal_pos="rope"``: rotary temporal positions in the temporal attention instead of a
  learned frame table, and a sliding attention window of ``max_frames`` frames. A rollout then
  keeps a :class:`MaskGITStream` (:meth:`MaskGITDynamics.open_stream`): each new frame computes its
  own keys and values once (one extra pass with its final tokens, after the sampler's passes) and
  nothing is recomputed as the window slides, so a frame costs the same however many were played;
* ``token_patch = g > 1`` groups ``g x g`` neighbouring tokens into one transformer position
  (``P = N / g^2`` positions per frame, letters ``p q`` for the offsets inside a group): the input
  of a position is the sum of one embedding per slot of the group (each slot has its own table),
  and its output predicts the ``g^2`` tokens of the group. Masking, the loss and sampling stay per
  token. A fine token grid (16x16) then costs the transformer what a coarse one (8x8) costs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodels import Dynamics, DynamicsCache, DynamicsStream, register
from worldmodels.interfaces import LossOutput
from worldmodels.layers import FactorizedPosEmbed, FlatLinear, STCache, STTransformer, init_transformer_weights
from worldmodels.layers.st_transformer import STStream

COPY_LOGIT_INIT = 2.0
"""Initial bias of the copy prior: the previous frame's token starts ``e^2`` times likelier than the others."""

MASK_MODES: tuple[str, ...] = ("clip", "frame")
"""How training masks are drawn (see :class:`MaskGITDynamics`'s ``mask_mode``)."""

TEMPORAL_POS: tuple[str, ...] = ("absolute", "rope")
"""Temporal positions: a per-frame table added to the input, or rotary phases in the temporal attention."""


class MaskGITCache(DynamicsCache):
    """Key/value cache of the context frames for one next-frame prediction.

    Attributes:
        tokens: context tokens ``B T h w`` (a stream's: its newest frame only, ``B 1 h w``).
        action_embeddings: ``B T E`` (entry ``T-1`` leads into the predicted frame).
        st_cache: keys and values of the context frames, per ST block (``None`` on a stream).
        frame_bias: ``B 1 N D``, positional encoding plus action embedding of the predicted frame.
        stream: the rollout's stream the prediction runs in (rotary models), else ``None``.
    """

    def __init__(
        self, tokens: Tensor, action_embeddings: Tensor, st_cache: STCache | None, frame_bias: Tensor,
        stream: MaskGITStream | None = None,
    ) -> None:
        super().__init__(tokens, action_embeddings)
        self.st_cache = st_cache
        self.frame_bias = frame_bias
        self.stream = stream
        self.copy_bias: Tensor | None = None  # B 1 h w V, the copy prior's logit bias (built at the first pass)


class MaskGITStream(DynamicsStream):
    """A MaskGIT rollout's rolling key/value buffers (rotary temporal positions only).

    A pushed frame is committed lazily: its pass (with its final tokens, to write its keys and
    values) runs together with the first sampler pass of the next frame, as one two-frame step;
    a frame pushed last is never run again. :meth:`commit` runs a pending frame on its own.

    Attributes:
        st: the ST-transformer's :class:`~worldmodels.layers.STStream`.
        last_tokens: the newest frame's tokens ``B 1 h w`` (for the copy prior).
    """

    def __init__(self, dynamics: MaskGITDynamics, st: STStream, last_tokens: Tensor) -> None:
        self.dynamics, self.st, self.last_tokens = dynamics, st, last_tokens
        self._bias: Tensor | None = None  # B 1 N D: position + action of the frame being predicted
        self._uncommitted: Tensor | None = None  # B 1 N D: the input of a pushed frame not yet run

    @property
    def batch(self) -> int:  # type: ignore[override]
        return self.st.batch

    @property
    def frames(self) -> int:  # type: ignore[override]
        return self.st.frames + (self._uncommitted is not None)

    def prepare(self, action_embedding: Tensor) -> MaskGITCache:
        """The cache for the next frame under ``action_embedding`` (``B E``)."""
        dyn = self.dynamics
        dyn._check_actions(action_embedding[:, None], self.batch, 1)
        self._bias = dyn.pos(1) + dyn.action_proj(action_embedding[:, None])[:, :, None, :]
        return MaskGITCache(self.last_tokens, action_embedding[:, None], None, self._bias, stream=self)

    def push(self, frame_tokens: Tensor) -> None:
        """Append the frame ``B h w`` predicted under the last :meth:`prepare` (its pass runs with the next one)."""
        if self._bias is None:
            raise RuntimeError("push() follows prepare(action_embedding): which action led to this frame?")
        self.commit()
        self._uncommitted = self.dynamics._embed_tokens(frame_tokens[:, None]) + self._bias
        self.last_tokens, self._bias = frame_tokens[:, None], None

    def commit(self) -> None:
        """Run the pushed frame's pass now (its keys and values into the buffers), if it is pending."""
        if self._uncommitted is not None:
            self.dynamics.transformer.stream_step(self._uncommitted, self.st, commit=True)
            self._uncommitted = None

    def step(self, x_B1ND: Tensor) -> Tensor:
        """One sampler pass over the predicted frame's input, after the pending frame if there is one.

        Shapes: ``x: B 1 N D -> B 1 N D`` (the transformer's output).
        """
        if self._uncommitted is None:
            return self.dynamics.transformer.stream_step(x_B1ND, self.st)
        both = torch.cat([self._uncommitted, x_B1ND], dim=1)
        self._uncommitted = None
        return self.dynamics.transformer.stream_step(both, self.st)[:, 1:]

    def select(self, rows: list[int]) -> MaskGITStream:
        """The rollouts ``rows`` of the batch only."""
        self.commit()
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=self.last_tokens.device)
        return MaskGITStream(self.dynamics, self.st.select(rows_t), self.last_tokens.index_select(0, rows_t))

    @classmethod
    def cat(cls, streams: list[DynamicsStream]) -> MaskGITStream:
        """Streams at the same frame stacked along the batch."""
        parts = [s for s in streams if isinstance(s, MaskGITStream)]
        if len(parts) != len(streams) or not parts:
            raise TypeError("MaskGITStream.cat stacks MaskGIT streams only.")
        for part in parts:
            part.commit()
        return MaskGITStream(parts[0].dynamics, STStream.cat([s.st for s in parts]),
                             torch.cat([s.last_tokens for s in parts]))


@register("dynamics", "maskgit")
class MaskGITDynamics(Dynamics):
    """Genie's MaskGIT dynamics: decoder-only causal ST-transformer with additive action embeddings.

    The defaults are CPU-sized; the paper's 10.1B model (48 attention layers = 24 ST blocks,
    width 5120, 36 heads) is the ``genie-large`` preset's.

    Shapes: ``forward(tokens: B T h w, action_embeddings: B T-1 E) -> logits: B T h w V``; the logits
    of frame ``t`` predict its tokens (frame 0's are unused).

    Args:
        vocab_size: token vocabulary ``V`` (set from the tokenizer by :class:`~worldmodels.WorldModel`).
        token_grid: ``[h, w]`` (set from the tokenizer).
        max_frames: the longest sequence ``T`` (context plus the predicted frame).
        action_dim: width ``E`` of the action embeddings (set from the action model).
        dim: model width ``D``.
        depth: ST blocks (each has a spatial and a temporal attention layer).
        num_heads: attention heads.
        head_dim: width per head (needed when ``dim`` is not a multiple of ``num_heads``).
        mlp_ratio: feed-forward width as a multiple of ``dim``.
        qk_norm: ``"rms"``, ``"layer"`` or ``None``.
        pos_embed: ``"learned"`` or ``"sinusoidal"``.
        attention: ``"spatiotemporal"`` (the paper's) or ``"full"`` (joint space-time attention,
            quadratic in ``T``; for comparison).
        mask_rate_min: lower end of the training mask rate.
        mask_rate_max: upper end of the training mask rate.
        dropout: dropout probability.
        grad_checkpointing: recompute ST blocks in the backward pass.
        token_patch: ``g``, tokens per side of a group that shares one transformer position
            (1: one position per token, the paper's; 2: a 16x16 token grid runs on 8x8 positions).
        mask_mode: ``"clip"`` (the paper's): one masking rate per clip, shared by every frame
            after the first, so the context of a predicted frame is as masked as the frame itself;
            ``"frame"``: an independent rate per frame, so each frame is also predicted from a
            cleaner or dirtier past, including the clean past it gets at inference.
        copy_prior: add a learned bias (one scalar, :attr:`copy_logit`) to the logit of the token
            the previous frame holds at the same place (unless that one is masked): frames change
            little from one step to the next, so "as before" starts as the likely prediction and the
            network learns where the world moves instead of learning to copy it.
        temporal_pos: ``"absolute"`` (a learned or sinusoidal table per frame, ``pos_embed``) or
            ``"rope"``: rotary temporal positions and a sliding window of ``max_frames`` frames,
            so a rollout appends frames to its key/value cache (:meth:`open_stream`) instead of
            recomputing its context.
    """

    vocab_size: int  # token ids only: this dynamics reads discrete tokens
    conformance_config: ClassVar[dict[str, Any]] = {"dim": 32, "depth": 2, "num_heads": 2}
    """Small settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self,
        vocab_size: int = 512,
        token_grid: list[int] | tuple[int, int] = (8, 8),
        max_frames: int = 16,
        action_dim: int = 32,
        dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        head_dim: int | None = None,
        mlp_ratio: float = 4.0,
        qk_norm: str | None = "rms",
        pos_embed: str = "learned",
        attention: str = "spatiotemporal",
        mask_rate_min: float = 0.5,
        mask_rate_max: float = 1.0,
        dropout: float = 0.0,
        grad_checkpointing: bool = False,
        token_patch: int = 1,
        mask_mode: str = "clip",
        copy_prior: bool = False,
        temporal_pos: str = "absolute",
    ) -> None:
        super().__init__()
        if temporal_pos not in TEMPORAL_POS:
            raise ValueError(f"temporal_pos must be one of {TEMPORAL_POS}, got {temporal_pos!r}.")
        self.temporal_pos = temporal_pos
        rope = temporal_pos == "rope"
        token_grid = [int(token_grid[0]), int(token_grid[1])]
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}.")
        self.mask_mode = mask_mode
        if token_patch < 1 or token_grid[0] % token_patch or token_grid[1] % token_patch:
            raise ValueError(
                f"token_patch={token_patch} must be >= 1 and divide the token grid {token_grid[0]}x{token_grid[1]}; "
                "use 1 (no grouping) or a divisor of both sides."
            )
        if not 0.0 <= mask_rate_min <= mask_rate_max <= 1.0:
            raise ValueError(
                f"Need 0 <= mask_rate_min <= mask_rate_max <= 1, got [{mask_rate_min}, {mask_rate_max}] "
                "(the paper draws the rate from [0.5, 1])."
            )
        self.vocab_size, self.max_frames, self.action_dim = vocab_size, max_frames, action_dim
        self.grid = (token_grid[0], token_grid[1])
        self.token_patch = g = token_patch
        self.position_grid = (token_grid[0] // g, token_grid[1] // g)
        self.mask_rate_min, self.mask_rate_max = mask_rate_min, mask_rate_max
        self.token_embed = nn.Embedding(g * g * (vocab_size + 1), dim)  # per slot of a group: V ids + the mask
        self._slot_offset: Tensor
        self.register_buffer("_slot_offset", torch.arange(g * g) * (vocab_size + 1), persistent=False)
        self.action_proj = nn.Linear(action_dim, dim)
        self.pos = FactorizedPosEmbed(dim, max_frames, self.position_grid, pos_embed, temporal=not rope)
        self.transformer = STTransformer(
            dim, depth, num_heads, head_dim, mlp_ratio=mlp_ratio, qk_norm=qk_norm, causal=True,
            attention=attention, dropout=dropout, grad_checkpointing=grad_checkpointing,
            temporal_rope=rope, window=max_frames if rope else None,
        )  # fmt: skip
        self.head = FlatLinear(dim, g * g * vocab_size)
        self.apply(init_transformer_weights)
        self.copy_prior = copy_prior
        if copy_prior:
            # shape (1,), not a scalar: FSDP2 cannot shard 0-d parameters (used as copy_logit[0], 0-d as before)
            self.copy_logit = nn.Parameter(torch.full((1,), COPY_LOGIT_INIT))

    # ------------------------------------------------------------------ inputs
    @property
    def mask_token_id(self) -> int:
        """The input id that marks a masked (not yet decided) token: one past the vocabulary."""
        return self.vocab_size

    def _check_tokens(self, tokens: Tensor, frames_needed: int) -> None:
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != self.grid:
            raise ValueError(
                f"maskgit dynamics expects tokens shaped B T h w with a {self.grid[0]}x{self.grid[1]} grid, got "
                f"shape {tuple(tokens.shape)}; was it built for another tokenizer?"
            )
        if frames_needed > self.max_frames and self.temporal_pos == "absolute":
            raise ValueError(
                f"maskgit dynamics handles at most {self.max_frames} frames (max_frames, the model's num_frames) "
                f"but was asked for {frames_needed}; shorten the context."
            )

    def _check_actions(self, action_embeddings: Tensor, batch: int, count: int) -> None:
        if action_embeddings.ndim != 3 or tuple(action_embeddings.shape) != (batch, count, self.action_dim):
            raise ValueError(
                f"Expected action_embeddings of shape B T-1 E = ({batch}, {count}, {self.action_dim}), got "
                f"{tuple(action_embeddings.shape)}. Entry t embeds the action leading from frame t to t+1."
            )

    def _embed_tokens(self, tokens: Tensor) -> Tensor:
        """Token embeddings per transformer position (summed over the slots of a group).

        Shapes: ``B T h w -> B T P D``.
        """
        g = self.token_patch
        if g == 1:
            return self.token_embed(tokens.flatten(2))
        grouped_BTPS = rearrange(tokens, "b t (h p) (w q) -> b t (h w) (p q)", p=g, q=g)
        return self.token_embed(grouped_BTPS + self._slot_offset).sum(-2)

    def _logits(self, h_BTPD: Tensor) -> Tensor:
        """Per-token logits from the transformer output: ``B T P D -> B T h w V``."""
        g = self.token_patch
        logits = self.head(h_BTPD)
        if g == 1:
            return logits.unflatten(2, self.grid)
        return rearrange(
            logits, "b t (h w) (p q v) -> b t (h p) (w q) v", h=self.position_grid[0], p=g, q=g, v=self.vocab_size
        )

    def _add_copy_prior(self, logits_BThwV: Tensor, previous_BThw: Tensor) -> Tensor:
        """Add :attr:`copy_logit` at the previous frame's token (where it is not masked).

        Shapes: ``logits: B T h w V``, ``previous: B T h w`` (the frame before each) -> ``B T h w V``.
        """
        return logits_BThwV + self._copy_bias(previous_BThw, logits_BThwV.dtype)

    def _copy_bias(self, previous_BThw: Tensor, dtype: torch.dtype) -> Tensor:
        """:attr:`copy_logit` at the previous frame's token, 0 elsewhere: ``B T h w -> B T h w V``."""
        known = previous_BThw < self.vocab_size
        bias = F.one_hot(previous_BThw.clamp_max(self.vocab_size - 1), self.vocab_size).to(dtype)
        return self.copy_logit[0].to(dtype) * bias * known[..., None]

    def embed_inputs(self, tokens: Tensor, action_embeddings: Tensor, offset: int = 0) -> Tensor:
        """Input embeddings: token + position + action (frame ``t`` gets the action leading into it).

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T' E`` with ``T' = T - 1`` when
        ``offset == 0`` (frame 0 has no incoming action) and ``T' = T`` otherwise -> ``B T N D``.

        Args:
            tokens: token ids (``vocab_size`` = masked).
            action_embeddings: the actions leading into these frames.
            offset: index of the first frame (positions continue after cached frames).
        """
        t = tokens.shape[1]
        x_BTND = self._embed_tokens(tokens) + self.pos(t, offset)
        actions_BTD = self.action_proj(action_embeddings.to(x_BTND.dtype))
        if offset == 0:
            actions_BTD = F.pad(actions_BTD, (0, 0, 1, 0))
        return x_BTND + actions_BTD[:, :, None, :]

    # ------------------------------------------------------------------ forward / loss
    def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        """Logits of every frame's tokens.

        Shapes: ``tokens: B T h w`` (id ``vocab_size`` = masked), ``action_embeddings: B T-1 E``
        -> ``B T h w V``.
        """
        b, t = tokens.shape[:2]
        self._check_tokens(tokens, t)
        self._check_actions(action_embeddings, b, t - 1)
        h_BTND = self.transformer(self.embed_inputs(tokens, action_embeddings))
        logits = self._logits(h_BTND)
        if self.copy_prior and t > 1:
            logits = torch.cat([logits[:, :1], self._add_copy_prior(logits[:, 1:], tokens[:, :-1])], dim=1)
        return logits

    def random_mask(self, tokens: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The training mask: each token of frames 2..T masked with probability ``r``.

        ``r`` is drawn uniformly from ``[mask_rate_min, mask_rate_max]`` (paper: ``[0.5, 1]``), once
        per clip (``mask_mode="clip"``, the paper's) or once per frame (``"frame"``).

        Shapes: ``tokens: B T h w -> B T h w`` bool (True = masked).
        """
        b, t = tokens.shape[:2]
        device = tokens.device
        shape = (b, 1) if self.mask_mode == "clip" else (b, t)
        rate = torch.rand(shape, generator=generator, device=device) * (self.mask_rate_max - self.mask_rate_min)
        rate = rate + self.mask_rate_min
        mask = torch.rand(tokens.shape, generator=generator, device=device) < rate[:, :, None, None]
        mask[:, 0] = False
        return mask

    def loss(self, tokens: Tensor, action_embeddings: Tensor) -> LossOutput:
        """Masked-token cross-entropy (MaskGIT training) under a fresh :meth:`random_mask`.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T-1 E``.

        Returns:
            ``(loss, metrics)`` with ``loss``, ``masked_accuracy`` and ``mask_rate``.
        """
        if tokens.shape[1] < 2:
            raise ValueError(f"The dynamics loss needs at least 2 frames, got tokens of shape {tuple(tokens.shape)}.")
        return self.masked_loss(tokens, self.random_mask(tokens), action_embeddings)

    def masked_loss(self, tokens: Tensor, mask: Tensor, action_embeddings: Tensor) -> LossOutput:
        """Cross-entropy of the tokens under ``mask``, given the rest: :meth:`loss` with a chosen mask.

        Equal to the cross-entropy of :meth:`forward`'s logits at the masked tokens, but the
        output head runs only on the positions that hold a masked token, and only their logits
        (``K V`` for ``K`` masked tokens, not ``B T h w V``) are built, copy prior included.

        Shapes: ``tokens: B T h w``, ``mask: B T h w`` bool (True = masked and scored; frame 0
        must be unmasked), ``action_embeddings: B T-1 E``.

        Returns:
            ``(loss, metrics)`` with ``loss``, ``masked_accuracy`` and ``mask_rate``.
        """
        b, t = tokens.shape[:2]
        self._check_tokens(tokens, t)
        self._check_actions(action_embeddings, b, t - 1)
        if mask.shape != tokens.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor shaped like tokens {tuple(tokens.shape)}, got "
                             f"{mask.dtype} {tuple(mask.shape)}.")
        if bool(mask[:, 0].any()):
            raise ValueError("mask covers frame 0, which has no incoming action and is always given as context.")
        inputs = tokens.masked_fill(mask, self.mask_token_id)
        h_BTPD = self.transformer(self.embed_inputs(inputs, action_embeddings))
        if not bool(mask.any()):  # possible only for tiny inputs with mask_rate_min near 0
            zero = h_BTPD.sum() * 0.0
            return zero, {"loss": zero.detach(), "masked_accuracy": zero.detach(), "mask_rate": zero.detach()}
        g, vocab = self.token_patch, self.vocab_size

        def by_position(x_BThw: Tensor) -> Tensor:  # B T h w -> B T P G, the G = g*g tokens of each position
            return rearrange(x_BThw, "b t (h p) (w q) -> b t (h w) (p q)", p=g, q=g)

        mask_BTPG = by_position(mask)
        rows_BTP = mask_BTPG.any(-1)
        picked_MG = mask_BTPG[rows_BTP]

        def masked(x_BThw: Tensor) -> Tensor:  # B T h w -> K, the masked tokens in the order of the logits
            return by_position(x_BThw)[rows_BTP][picked_MG]

        logits_KV = self.head(h_BTPD[rows_BTP]).view(-1, g * g, vocab)[picked_MG].float()
        targets_K = masked(tokens)
        if self.copy_prior:  # the previous frame's input token at the same place, where it is not masked
            previous_K = masked(F.pad(inputs[:, :-1], (0, 0, 0, 0, 1, 0), value=self.mask_token_id))
            bias_K1 = (self.copy_logit.float() * (previous_K < vocab))[:, None]
            logits_KV = logits_KV.scatter_add(1, previous_K.clamp_max(vocab - 1)[:, None], bias_K1)
        loss = F.cross_entropy(logits_KV, targets_K)
        accuracy = (logits_KV.argmax(-1) == targets_K).float().mean()
        mask_rate = mask[:, 1:].float().mean()
        return loss, {"loss": loss.detach(), "masked_accuracy": accuracy.detach(), "mask_rate": mask_rate.detach()}

    # ------------------------------------------------------------------ cached inference
    def prefill(self, tokens: Tensor, action_embeddings: Tensor) -> MaskGITCache:
        """Run the context once and cache its temporal keys and values.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T E`` (entry ``T-1`` leads into the
        predicted frame).
        """
        b, t = tokens.shape[:2]
        self._check_tokens(tokens, t + 1)
        self._check_actions(action_embeddings, b, t)
        if self.temporal_pos == "rope":  # the last max_frames - 1 frames' window, over any history
            stream = self.open_stream(tokens, action_embeddings[:, : t - 1], self.max_frames - 1)
            assert stream is not None
            return stream.prepare(action_embeddings[:, t - 1])
        _, st_cache = self.transformer(self.embed_inputs(tokens, action_embeddings[:, : t - 1]), return_cache=True)
        frame_bias = self.pos(1, offset=t) + self.action_proj(action_embeddings[:, t - 1 :])[:, :, None, :]
        return MaskGITCache(tokens, action_embeddings, st_cache, frame_bias)

    def open_stream(self, tokens: Tensor, action_embeddings: Tensor, frames: int) -> MaskGITStream | None:
        """A rollout that appends frames to its key/value buffers (rotary models; ``None`` otherwise).

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T-1 E``.

        Args:
            tokens: the first frames.
            action_embeddings: the actions between them.
            frames: past frames a prediction sees (at most ``max_frames - 1``).
        """
        if self.temporal_pos != "rope":
            return None
        b, t = tokens.shape[:2]
        self._check_tokens(tokens, 1)
        self._check_actions(action_embeddings, b, t - 1)
        if not 1 <= frames <= self.max_frames - 1:
            raise ValueError(f"A prediction sees 1..{self.max_frames - 1} past frames (max_frames - 1), got {frames}.")
        _, st = self.transformer.open_stream(self.embed_inputs(tokens, action_embeddings), window=frames + 1)
        return MaskGITStream(self, st, tokens[:, -1:])

    def compile_inference(self, backend: str = "inductor") -> None:
        """Compile generation: with rotary positions the stream's blocks
        (:meth:`~worldmodels.layers.STTransformer.compile_stream`: one graph for every frame and
        slot), otherwise :meth:`forward`, :meth:`prefill` and :meth:`next_logits`."""
        if self.temporal_pos == "rope":
            self.transformer.compile_stream(backend)
        else:
            super().compile_inference(backend)

    def history_frames(self, frames: int) -> int:
        """``depth * frames`` with rotary positions (each cached frame carries its own window), else ``frames``."""
        return frames * len(self.transformer.blocks) if self.temporal_pos == "rope" else frames

    def next_logits(self, draft: Tensor, cache: DynamicsCache) -> Tensor:
        """Logits of the predicted frame given its partly masked draft, computing only that frame.

        Shapes: ``draft: B h w`` (id ``vocab_size`` = masked) -> ``B h w V``.
        """
        if not isinstance(cache, MaskGITCache):  # a plain cache from another code path: no speed-up
            return super().next_logits(draft, cache)
        x_B1ND = self._embed_tokens(draft[:, None]) + cache.frame_bias
        if cache.stream is not None:
            h_B1ND = cache.stream.step(x_B1ND)
        else:
            h_B1ND = self.transformer(x_B1ND, cache=cache.st_cache)
        logits = self._logits(h_B1ND)
        if self.copy_prior:  # the previous frame is the same at every pass: its bias is built once
            if cache.copy_bias is None or cache.copy_bias.dtype != logits.dtype:
                cache.copy_bias = self._copy_bias(cache.tokens[:, -1:], logits.dtype)
            logits = logits + cache.copy_bias
        return logits[:, 0]
