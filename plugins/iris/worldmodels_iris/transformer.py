"""IRIS's world model: a causal transformer over frame tokens interleaved with actions.

Axis legend: ``B`` batch, ``T`` frames, ``h w`` token grid, ``N = h * w`` tokens per frame,
``L`` sequence positions, ``D`` width, ``E`` action embedding width, ``V`` vocabulary.

The sequence of a clip is ``z_0^1 .. z_0^N, a_0, z_1^1 .. z_1^N, a_1, ...``: the ``N`` tokens of
each frame, then one position for the action taken at that frame (its embedding, a projection
of the action model's vector; the recorded actions' one-hot vectors for IRIS). Attention is
causal over the whole sequence (Micheli et al., 2023, section 2):

* the output at a frame token predicts the next token of the same frame, and the output at the
  action position ``a_t`` predicts the first token of frame ``t + 1``: the frame is generated
  token by token (:class:`~worldmodels_iris.sampler.AutoregressiveSampler`);
* the output at ``a_t`` also predicts the reward of the step (three classes: the sign of the
  reward, as IRIS does for Atari's clipped rewards) and whether it ended the episode.

Positions are a learned table per slot of a frame block (``N + 1`` slots) plus a learned table
per frame of the context, so a block means the same wherever it sits in a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodels import Dynamics, register
from worldmodels.interfaces import LossOutput, Metrics
from worldmodels.layers import Attention, FlatLinear, KVPair, Mlp, init_transformer_weights

REWARD_CLASSES: tuple[float, ...] = (-1.0, 0.0, 1.0)
"""The reward head's classes: the sign of the reward."""


