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

With rotary temporal positions (``temporal_rope=True``) temporal attention depends only on how
far apart two frames are, and each frame attends to itself and the ``window - 1`` frames before
it (sliding-window attention; with clips no longer than ``window`` that is plain causal
attention). An :class:`STStream` then keeps each block's keys and values of the last ``window``
frames in a ring buffer: every new frame computes only its own keys and values, once, and the
cost of a frame does not grow with the frames played.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from worldmodels.layers.attention import Attention, KVPair
from worldmodels.layers.mlp import Mlp
from worldmodels.layers.rope import RotaryEmbedding

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


@dataclass
class STStream:
    """Rolling keys and values of a frame stream through an :class:`STTransformer` with rotary time.

    Frame ``f`` (counted from the stream's start) lives in slot ``f % window`` of every block's
    buffers, its keys rotated at position ``f``; since rotary attention depends only on the
    distance between frames, the buffers never need re-encoding as the window slides.

    Attributes:
        keys: per block, ``(B N) H W E`` with ``W = window`` slots.
        values: per block, like ``keys``.
        slot_frames: ``W`` long, the frame each slot holds (``-1``: none yet).
        frames: frames committed so far; the next frame is number ``frames``.
        window: ``W``, the frames one query sees (itself included).
        batch: ``B``.
    """

    keys: list[Tensor]
    values: list[Tensor]
    slot_frames: Tensor
    frames: int
    window: int
    batch: int

    def select(self, rows: Tensor | list[int]) -> STStream:
        """A stream of the batch elements ``rows`` only (copies)."""
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=self.slot_frames.device)

        def pick(buffer: Tensor) -> Tensor:
            per_b = buffer.unflatten(0, (self.batch, -1))
            return per_b.index_select(0, rows_t).flatten(0, 1)

        return STStream([pick(k) for k in self.keys], [pick(v) for v in self.values], self.slot_frames.clone(),
                        self.frames, self.window, int(rows_t.numel()))

    @staticmethod
    def cat(streams: list[STStream]) -> STStream:
        """Streams at the same frame stacked along the batch (they must share ``frames`` and ``window``)."""
        first = streams[0]
        if any(s.frames != first.frames or s.window != first.window for s in streams):
            raise ValueError("Only streams at the same frame with the same window can be stacked; got "
                             f"{[(s.frames, s.window) for s in streams]} (frames, window).")
        keys = [torch.cat([s.keys[i] for s in streams]) for i in range(len(first.keys))]
        values = [torch.cat([s.values[i] for s in streams]) for i in range(len(first.values))]
        return STStream(keys, values, first.slot_frames.clone(), first.frames, first.window,
                        sum(s.batch for s in streams))


