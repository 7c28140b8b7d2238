"""The spatiotemporal (ST) transformer of Genie (Bruce et al., 2024, section 2.1).

Axis legend: ``B`` batch, ``T`` frames, ``N`` tokens per frame (``h * w``), ``D`` width,
``H`` heads, ``E`` head width.

An ST block is pre-norm with residuals: spatial self-attention over the ``N`` tokens of one
frame, then temporal self-attention over the ``T`` positions of one token (causal in time), then
one feed-forward layer (the paper drops the feed-forward layer after the spatial attention).
The spatial layers dominate the cost and grow linearly with ``T``; the ``"full"`` variant
attends over all ``T * N`` tokens at once (quadratic in ``T``) and exists for comparison.

Temporal (or full) attention can run with a key/value cache of past frames, so predicting a
new frame costs only that frame's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from worldmodels.layers.attention import Attention, KVPair
from worldmodels.layers.mlp import Mlp

ATTENTION_MODES: tuple[str, ...] = ("spatiotemporal", "full")
"""``spatiotemporal``: factorised spatial + temporal attention; ``full``: joint space-time attention."""


@dataclass
class STCache:
    """Keys and values of the frames processed so far, one pair per block.

    Attributes:
        kv: per block, the temporal attention's ``(keys, values)`` shaped ``(B N) H T E``
            (``B H (T N) E`` in ``full`` mode).
        num_frames: ``T``, the number of cached frames.
    """

    kv: list[KVPair]
    num_frames: int


def frame_causal_mask(
    query_frames: int, key_frames: int, tokens_per_frame: int, device: torch.device | None = None
) -> Tensor:
    """Block-causal mask for joint space-time attention: a token sees every token of its own and earlier frames.

    The queries are the last ``query_frames`` of the ``key_frames`` frames.

    Shapes: returns ``(Tq N) (Tk N)`` bool, True = may attend.
    """
    offset = key_frames - query_frames
    q_frame = torch.arange(query_frames * tokens_per_frame, device=device) // tokens_per_frame + offset
    k_frame = torch.arange(key_frames * tokens_per_frame, device=device) // tokens_per_frame
    return k_frame[None, :] <= q_frame[:, None]


def init_transformer_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialise linear and embedding weights from ``N(0, std^2)`` (GPT-2 style), biases with zeros.

    Apply with ``model.apply(init_transformer_weights)``; works on the meta device. (A plain
    normal rather than :func:`torch.nn.init.trunc_normal_`, whose rejection sampling costs
    seconds per model on CPU.)
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class STBlock(nn.Module):
    """One spatiotemporal block.

    Shapes: ``forward(x: B T N D) -> B T N D``.

    Args:
        dim: width ``D``.
        num_heads: attention heads.
        head_dim: width per head (defaults to ``dim // num_heads``).
        mlp_ratio: hidden width of the feed-forward layer as a multiple of ``dim``.
        qk_norm: ``"rms"``, ``"layer"`` or ``None``.
        causal: temporal attention sees only the current and earlier frames.
        attention: ``"spatiotemporal"`` (spatial then temporal attention) or ``"full"``
            (one attention over all ``T * N`` tokens, block-causal in time when ``causal``).
        dropout: dropout in attention and feed-forward layers.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int | None = None,
        mlp_ratio: float = 4.0,
        qk_norm: str | None = "rms",
        causal: bool = True,
        attention: str = "spatiotemporal",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention={attention!r} is not one of {ATTENTION_MODES}.")
        self.causal = causal
        self.attention = attention
        if attention == "spatiotemporal":
            self.spatial_norm = nn.LayerNorm(dim)
            self.spatial_attn = Attention(dim, num_heads, head_dim, qk_norm=qk_norm, dropout=dropout)
        self.temporal_norm = nn.LayerNorm(dim)
        self.temporal_attn = Attention(dim, num_heads, head_dim, qk_norm=qk_norm, dropout=dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout=dropout)

    def forward(
        self, x_BTND: Tensor, past_kv: KVPair | None = None, return_kv: bool = False
    ) -> Tensor | tuple[Tensor, KVPair]:
        """Apply the block.

        Shapes: ``x: B T N D -> B T N D``; keys/values as in :class:`STCache`.

        Args:
            x_BTND: tokens of ``T`` frames; with ``past_kv`` they follow the cached frames.
            past_kv: this block's cached keys/values of earlier frames.
            return_kv: also return the keys/values of ``x``'s frames (for caching).
        """
        b, t, n, _ = x_BTND.shape
        if self.attention == "spatiotemporal":
            x_SND = rearrange(x_BTND, "b t n d -> (b t) n d")
            x_SND = x_SND + self.spatial_attn(self.spatial_norm(x_SND))
            x_SLD = rearrange(x_SND, "(b t) n d -> (b n) t d", b=b)
            mask, token_causal = None, self.causal
        else:
            x_SLD = rearrange(x_BTND, "b t n d -> b (t n) d")
            past_frames = 0 if past_kv is None else past_kv[0].shape[2] // n
            mask = frame_causal_mask(t, past_frames + t, n, x_BTND.device) if self.causal and t > 1 else None
            token_causal = False  # the frame-level mask (or none, for a single new frame) does it
        attn, kv = self.temporal_attn(
            self.temporal_norm(x_SLD), causal=token_causal, attn_mask=mask, past_kv=past_kv, return_kv=True
        )
        x_SLD = x_SLD + attn
        x_SLD = x_SLD + self.mlp(self.mlp_norm(x_SLD))
        if self.attention == "spatiotemporal":
            out = rearrange(x_SLD, "(b n) t d -> b t n d", b=b)
        else:
            out = rearrange(x_SLD, "b (t n) d -> b t n d", t=t)
        return (out, kv) if return_kv else out


class STTransformer(nn.Module):
    """A stack of :class:`STBlock` followed by a final LayerNorm.

    Shapes: ``forward(x: B T N D) -> B T N D``.

    Args:
        dim: width ``D``.
        depth: number of ST blocks (each holds two attention layers in ``spatiotemporal`` mode).
        num_heads: attention heads.
        head_dim: width per head (defaults to ``dim // num_heads``).
        mlp_ratio: feed-forward hidden width as a multiple of ``dim``.
        qk_norm: ``"rms"``, ``"layer"`` or ``None``.
        causal: causal in time.
        attention: ``"spatiotemporal"`` or ``"full"``.
        dropout: dropout probability.
        grad_checkpointing: recompute each block in the backward pass to save activation memory.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        head_dim: int | None = None,
        mlp_ratio: float = 4.0,
        qk_norm: str | None = "rms",
        causal: bool = True,
        attention: str = "spatiotemporal",
        dropout: float = 0.0,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.attention = attention
        self.grad_checkpointing = grad_checkpointing
        self.blocks = nn.ModuleList(
            STBlock(dim, num_heads, head_dim, mlp_ratio, qk_norm, causal, attention, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, x_BTND: Tensor, cache: STCache | None = None, return_cache: bool = False
    ) -> Tensor | tuple[Tensor, STCache]:
        """Run the stack, optionally after cached frames.

        Shapes: ``x: B T N D -> B T N D``.

        Args:
            x_BTND: the tokens of ``T`` frames; with ``cache`` they are the frames following the
                cached ones (positional information must already be added by the caller).
            cache: keys/values of earlier frames (from a previous call with ``return_cache``).
                It is read, not modified.
            return_cache: also return an :class:`STCache` holding the cached frames followed by
                ``x``'s frames.

        Returns:
            The output, and with ``return_cache`` the extended cache.
        """
        if cache is not None and not self.causal:
            raise ValueError("A key/value cache needs a causal STTransformer (causal=True): built with causal=False.")
        if cache is not None and len(cache.kv) != len(self.blocks):
            raise ValueError(f"The cache holds {len(cache.kv)} blocks but this transformer has {len(self.blocks)}.")
        new_kv: list[KVPair] = []
        x = x_BTND
        for i, block in enumerate(self.blocks):
            past = cache.kv[i] if cache is not None else None
            if self.grad_checkpointing and self.training and torch.is_grad_enabled() and not return_cache:
                x = checkpoint(block, x, past, use_reentrant=False)
                continue
            if return_cache:
                x, kv = block(x, past, return_kv=True)
                new_kv.append(kv if past is None else (torch.cat([past[0], kv[0]], 2), torch.cat([past[1], kv[1]], 2)))
            else:
                x = block(x, past)
        x = self.norm(x)
        if not return_cache:
            return x
        past_frames = cache.num_frames if cache is not None else 0
        return x, STCache(kv=new_kv, num_frames=past_frames + x_BTND.shape[1])
