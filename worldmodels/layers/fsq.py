"""Finite scalar quantisation (FSQ; Mentzer et al., 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Axis legend: ``M`` vectors to quantise (all leading axes flattened), ``E`` code width (one axis
per level), ``K`` codes (the product of the levels).

Each of the ``E`` channels is squashed to ``(-1, 1)`` with a ``tanh`` and rounded to one of
``L_i`` evenly spaced values ``linspace(-1, 1, L_i)``; the code is the tuple of values, its index
the mixed-radix number of their positions. The codebook is implicit and fixed, so there is nothing to learn, nothing to
reset and nothing to collapse: no codebook or commitment loss, no dead codes, no state changed
by a forward pass. Gradients pass the rounding unchanged (straight-through).

It returns :class:`~worldmodels.layers.QuantizerOutput`, like
:class:`~worldmodels.layers.VectorQuantizer`, so a model can switch between the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels.layers.vector_quantizer import QuantizerOutput, usage_statistics


class FiniteScalarQuantizer(nn.Module):
    """Finite scalar quantiser: each code channel rounded to a few evenly spaced levels.

    Shapes: ``forward(z: ... E) -> QuantizerOutput(quantized: ... E, indices: ...)``;
    ``lookup(indices: ...) -> ... E``; code vectors lie in ``[-1, 1]``.

    Args:
        levels: quantisation levels per channel, e.g. ``[8, 5, 5, 5]`` (1000 codes, the paper's
            recommendation for a codebook of about 1k) or ``[2, 2, 2]`` (8 codes, the corners of a cube).

    Raises:
        ValueError: for fewer than one level or a level below 2.
    """

    _levels: Tensor
    _basis: Tensor

    def __init__(self, levels: Sequence[int]) -> None:
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ needs one or more levels, each >= 2 (e.g. [8, 5, 5, 5]); got {levels}.")
        self.levels = levels
        self.code_dim = len(levels)
        self.num_codes = math.prod(levels)
        basis = torch.tensor([math.prod(levels[:i]) for i in range(len(levels))])
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        # every code vector, K E: a lookup is then a gather, which torch.compile handles (inductor's
        # vectorised integer division of the digits raised a spurious ZeroDivisionError)
        digits = (torch.arange(self.num_codes)[:, None] // basis) % torch.tensor(levels)
        self._table: Tensor
        self.register_buffer("_table", self._scale(digits.float()), persistent=False)

    # ------------------------------------------------------------------ the grid
    def _digits(self, z: Tensor) -> Tensor:
        """Each channel squashed to ``(-1, 1)`` and rounded to ``0 .. L - 1``, straight-through (float).

        The grid is symmetric about zero (levels ``linspace(-1, 1, L)``), so even levels work too:
        ``L = 2`` is the sign of the channel, with a useful gradient at zero.
        """
        scaled = (torch.tanh(z) + 1) * (self._levels - 1) / 2
        return scaled + (scaled.round() - scaled).detach()

    def _scale(self, digits: Tensor) -> Tensor:
        """Digits ``0 .. L - 1`` to code values in ``[-1, 1]``."""
        return digits * (2 / (self._levels - 1)) - 1

    def codes(self) -> Tensor:
        """Every code vector, ``K E``, in index order."""
        return self._table.clone()

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors of ``indices``: ``... -> ... E`` in ``[-1, 1]``."""
        return F.embedding(indices.long(), self._table)

    def indices_of(self, quantized: Tensor) -> Tensor:
        """Indices of code vectors: ``... E -> ...`` int64."""
        digits = ((quantized.float() + 1) * (self._levels - 1) / 2).round().long()
        return (digits * self._basis).sum(-1)

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """Indices of the codes ``z`` rounds to, ``... E -> ...``."""
        digits = ((torch.tanh(z.float()) + 1) * (self._levels - 1) / 2).round().long()
        return (digits * self._basis).sum(-1)

    # ------------------------------------------------------------------ forward
    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantise ``z``; ``loss`` is zero (FSQ has no auxiliary loss) and no state changes.

        Shapes: ``z: ... E -> quantized: ... E, indices: ...``.
        """
        if z.shape[-1] != self.code_dim:
            raise ValueError(
                f"FiniteScalarQuantizer with levels {self.levels} expects inputs of width {self.code_dim}, got "
                f"shape {tuple(z.shape)}."
            )
        with torch.autocast(device_type=z.device.type, enabled=False):
            quantized = self._scale(self._digits(z.float()))
            indices = self.indices_of(quantized.detach())
            histogram = torch.bincount(indices.reshape(-1), minlength=self.num_codes).float()
        metrics = {k: v.detach() for k, v in usage_statistics(histogram).items()}
        zero = quantized.new_zeros(())
        return QuantizerOutput(
            quantized=quantized.to(z.dtype), indices=indices, loss=zero, metrics=metrics, histogram=histogram
        )

    def extra_repr(self) -> str:
        return f"levels={self.levels}, num_codes={self.num_codes}"