class _Block(nn.Module):
    """Pre-norm causal self-attention and feed-forward layer, with an optional key/value cache.

    Shapes: ``forward(x: B L D) -> B L D``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qk_norm="rms", dropout=dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout=dropout)

    def forward(self, x_BLD: Tensor, past_kv: KVPair | None = None) -> tuple[Tensor, KVPair]:
        """Apply the block after ``past_kv``'s positions; return the output and the new positions' keys/values."""
        attn, kv = self.attn(self.attn_norm(x_BLD), causal=True, past_kv=past_kv, return_kv=True)
        x_BLD = x_BLD + attn
        return x_BLD + self.mlp(self.mlp_norm(x_BLD)), kv


@dataclass
class IrisCache:
    """The key/value cache of one frame being generated token by token.

    Attributes:
        kv: per block, the keys and values of every position so far ``B H L E``.
        length: positions cached.
        frame: index of the frame being generated within the window (its time position).
        slot: the slot of the next token to feed (``0`` = none fed yet).
        logits: ``B V``, the prediction of the next token of the frame.
        reward: ``B``, the expected reward of the step into the frame (from the action position).
        terminated: ``B``, the probability that the step ended the episode.
    """

    kv: list[KVPair]
    length: int
    frame: int
    slot: int
    logits: Tensor
    reward: Tensor
    terminated: Tensor


@register("dynamics", "iris-transformer")
class IrisTransformer(Dynamics):
    """IRIS's autoregressive world model: frame tokens and actions in one causal sequence.

    Shapes: ``forward(tokens: B T h w, action_embeddings: B T-1 E) -> logits: B T h w V``; the
    logits of frame ``t`` (``t >= 1``) predict its tokens from frames ``< t``, the actions
    ``<= t - 1`` and the tokens of frame ``t`` before each (frame 0's are zero: unused).

    Args:
        vocab_size: token vocabulary ``V`` (set from the tokenizer).
        token_grid: ``[h, w]`` (set from the tokenizer).
        max_frames: the most frames ``T`` of a sequence.
        action_dim: width ``E`` of the action embeddings (set from the action model).
        dim: width ``D``.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: feed-forward width as a multiple of ``dim``.
        dropout: dropout probability.
        reward_weight: weight of the reward loss.
        termination_weight: weight of the episode-end loss.
    """

    vocab_size: int  # token ids only: this dynamics reads discrete tokens
    _last_step: tuple[Tensor, Tensor, tuple[Tensor, Tensor]] | None = None
    predicts_outcomes: ClassVar[bool] = True
    conformance_config: ClassVar[dict[str, Any]] = {"dim": 32, "depth": 2, "num_heads": 2}
    """Small settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self,
        vocab_size: int = 512,
        token_grid: list[int] | tuple[int, int] = (4, 4),
        max_frames: int = 16,
        action_dim: int = 15,
        dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        reward_weight: float = 1.0,
        termination_weight: float = 1.0,
    ) -> None:
        super().__init__()
        token_grid = [int(token_grid[0]), int(token_grid[1])]
        self.vocab_size, self.max_frames, self.action_dim = vocab_size, max_frames, action_dim
        self.grid = (token_grid[0], token_grid[1])
        self.tokens_per_frame = n = token_grid[0] * token_grid[1]
        self.reward_weight, self.termination_weight = float(reward_weight), float(termination_weight)
        self.token_embed = nn.Embedding(vocab_size + 1, dim)  # + one id a MaskGIT sampler's mask would use
        self.action_proj = nn.Linear(action_dim, dim)
        self.slot_pos = nn.Parameter(torch.randn(n + 1, dim) * 0.02)  # N frame slots + the action slot
        self.time_pos = nn.Parameter(torch.randn(max_frames, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = FlatLinear(dim, vocab_size)
        self.reward_head = FlatLinear(dim, len(REWARD_CLASSES))
        self.termination_head = FlatLinear(dim, 2)
        self.apply(init_transformer_weights)

    # ------------------------------------------------------------------ the sequence
    def _check(self, tokens: Tensor, frames: int) -> None:
        if tokens.ndim != 4 or tuple(tokens.shape[2:]) != self.grid:
            raise ValueError(
                f"iris-transformer expects tokens shaped B T h w with a {self.grid[0]}x{self.grid[1]} grid, got "
                f"{tuple(tokens.shape)}; was it built for another tokenizer?"
            )
        if frames > self.max_frames:
            raise ValueError(
                f"iris-transformer handles at most {self.max_frames} frames (max_frames) but was given {frames}; "
                "shorten the context."
            )

    def _sequence(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        """Embeddings of ``z_0, a_0, z_1, a_1, ...`` with one action after each of the first ``A`` frames.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B A E`` (``A`` is ``T - 1`` or ``T``)
        -> ``B L D`` with ``L = T N + A``.
        """
        b, t = tokens.shape[:2]
        a = action_embeddings.shape[1]
        if action_embeddings.ndim != 3 or action_embeddings.shape[0] != b or a not in (t - 1, t) or (
            action_embeddings.shape[-1] != self.action_dim
        ):
            raise ValueError(
                f"Expected action_embeddings B A E with B={b}, A = T-1 or T = {t - 1} or {t}, E={self.action_dim}; "
                f"got {tuple(action_embeddings.shape)}."
            )
        frames_BTND = self.token_embed(tokens.flatten(2)) + self.slot_pos[: self.tokens_per_frame]
        actions_BTD = self.action_proj(action_embeddings.to(frames_BTND.dtype)) + self.slot_pos[-1]
        if a < t:  # the last frame has no action yet
            actions_BTD = F.pad(actions_BTD, (0, 0, 0, 1))
        blocks_BTSD = torch.cat([frames_BTND, actions_BTD[:, :, None]], dim=2) + self.time_pos[:t, None]
        sequence = rearrange(blocks_BTSD, "b t s d -> b (t s) d")
        return sequence[:, : t * self.tokens_per_frame + a]

    def _run(self, x_BLD: Tensor, cache: list[KVPair] | None = None) -> tuple[Tensor, list[KVPair]]:
        new: list[KVPair] = []
        for i, block in enumerate(self.blocks):
            past = cache[i] if cache is not None else None
            x_BLD, kv = block(x_BLD, past)
            new.append(kv if past is None else (torch.cat([past[0], kv[0]], 2), torch.cat([past[1], kv[1]], 2)))
        return self.norm(x_BLD), new

    def _outcome(self, h_BD: Tensor) -> tuple[Tensor, Tensor]:
        """Expected reward and episode-end probability from action-position outputs ``B D``."""
        classes = torch.tensor(REWARD_CLASSES, device=h_BD.device)
        reward = self.reward_head(h_BD).float().softmax(-1) @ classes
        terminated = self.termination_head(h_BD).float().softmax(-1)[..., 1]
        return reward, terminated

    # ------------------------------------------------------------------ forward / loss
    def _outputs(self, tokens: Tensor, action_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Token logits ``B T h w V`` and the action positions' outputs ``B T-1 D``."""
        b, t = tokens.shape[:2]
        self._check(tokens, t)
        n = self.tokens_per_frame
        h_BLD, _ = self._run(self._sequence(tokens, action_embeddings[:, : t - 1]))
        h_BLD = F.pad(h_BLD, (0, 0, 0, 1))  # the last frame's action slot
        blocks_BTSD = rearrange(h_BLD, "b (t s) d -> b t s d", s=n + 1)
        # the token k of frame t is predicted at slot k - 1 of frame t, or at the action slot of frame t - 1
        predictors_BTND = torch.cat([blocks_BTSD[:, :-1, -1:], blocks_BTSD[:, 1:, : n - 1]], dim=2)
        logits = self.head(predictors_BTND).unflatten(2, self.grid)
        logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)
        return logits, blocks_BTSD[:, :-1, -1]

    def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        """Logits of every frame's tokens, each from what comes before it in the sequence.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T-1 E -> B T h w V``.
        """
        return self._outputs(tokens, action_embeddings)[0]

    def loss(
        self, tokens: Tensor, action_embeddings: Tensor, rewards: Tensor | None = None, terminated: Tensor | None = None
    ) -> LossOutput:
        """Cross-entropy of the tokens of frames ``2..T``, plus the reward and episode-end losses where known.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T-1 E``, ``rewards``: ``B T-1`` (``NaN``
        unknown), ``terminated``: ``B T-1`` (``-1`` unknown).

        Returns:
            ``(loss, metrics)`` with ``loss``, ``token_loss``, ``token_accuracy`` and, where the data
            has them, ``reward_loss``, ``reward_accuracy``, ``termination_loss``.
        """
        if tokens.shape[1] < 2:
            raise ValueError(f"The dynamics loss needs at least 2 frames, got tokens of shape {tuple(tokens.shape)}.")
        logits, actions_BTD = self._outputs(tokens, action_embeddings)
        flat = logits[:, 1:].flatten(0, 3).float()
        targets = tokens[:, 1:].flatten()
        token_loss = F.cross_entropy(flat, targets)
        loss = token_loss
        metrics: Metrics = {
            "token_loss": token_loss.detach(),
            "token_accuracy": (flat.argmax(-1) == targets).float().mean().detach(),
        }
        if rewards is not None:
            known = torch.isfinite(rewards)
            if bool(known.any()):
                target = torch.sign(rewards[known]).long() + 1  # -1, 0, 1 -> classes 0, 1, 2
                reward_logits = self.reward_head(actions_BTD[known]).float()
                reward_loss = F.cross_entropy(reward_logits, target)
                loss = loss + self.reward_weight * reward_loss
                metrics["reward_loss"] = reward_loss.detach()
                metrics["reward_accuracy"] = (reward_logits.argmax(-1) == target).float().mean().detach()
        if terminated is not None:
            known = terminated >= 0
            if bool(known.any()):
                done_logits = self.termination_head(actions_BTD[known]).float()
                done_loss = F.cross_entropy(done_logits, terminated[known].long())
                loss = loss + self.termination_weight * done_loss
                metrics["termination_loss"] = done_loss.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics

    # ------------------------------------------------------------------ inference
    def predict_outcome(self, tokens: Tensor, action_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Reward and episode-end probability of the step out of the last frame under its action.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T E`` -> ``(B, B)``.
        """
        self._check(tokens, tokens.shape[1])
        remembered = self._remembered_outcome(tokens, action_embeddings)
        if remembered is not None:  # start_frame just ran this very step (play asks for both)
            return remembered
        h_BLD, _ = self._run(self._sequence(tokens, action_embeddings))
        return self._outcome(h_BLD[:, -1])

    def _remember_outcome(self, tokens: Tensor, action_embeddings: Tensor, outcome: tuple[Tensor, Tensor]) -> None:
        """Keep the outcome :meth:`start_frame` computed, for :meth:`predict_outcome` of the same step (inference only)."""
        if self.training or torch.is_grad_enabled():
            self._last_step = None
            return
        self._last_step = (tokens, action_embeddings, outcome)

    def _remembered_outcome(self, tokens: Tensor, action_embeddings: Tensor) -> tuple[Tensor, Tensor] | None:
        last = getattr(self, "_last_step", None)
        if last is None or self.training or torch.is_grad_enabled():
            return None
        seen_tokens, seen_actions, outcome = last
        same = (seen_tokens.shape == tokens.shape and seen_actions.shape == action_embeddings.shape
                and seen_tokens.device == tokens.device and torch.equal(seen_tokens, tokens)
                and torch.equal(seen_actions, action_embeddings))
        return outcome if same else None

    def start_frame(self, tokens: Tensor, action_embeddings: Tensor) -> IrisCache:
        """Run the context and the action leading out of it: the cache for generating the next frame.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T E`` (entry ``T-1`` leads into the new frame).
        """
        t = tokens.shape[1]
        self._check(tokens, t + 1)
        h_BLD, kv = self._run(self._sequence(tokens, action_embeddings))
        reward, terminated = self._outcome(h_BLD[:, -1])
        self._remember_outcome(tokens, action_embeddings, (reward, terminated))
        return IrisCache(kv, h_BLD.shape[1], t, 0, self.head(h_BLD[:, -1]), reward, terminated)

    def continue_frame(self, cache: IrisCache, token: Tensor) -> IrisCache:
        """Feed the token just chosen for slot ``cache.slot``; the cache now predicts the next one.

        Shapes: ``token: B`` int64.
        """
        x_B1D = self.token_embed(token[:, None]) + self.slot_pos[cache.slot] + self.time_pos[cache.frame]
        h_B1D, kv = self._run(x_B1D, cache.kv)
        return IrisCache(kv, cache.length + 1, cache.frame, cache.slot + 1, self.head(h_B1D[:, 0]), cache.reward,
                         cache.terminated)

    def next_token_logits(self, tokens: Tensor, action_embeddings: Tensor, prefix: Tensor) -> Tensor:
        """The next token's logits without a cache: the whole sequence, the action and ``prefix`` in one pass.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T E``, ``prefix: B K`` (the new frame's
        first ``K`` tokens) -> ``B V``.
        """
        t, k = tokens.shape[1], prefix.shape[1]
        self._check(tokens, t + 1)
        sequence = self._sequence(tokens, action_embeddings)
        if k:
            new = self.token_embed(prefix) + self.slot_pos[:k] + self.time_pos[t]
            sequence = torch.cat([sequence, new], dim=1)
        h_BLD, _ = self._run(sequence)
        return self.head(h_BLD[:, -1])
