"""The transformer feed-forward layer.

Axis legend: ``D`` model width, ``F`` hidden width.
"""

from __future__ import annotations

from torch import Tensor, nn


class FlatLinear(nn.Linear):
    """:class:`torch.nn.Linear` that flattens its input to 2-D ``(tokens, D_in)`` and back.

    Under CPU bf16 autocast, 3-D and higher inputs to a linear layer take a slower batched path;
    the weights and state-dict names are those of :class:`torch.nn.Linear`.

    Shapes: ``forward(x: ... D_in) -> ... D_out``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """``... D_in -> ... D_out``."""
        if x.ndim == 2:
            return super().forward(x)
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], self.out_features)


class Mlp(nn.Module):
    """Two linear layers with a GELU between them.

    The input is flattened to 2-D ``(tokens, D)`` before the linear layers (fast path under CPU
    bf16 autocast) and reshaped back.

    Shapes: ``forward(x: ... D) -> ... D_out``.

    Args:
        dim: input width ``D``.
        hidden_dim: hidden width ``F`` (commonly ``4 * D``).
        out_dim: output width; defaults to ``dim``.
        dropout: dropout after the activation and the output (training only).
    """

    def __init__(self, dim: int, hidden_dim: int, out_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim or dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``... D -> ... D_out``."""
        lead = x.shape[:-1]
        h = self.drop(self.act(self.fc1(x.reshape(-1, x.shape[-1]))))
        out = self.drop(self.fc2(h))
        return out.reshape(*lead, out.shape[-1])