def window_causal_mask(frames: int, window: int, device: torch.device | None = None) -> Tensor:
    """Sliding-window causal mask over frames: frame ``q`` sees itself and the ``window - 1`` frames before it.

    Shapes: returns ``T T`` bool, True = may attend.
    """
    q = torch.arange(frames, device=device)[:, None]
    k = torch.arange(frames, device=device)[None, :]
    return (k <= q) & (k > q - window)


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
        self,
        x_BTND: Tensor,
        past_kv: KVPair | None = None,
        return_kv: bool = False,
        rope: Tensor | None = None,
        temporal_mask: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, KVPair]:
        """Apply the block.

        Shapes: ``x: B T N D -> B T N D``; keys/values as in :class:`STCache`.

        Args:
            x_BTND: tokens of ``T`` frames; with ``past_kv`` they follow the cached frames.
            past_kv: this block's cached keys/values of earlier frames.
            return_kv: also return the keys/values of ``x``'s frames (for caching).
            rope: rotary phases of the ``T`` frames' temporal positions (``T F``).
            temporal_mask: ``T T_k`` bool (True = may attend) for temporal attention, instead of
                the causal rule (a sliding window).
        """
        b, t, n, _ = x_BTND.shape
        if self.attention == "spatiotemporal":
            x_SND = rearrange(x_BTND, "b t n d -> (b t) n d")
            x_SND = x_SND + self.spatial_attn(self.spatial_norm(x_SND))
            x_SLD = rearrange(x_SND, "(b t) n d -> (b n) t d", b=b)
            mask, token_causal = temporal_mask, self.causal and temporal_mask is None
        else:
            x_SLD = rearrange(x_BTND, "b t n d -> b (t n) d")
            past_frames = 0 if past_kv is None else past_kv[0].shape[2] // n
            mask = frame_causal_mask(t, past_frames + t, n, x_BTND.device) if self.causal and t > 1 else None
            token_causal = False  # the frame-level mask (or none, for a single new frame) does it
        attn, kv = self.temporal_attn(
            self.temporal_norm(x_SLD), causal=token_causal, attn_mask=mask, past_kv=past_kv, return_kv=True,
            rope=rope,
        )
        x_SLD = x_SLD + attn
        x_SLD = x_SLD + self.mlp(self.mlp_norm(x_SLD))
        if self.attention == "spatiotemporal":
            out = rearrange(x_SLD, "(b n) t d -> b t n d", b=b)
        else:
            out = rearrange(x_SLD, "b (t n) d -> b t n d", t=t)
        return (out, kv) if return_kv else out

    def stream_step(
        self, x_BKND: Tensor, keys: Tensor, values: Tensor, slots: list[int] | Tensor, rope: Tensor,
        key_masks: list[Tensor | None] | Tensor,
    ) -> Tensor:
        """``K`` consecutive new frames after a rolling key/value buffer (see :class:`STStream`).

        Frame ``k`` writes its keys and values into ``slots[k]`` and then attends over the buffer
        (so it sees the frames before it, not the ones after).

        Shapes: ``x: B K N D -> B K N D``; ``keys, values: (B N) H W E``; ``rope: K F``;
        ``key_masks``: per frame ``1 W`` bool or ``None`` (or the tensor forms of
        :meth:`Attention.attend_in_place <worldmodels.layers.Attention.attend_in_place>`).
        """
        b, k, n, d = x_BKND.shape
        x_SND = x_BKND.reshape(b * k, n, d)
        x_SND = x_SND + self.spatial_attn(self.spatial_norm(x_SND))
        x_SKD = rearrange(x_SND, "(b k) n d -> (b n) k d", b=b) if k > 1 else x_SND.reshape(b * n, 1, d)
        x_SKD = x_SKD + self.temporal_attn.attend_in_place(
            self.temporal_norm(x_SKD), keys, values, slots, rope=rope, key_masks=key_masks
        )
        x_SKD = x_SKD + self.mlp(self.mlp_norm(x_SKD))
        return rearrange(x_SKD, "(b n) k d -> b k n d", b=b) if k > 1 else x_SKD.view(b, 1, n, d)


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
        temporal_rope: rotary temporal positions in the temporal attention (the caller then adds
            no temporal position to the input); needed for :meth:`open_stream`.
        window: with ``temporal_rope``, the frames a query sees (itself included) once a
            sequence is longer than that: sliding-window attention. ``None``: all earlier frames.
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
        temporal_rope: bool = False,
        window: int | None = None,
    ) -> None:
        super().__init__()
        if temporal_rope and (attention != "spatiotemporal" or not causal):
            raise ValueError("Rotary temporal positions need causal spatiotemporal attention "
                             f"(attention='spatiotemporal', causal=True); got attention={attention!r}, causal={causal}.")
        if window is not None and (window < 1 or not temporal_rope):
            raise ValueError(f"window={window} needs temporal_rope=True and window >= 1.")
        self.causal = causal
        self.attention = attention
        self.grad_checkpointing = grad_checkpointing
        self.window = window
        self.blocks = nn.ModuleList(
            STBlock(dim, num_heads, head_dim, mlp_ratio, qk_norm, causal, attention, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.num_heads, self.head_dim = num_heads, head_dim if head_dim is not None else dim // num_heads
        self.rope = RotaryEmbedding(self.head_dim) if temporal_rope else None
        self._compiled_stream: Callable[..., Tensor] | None = None  # set by compile_stream

    def _temporal(self, frames: int, offset: int, device: torch.device) -> tuple[Tensor | None, Tensor | None]:
        """Rotary phases of frames ``offset ..`` and the sliding-window mask (``None`` within one window)."""
        if self.rope is None:
            return None, None
        # inductor generates no code for complex numbers: a compiled forward takes the real form
        phases = self.rope.phases(torch.arange(offset, offset + frames, device=device), real=torch.compiler.is_compiling())
        mask = None
        if self.window is not None and offset + frames > self.window:
            if offset:
                raise ValueError(
                    f"A key/value cache of {offset} frames plus {frames} new ones outgrows the attention window "
                    f"({self.window} frames); use open_stream/stream_step, which slide it."
                )
            mask = window_causal_mask(frames, self.window, device)
        return phases, mask

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
        rope, mask = self._temporal(x_BTND.shape[1], cache.num_frames if cache is not None else 0, x_BTND.device)
        for i, block in enumerate(self.blocks):
            past = cache.kv[i] if cache is not None else None
            if self.grad_checkpointing and self.training and torch.is_grad_enabled() and not return_cache:
                x = checkpoint(block, x, past, False, rope, mask, use_reentrant=False)
                continue
            if return_cache:
                x, kv = block(x, past, return_kv=True, rope=rope, temporal_mask=mask)
                new_kv.append(kv if past is None else (torch.cat([past[0], kv[0]], 2), torch.cat([past[1], kv[1]], 2)))
            else:
                x = block(x, past, rope=rope, temporal_mask=mask)
        x = self.norm(x)
        if not return_cache:
            return x
        past_frames = cache.num_frames if cache is not None else 0
        return x, STCache(kv=new_kv, num_frames=past_frames + x_BTND.shape[1])

    # ------------------------------------------------------------------ streams (rotary time only)
    def open_stream(self, x_BTND: Tensor, window: int | None = None) -> tuple[Tensor, STStream]:
        """Run the first ``T`` frames of a stream and keep the keys and values of its last ``window``.

        Shapes: ``x: B T N D -> B T N D`` (``T`` may be 0: an empty stream).

        Args:
            x_BTND: the frames' inputs (no temporal position added: the rotary one is applied).
            window: the frames a query sees, itself included (default: the transformer's ``window``).

        Returns:
            The output of the ``T`` frames and the stream after them.
        """
        if self.rope is None:
            raise ValueError("Streams need rotary temporal positions: build the STTransformer with temporal_rope=True.")
        window = int(window or self.window or 0)
        if window < 1:
            raise ValueError("open_stream needs a window (frames a query sees): pass window= or build with window=.")
        b, t, n, _ = x_BTND.shape
        device = x_BTND.device
        shape = (b * n, self.num_heads, window, self.head_dim)
        dtype = x_BTND.dtype  # the dtype the keys come out in (bf16 under autocast)
        if torch.is_autocast_enabled(device.type):
            dtype = torch.get_autocast_dtype(device.type)
        keys = [x_BTND.new_zeros(shape, dtype=dtype) for _ in self.blocks]
        values = [x_BTND.new_zeros(shape, dtype=dtype) for _ in self.blocks]
        slot_frames = torch.full((window,), -1, dtype=torch.long, device=device)
        stream = STStream(keys, values, slot_frames, t, window, b)
        if t == 0:
            return x_BTND, stream
        phases = self.rope.phases(torch.arange(t, device=device))
        mask = window_causal_mask(t, window, device) if t > window else None
        kept = torch.arange(max(0, t - window), t, device=device)
        x = x_BTND
        for i, block in enumerate(self.blocks):
            x, (k, v) = block(x, return_kv=True, rope=phases, temporal_mask=mask)
            keys[i][:, :, kept % window] = k[:, :, kept].to(dtype)
            values[i][:, :, kept % window] = v[:, :, kept].to(dtype)
        slot_frames[kept % window] = kept
        return self.norm(x), stream

    def stream_step(self, x_BKND: Tensor, stream: STStream, commit: bool = False) -> Tensor:
        """The next ``K`` frames of a stream: attend over its window, computing only these frames.

        The first ``K - 1`` frames are committed (the stream advances past them); the last one is
        committed only with ``commit=True``. Calls for the same uncommitted frame overwrite its
        slot (a sampler's refinement passes); a call with ``K = 2`` commits the frame a sampler
        has just finished and runs the first pass of the next one together. After
        :meth:`compile_stream` the blocks run compiled.

        Shapes: ``x: B K N D -> B K N D``.
        """
        if self.rope is None:
            raise ValueError("Streams need rotary temporal positions: build the STTransformer with temporal_rope=True.")
        if x_BKND.shape[0] != stream.batch or x_BKND.shape[1] < 1:
            raise ValueError(f"stream_step takes frames of the stream's {stream.batch} batch elements (B K N D), "
                             f"got {tuple(x_BKND.shape)}.")
        k, window = x_BKND.shape[1], stream.window
        frames = list(range(stream.frames, stream.frames + k))
        slots = [f % window for f in frames]
        key_masks: list[Tensor | None] = []
        for f, slot in zip(frames, slots):
            stream.slot_frames[slot] = f
            # until the buffer is full, empty slots stay unseen (1 W, broadcast over sequences and heads)
            key_masks.append((stream.slot_frames >= 0)[None, :].clone() if f < window - 1 else None)
        device = x_BKND.device
        phases = self.rope.phases(torch.tensor(frames, device=device))
        if self._compiled_stream is not None:  # tensors only: one graph for every slot and frame
            full = torch.ones(1, window, dtype=torch.bool, device=device)
            masks_K1W = torch.stack([full if m is None else m for m in key_masks])
            x = self._compiled_stream(x_BKND.contiguous(), stream.keys, stream.values, torch.tensor(slots, device=device),
                                      torch.view_as_real(phases), masks_K1W)
        else:
            x = self._stream_blocks(x_BKND, stream.keys, stream.values, slots, phases, key_masks)
        stream.frames += k if commit else k - 1
        return x

    def _stream_blocks(
        self, x_BKND: Tensor, keys: list[Tensor], values: list[Tensor], slots: list[int] | Tensor, phases: Tensor,
        key_masks: list[Tensor | None] | Tensor,
    ) -> Tensor:
        """Every block's :meth:`STBlock.stream_step`, then the final norm (what :meth:`compile_stream` compiles)."""
        x = x_BKND
        blocks: list[STBlock] = list(self.blocks)  # type: ignore[arg-type]  # a ModuleList of STBlocks
        for i, block in enumerate(blocks):
            x = block.stream_step(x, keys[i], values[i], slots, phases, key_masks)
        return self.norm(x)

    def compile_stream(self, backend: str = "inductor", **options: Any) -> None:
        """Run :meth:`stream_step`'s blocks through :func:`torch.compile` from now on.

        The compiled form takes the slots, the masks and the rotary phases as tensors (real
        cosine/sine pairs: inductor has no complex kernels) and writes the keys and values with
        ``index_copy_``, so one graph serves every frame and slot; a sampler pass (``K = 1``) and
        a commit-and-pass (``K = 2``) compile once each, and so does every other batch size. The
        first calls are slow (tens of seconds of compilation on a CPU). Eager mode stays the
        default and never depends on it.

        Args:
            backend: a :func:`torch.compile` backend (``"eager"`` traces without generating code).
            **options: further :func:`torch.compile` arguments (``mode=``, ``fullgraph=``, ...).
        """
        if self.rope is None:
            raise ValueError("compile_stream compiles streams, which need temporal_rope=True.")
        options.setdefault("dynamic", False)
        self._compiled_stream = torch.compile(self._stream_blocks, backend=backend, **options)
