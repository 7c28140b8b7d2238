"""Multi-head self-attention with QK-normalisation and an optional key/value cache.

Axis legend: ``S`` independent sequences (e.g. ``b*t`` frames for spatial attention, ``b*n``
token positions for temporal attention), ``L`` sequence length, ``D`` model width,
``H`` heads, ``E`` head width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodels.layers.rope import apply_rotary

KVPair = tuple[Tensor, Tensor]
"""Keys and values ``(S H L E, S H L E)`` of the positions seen so far."""


class _InputDtypeRMSNorm(nn.RMSNorm):
    """RMSNorm whose weight follows the input dtype (keeps the fused kernel under bf16 autocast)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)


class _InputDtypeLayerNorm(nn.LayerNorm):
    """LayerNorm whose parameters follow the input dtype (keeps the fused kernel under bf16 autocast)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


def make_norm(kind: str | None, dim: int, eps: float = 1e-6) -> nn.Module:
    """A normalisation layer by name, applied in the input's dtype (used for QK-norm).

    Args:
        kind: ``"rms"`` (RMSNorm), ``"layer"`` (LayerNorm) or ``None`` (identity).
        dim: the normalised (last) axis width.
        eps: numerical epsilon.

    Raises:
        ValueError: for another ``kind``.
    """
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "rms":
        return _InputDtypeRMSNorm(dim, eps=eps)
    if kind == "layer":
        return _InputDtypeLayerNorm(dim, eps=eps)
    raise ValueError(f"Unknown norm {kind!r}: expected 'rms', 'layer' or None.")


def shifted_causal_mask(query_len: int, key_len: int, device: torch.device | None = None) -> Tensor:
    """Boolean mask ``L_q L_k`` (True = may attend) for queries that are the last ``query_len`` keys.

    Query ``i`` sits at absolute position ``key_len - query_len + i`` and sees every key up to and
    including that position.
    """
    offset = key_len - query_len
    q_pos = torch.arange(query_len, device=device)[:, None] + offset
    k_pos = torch.arange(key_len, device=device)[None, :]
    return k_pos <= q_pos


class Attention(nn.Module):
    """Multi-head self-attention through :func:`torch.nn.functional.scaled_dot_product_attention`.

    Queries and keys are normalised per head (QK-norm) before the dot product, which keeps the
    attention logits bounded in large bf16 models. The projections see 2-D ``(tokens, D)`` inputs:
    under CPU bf16 autocast, 3-D inputs to :class:`torch.nn.Linear` take a much slower batched path.

    Shapes: ``forward(x: S L D) -> S L D``.

    Args:
        dim: model width ``D``.
        num_heads: number of heads ``H``.
        head_dim: width per head ``E``; defaults to ``dim // num_heads`` (which must then divide
            evenly). Pass it explicitly when ``dim`` is not a multiple of ``num_heads`` (the paper's
            dynamics has ``D = 5120`` with 36 heads).
        qk_norm: ``"rms"``, ``"layer"`` or ``None``.
        qkv_bias: bias on the query/key/value projection.
        dropout: attention dropout probability (training only).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int | None = None,
        qk_norm: str | None = "rms",
        qkv_bias: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(
                    f"dim={dim} is not divisible by num_heads={num_heads}; pass head_dim explicitly "
                    f"(e.g. head_dim={-(-dim // num_heads)}) or choose a divisible number of heads."
                )
            head_dim = dim // num_heads
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.q_norm = make_norm(qk_norm, head_dim)
        self.k_norm = make_norm(qk_norm, head_dim)
        self.proj = nn.Linear(inner, dim)

    def forward(
        self,
        x: Tensor,
        *,
        causal: bool = False,
        attn_mask: Tensor | None = None,
        past_kv: KVPair | None = None,
        return_kv: bool = False,
        rope: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, KVPair]:
        """Attend over the ``L`` positions of each of ``S`` sequences.

        Shapes: ``x: S L D -> S L D``; ``past_kv`` and the returned keys/values ``S H L E``.

        Args:
            x: the (already normalised) input.
            causal: position ``i`` attends only to positions ``<= i``. With ``past_kv``, the
                queries are placed after the cached positions.
            attn_mask: boolean ``L_q L_k`` mask (True = may attend), used instead of ``causal``.
            past_kv: keys and values of earlier positions to attend to as well (a KV cache).
            return_kv: also return the keys/values of ``x``'s positions (not including
                ``past_kv``), to be cached (keys already rotated with ``rope``).
            rope: rotary phases of ``x``'s positions (``L F``, :meth:`RotaryEmbedding.phases
                <worldmodels.layers.rope.RotaryEmbedding.phases>`), applied to the queries and keys
                after QK-norm; cached keys in ``past_kv`` must be rotated already.

        Returns:
            The output, and with ``return_kv`` the new ``(keys, values)``.
        """
        s, length, d = x.shape
        q, k, v = self._project(x, rope)
        new_kv = (k, v)
        if past_kv is not None:
            k = torch.cat([past_kv[0], k], dim=2)
            v = torch.cat([past_kv[1], v], dim=2)
        key_len = k.shape[2]
        is_causal = False
        if attn_mask is None and causal and length > 1:
            if key_len == length:
                is_causal = True
            else:
                attn_mask = shifted_causal_mask(length, key_len, device=x.device)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )
        out = self.proj(rearrange(out, "s h l e -> (s l) (h e)")).reshape(s, length, d)
        return (out, new_kv) if return_kv else out

    def _project(self, x: Tensor, rope: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values ``S H L E`` of ``x`` (``S L D``): QK-normalised, then rotated.

        With RMS QK-norm, queries and keys are normalised in one call and rotated in one complex
        multiplication (``S L 2 H E``): fewer small kernels, which is what a one-frame step costs.
        """
        s, length, d = x.shape
        qkv_SL3HE = self.qkv(x.reshape(s * length, d)).view(s, length, 3, self.num_heads, self.head_dim)
        if isinstance(self.q_norm, nn.RMSNorm) and isinstance(self.k_norm, nn.RMSNorm):
            # split, not two slices: a slice's backward writes a zero-filled copy of all of qkv
            qk_SL2HE, v_SL1HE = qkv_SL3HE.split([2, 1], dim=2)
            weight_21E = torch.stack([self.q_norm.weight, self.k_norm.weight]).to(qkv_SL3HE.dtype)[:, None, :]
            qk_SL2HE = F.rms_norm(qk_SL2HE, (self.head_dim,), None, self.q_norm.eps) * weight_21E
            if rope is not None:  # phases L F (or L F 2) -> L 1 1 F
                qk_SL2HE = apply_rotary(qk_SL2HE, rope[:, None, None])
            q, k = rearrange(qk_SL2HE, "s l two h e -> two s h l e")
            v = rearrange(v_SL1HE, "s l 1 h e -> s h l e")
            return q, k, v
        q, k, v = rearrange(qkv_SL3HE, "s l three h e -> three s h l e")
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)  # L F against S H L F
        return q, k, v

    def attend_in_place(
        self, x: Tensor, keys: Tensor, values: Tensor, slots: list[int] | Tensor, *, rope: Tensor | None = None,
        key_masks: list[Tensor | None] | Tensor | None = None,
    ) -> Tensor:
        """``K`` new positions per sequence, written into a fixed-size key/value buffer they attend over.

        Position ``k``'s key and value overwrite slot ``slots[k]`` of ``keys`` and ``values`` (in
        place, no concatenation), then its query attends over every slot ``key_masks[k]`` allows,
        before position ``k + 1`` is written: each position sees those before it. A rolling cache
        of past frames (:class:`~worldmodels.layers.STStream`) calls this once per layer and pass.

        With ``slots`` a ``K`` int64 tensor, ``key_masks`` a ``K 1 W`` bool tensor and real
        ``rope`` phases (``K F 2``), nothing depends on Python values: the form
        :func:`torch.compile` traces as one graph (:meth:`STTransformer.compile_stream
        <worldmodels.layers.STTransformer.compile_stream>`).

        Shapes: ``x: S K D``; ``keys, values: S H W E``; ``rope: K F`` (or ``K F 2``);
        ``key_masks``: per position ``1 W`` bool (True = may attend; ``None``: every slot), or
        ``K 1 W`` -> ``S K D``.
        """
        s, length, d = x.shape
        if length != len(slots):
            raise ValueError(f"attend_in_place got {length} positions per sequence but {len(slots)} slots.")
        q, k, v = self._project(x, rope)
        h, e, w = self.num_heads, self.head_dim, keys.shape[2]
        outs: list[Tensor] = []
        for j in range(length):
            if isinstance(slots, Tensor):
                keys.index_copy_(2, slots[j : j + 1], k[:, :, j : j + 1].to(keys.dtype))
                values.index_copy_(2, slots[j : j + 1], v[:, :, j : j + 1].to(values.dtype))
            else:
                keys[:, :, slots[j]] = k[:, :, j]
                values[:, :, slots[j]] = v[:, :, j]
            # one query against W keys: two batched matmuls beat the fused kernel's set-up at this size
            scores = torch.bmm(q[:, :, j].reshape(s * h, 1, e).to(keys.dtype), keys.view(s * h, w, e).transpose(1, 2))
            scores = scores * e**-0.5
            mask = key_masks[j] if key_masks is not None else None
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            outs.append(torch.bmm(scores.softmax(-1), values.view(s * h, w, e)).view(s, h * e))  # S (H E)
        out = outs[0] if length == 1 else torch.stack(outs, dim=1).reshape(s * length, h * e)
        return self.proj(out.to(x.dtype)).reshape(s, length, d)
