"""Vector quantisation (VQ-VAE, van den Oord et al., 2017) with the usual safeguards against collapse.

Axis legend: ``M`` vectors to quantise (all leading axes flattened), ``K`` codes, ``E`` code width.

* straight-through estimator: the decoder's gradient flows to the encoder unchanged;
* codebook loss ``|sg[z] - e|^2`` and commitment loss ``beta * |z - sg[e]|^2``, or, with
  ``ema_decay``, codebook updates by exponential moving averages of assigned vectors;
* optional L2-normalised codes and inputs (cosine-similarity lookup);
* data-dependent initialisation (codes drawn from the first batch of encoder outputs);
* dead-code reset: codes whose running usage falls below a threshold, and that no vector of the
  current batch chose, are re-initialised from recent encoder outputs (a code chosen in the batch
  is never replaced, so the returned indices always name the vectors they were assigned to);
* metrics: perplexity, fraction of codes used, normalised usage entropy, and a running usage
  histogram (:attr:`VectorQuantizer.usage`).

**State changes.** A training forward (``training`` and gradients enabled) updates the running
usage, the EMA codebook and resets dead codes. By default this happens at the end of the forward.
With :attr:`VectorQuantizer.defer_state_updates` (which the trainer sets) the forward only records
what it saw; :meth:`~VectorQuantizer.commit_state_updates` applies everything recorded since the
last commit once the optimizer step is taken (so micro-batches of one step count once, and a step
skipped for a non-finite loss leaves no trace: :meth:`~VectorQuantizer.discard_state_updates`).
It returns the rows that were re-initialised, whose optimizer moments the trainer clears.

Under ``torch.distributed`` the statistics are all-reduced and re-initialised codes are
broadcast from rank 0, so every rank keeps the same codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """What :meth:`VectorQuantizer.forward` returns.

    Attributes:
        quantized: the code vectors with straight-through gradients, shaped like the input ``... E``.
        indices: code indices ``...`` int64.
        loss: the codebook + commitment loss (0-d).
        metrics: detached scalar metrics (``perplexity``, ``usage``, ``usage_entropy``,
            ``codebook_loss``, ``commitment_loss``, ``dead_codes_reset``).
        histogram: code counts of this batch, ``K`` float.
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    metrics: dict[str, Tensor]
    histogram: Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def usage_statistics(histogram: Tensor) -> dict[str, Tensor]:
    """Perplexity, fraction of codes used and normalised entropy of a code histogram ``K``.

    ``usage_entropy`` is the entropy divided by ``log K``: 0 when a single code is used (collapse),
    1 when usage is uniform.
    """
    k = histogram.numel()
    probs = histogram / histogram.sum().clamp_min(1e-12)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    return {
        "perplexity": entropy.exp(),
        "usage": (histogram > 0).float().mean(),
        "usage_entropy": entropy / math.log(k) if k > 1 else torch.zeros_like(entropy),
    }


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with a straight-through estimator.

    Shapes: ``forward(z: ... E) -> QuantizerOutput(quantized: ... E, indices: ...)``;
    ``lookup(indices: ...) -> ... E``.

    Args:
        num_codes: codebook size ``K``.
        code_dim: code width ``E``.
        beta: weight of the commitment loss.
        ema_decay: if set (e.g. ``0.99``), codes follow exponential moving averages of the vectors
            assigned to them instead of receiving gradients; only the commitment loss remains.
        l2_normalize: normalise inputs and codes to unit length (lookup by cosine similarity).
        data_init: initialise the codebook from the first training batch of encoder outputs.
        dead_code_threshold: a code whose running usage falls below
            ``dead_code_threshold / num_codes`` is re-initialised from a random encoder output of
            the current batch (0 disables the reset).
        usage_decay: decay of the running usage histogram.
        eps: smoothing of the EMA cluster sizes.
    """

    replicate_under_fsdp: bool = True
    usage: Tensor
    initialized: Tensor
    ema_cluster_size: Tensor
    ema_embed_sum: Tensor
    """``forward`` writes to the codebook (data init, dead-code reset, EMA), so FSDP must not shard it
    (see :func:`worldmodels.training.distributed.replicated_parameters`)."""

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        ema_decay: float | None = None,
        l2_normalize: bool = False,
        data_init: bool = True,
        dead_code_threshold: float = 0.03,
        usage_decay: float = 0.9,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"num_codes and code_dim must be positive, got {num_codes} and {code_dim}.")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.beta, self.ema_decay, self.l2_normalize = beta, ema_decay, l2_normalize
        self.data_init, self.dead_code_threshold = data_init, dead_code_threshold
        self.usage_decay, self.eps = usage_decay, eps
        self.codebook = nn.Parameter(
            torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes),
            requires_grad=ema_decay is None,
        )
        self.register_buffer("usage", torch.full((num_codes,), 1.0 / num_codes))
        self.register_buffer("initialized", torch.tensor(not data_init))
        if ema_decay is not None:
            self.register_buffer("ema_cluster_size", torch.ones(num_codes))
            self.register_buffer("ema_embed_sum", self.codebook.detach().clone())
        self.defer_state_updates = False
        """Record training-forward updates until :meth:`commit_state_updates` (set by the trainer)."""
        self._pending: dict[str, Any] | None = None
        self._init_pending = False

    # ------------------------------------------------------------------ lookup
    def codes(self) -> Tensor:
        """The code vectors ``K E`` as used for lookup (unit length with ``l2_normalize``)."""
        return F.normalize(self.codebook, dim=-1) if self.l2_normalize else self.codebook

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors of ``indices``: ``... -> ... E``."""
        vectors = F.embedding(indices, self.codebook)
        return F.normalize(vectors, dim=-1) if self.l2_normalize else vectors

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """Indices of the nearest codes, ``... E -> ...`` (no statistics are updated)."""
        flat = self._prepare(z.reshape(-1, self.code_dim))
        return self._assign(flat).reshape(z.shape[:-1])

    def _prepare(self, flat: Tensor) -> Tensor:
        flat = flat.float()
        return F.normalize(flat, dim=-1) if self.l2_normalize else flat

    @torch.no_grad()
    def _assign(self, flat: Tensor) -> Tensor:
        codes = self.codes().float()
        if self.l2_normalize:
            return (flat @ codes.t()).argmax(-1)
        dist_MK = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(-1)[None, :]
        return dist_MK.argmin(-1)

    # ------------------------------------------------------------------ forward
    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantise ``z`` (statistics and codes are updated in training mode only, see the module docs).

        Shapes: ``z: ... E -> quantized: ... E, indices: ...``.
        """
        if z.shape[-1] != self.code_dim:
            raise ValueError(f"VectorQuantizer expects inputs of width {self.code_dim}, got shape {tuple(z.shape)}.")
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = self._prepare(z.reshape(-1, self.code_dim))
            update = self.training and torch.is_grad_enabled()
            if update and not bool(self.initialized):
                self._init_from_data(flat.detach())
            indices = self._assign(flat)
            q = self.lookup(indices).float()
            histogram = torch.bincount(indices, minlength=self.num_codes).float()
            reset = torch.zeros((), device=z.device)
            if update:
                if _distributed():
                    dist.all_reduce(histogram)
                self._record(flat.detach(), indices, histogram)
                if not self.defer_state_updates:
                    reset = self._apply_pending().sum().float()
            commitment = F.mse_loss(flat, q.detach())
            codebook_loss = F.mse_loss(q, flat.detach()) if self.ema_decay is None else torch.zeros_like(commitment)
            loss = codebook_loss + self.beta * commitment
            quantized = flat + (q - flat).detach()
        metrics = usage_statistics(histogram)
        metrics.update(codebook_loss=codebook_loss, commitment_loss=commitment, dead_codes_reset=reset)
        return QuantizerOutput(
            quantized=quantized.reshape(z.shape).to(z.dtype),
            indices=indices.reshape(z.shape[:-1]),
            loss=loss,
            metrics={k: v.detach() for k, v in metrics.items()},
            histogram=histogram,
        )

    # ------------------------------------------------------------------ state updates
    @torch.no_grad()
    def _record(self, flat: Tensor, indices: Tensor, histogram: Tensor) -> None:
        """Accumulate what a training forward saw (histogram, EMA sums, candidate rows for resets)."""
        pending = self._pending
        if pending is None:
            pending = self._pending = {"histogram": torch.zeros_like(histogram), "rows": []}
        pending["histogram"] += histogram
        if self.ema_decay is not None:
            onehot_MK = F.one_hot(indices, self.num_codes).to(flat.dtype)
            counts, sums_KE = onehot_MK.sum(0), onehot_MK.t() @ flat
            if _distributed():
                dist.all_reduce(counts)
                dist.all_reduce(sums_KE)
            pending["ema_counts"] = pending.get("ema_counts", 0) + counts
            pending["ema_sums"] = pending.get("ema_sums", 0) + sums_KE
        if self.dead_code_threshold > 0:
            take = min(flat.shape[0], self.num_codes)
            choice = torch.randperm(flat.shape[0], device=flat.device)[:take]
            pending["rows"].append(flat[choice].clone())

    @torch.no_grad()
    def _apply_pending(self) -> Tensor:
        """Apply the recorded updates: usage, EMA codes, dead-code reset. Returns the reset rows (``K`` bool)."""
        pending, self._pending = self._pending, None
        reset = torch.zeros(self.num_codes, dtype=torch.bool, device=self.codebook.device)
        if pending is None:
            return reset
        histogram = pending["histogram"]
        if self.ema_decay is not None:
            self._ema_update(pending["ema_counts"], pending["ema_sums"])
        fraction = histogram / histogram.sum().clamp_min(1)
        self.usage.mul_(self.usage_decay).add_(fraction, alpha=1 - self.usage_decay)
        if self.dead_code_threshold > 0 and pending["rows"]:
            # never replace a code this step chose: its indices must keep naming the vector they got
            reset = (self.usage < self.dead_code_threshold / self.num_codes) & (histogram == 0)
            count = int(reset.sum())
            if count:
                rows = self._sample_rows(torch.cat(pending["rows"]), count)
                self.codebook.data[reset] = rows.to(self.codebook.dtype)
                self.usage[reset] = 1.0 / self.num_codes
                if self.ema_decay is not None:
                    self.ema_embed_sum[reset] = rows
                    self.ema_cluster_size[reset] = 1.0
        return reset

    def commit_state_updates(self) -> dict[str, Tensor]:
        """Apply the updates recorded since the last commit (deferred mode; see the module docs).

        Returns:
            ``{"codebook": K bool}``, the codebook rows that were re-initialised (their optimizer
            moments are stale and should be cleared); empty when none was.
        """
        self._init_pending = False
        reset = self._apply_pending()
        return {"codebook": reset} if bool(reset.any()) else {}

    def discard_state_updates(self) -> None:
        """Forget the updates recorded since the last commit (the optimizer step was skipped)."""
        self._pending = None
        if self._init_pending:
            self.initialized.fill_(False)
        self._init_pending = False

    # ------------------------------------------------------------------ codebook maintenance
    def _sample_rows(self, flat: Tensor, count: int) -> Tensor:
        choice = torch.randint(0, flat.shape[0], (count,), device=flat.device)
        rows = flat[choice]
        if flat.shape[0] < count:  # repeated rows would make identical codes: spread them a little
            rows = rows + 0.01 * rows.std().clamp_min(1e-3) * torch.randn_like(rows)
        if _distributed():
            dist.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _init_from_data(self, flat: Tensor) -> None:
        rows = self._sample_rows(flat, self.num_codes)
        self.codebook.data.copy_(rows)
        if self.ema_decay is not None:
            self.ema_embed_sum.copy_(rows)
            self.ema_cluster_size.fill_(1.0)
        self.initialized.fill_(True)
        self._init_pending = self.defer_state_updates

    @torch.no_grad()
    def _ema_update(self, counts: Tensor, sums_KE: Tensor) -> None:
        decay = float(self.ema_decay)  # type: ignore[arg-type]
        self.ema_cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_embed_sum.mul_(decay).add_(sums_KE, alpha=1 - decay)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.data.copy_(self.ema_embed_sum / smoothed[:, None])
