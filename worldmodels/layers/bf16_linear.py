"""bf16 matrix multiplies only where they pay: chosen per layer shape, measured on this machine.

Axis legend: ``R`` rows (tokens) through a layer, ``I`` input and ``O`` output features.

On CPUs with AMX a large bf16 matmul runs several times faster than fp32, but the small ones of
one-frame play steps are bound by overhead, and bf16 autocast also turns every normalisation and
attention kernel into a slower bf16 one. :class:`Bf16Linears` takes the middle road: inside it,
only the :class:`torch.nn.Linear` layers whose shape (``R x I -> O``) multiplied faster in bf16
in a short measurement run in bf16 (the input cast in, the output cast back, the weight cast
once and kept); everything else stays fp32. ``benchmarks/bench_matched.py`` prints what it
chose and what it gained.

Example:
    >>> import torch
    >>> from worldmodels.layers.bf16_linear import Bf16Linears
    >>> net = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.GELU(), torch.nn.Linear(2048, 512))
    >>> with torch.no_grad(), Bf16Linears(net, rows=64) as fast:  # doctest: +SKIP
    ...     y = net(torch.randn(64, 512))
    >>> fast.chosen                                                   # doctest: +SKIP
    ['0', '2']
"""

from __future__ import annotations

import time
from types import TracebackType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Bf16Linears", "bf16_pays", "bf16_speedup"]

_SPEEDUPS: dict[tuple[int, int, int, bool, int, str], float] = {}
"""fp32 time / bf16 time per measured shape (rows, features, bias, threads, device)."""


def _best_time(fn: object, repeats: int = 5, calls: int = 20) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - start) / calls)
    return best


@torch.no_grad()
def bf16_pays(
    in_features: int, out_features: int, rows: int, *, bias: bool = True, device: str | torch.device = "cpu",
    margin: float = 1.1,
) -> bool:
    """Whether ``rows x in_features -> out_features`` runs at least ``margin`` times faster in bf16.

    Measured once per shape, thread count and device in this process (a few milliseconds), fp32
    and bf16 alternated, best of several repetitions; CUDA devices are not measured (bf16 is
    the norm there: use autocast).

    Shapes: not applicable.
    """
    return bf16_speedup(in_features, out_features, rows, bias=bias, device=device) >= margin


@torch.no_grad()
def bf16_speedup(
    in_features: int, out_features: int, rows: int, *, bias: bool = True, device: str | torch.device = "cpu"
) -> float:
    """fp32 time over bf16 time of ``rows x in_features -> out_features`` (measured once, see :func:`bf16_pays`).

    Shapes: not applicable.
    """
    device = torch.device(device)
    key = (in_features, out_features, rows, bias, torch.get_num_threads(), device.type)
    if key in _SPEEDUPS:
        return _SPEEDUPS[key]
    if device.type != "cpu":
        _SPEEDUPS[key] = 0.0
        return 0.0
    g = torch.Generator().manual_seed(0)
    x_RI = torch.randn(rows, in_features, generator=g)
    weight = torch.randn(out_features, in_features, generator=g) * in_features**-0.5
    b = torch.zeros(out_features) if bias else None
    weight_bf16 = weight.to(torch.bfloat16)

    def fp32() -> Tensor:
        return F.linear(x_RI, weight, b)

    def bf16() -> Tensor:
        y = F.linear(x_RI.to(torch.bfloat16), weight_bf16).float()
        return y if b is None else y + b

    fp32(), bf16()  # warm-up
    times = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(3):
        times["fp32"] = min(times["fp32"], _best_time(fp32))
        times["bf16"] = min(times["bf16"], _best_time(bf16))
    _SPEEDUPS[key] = times["fp32"] / times["bf16"]
    return _SPEEDUPS[key]


def _bf16_weight(layer: nn.Linear) -> Tensor:
    """The layer's weight in bf16, cast once and recast only after the weight changes."""
    try:
        counter = layer.weight._version
    except RuntimeError:  # an inference tensor (made under inference mode) keeps no version counter
        counter = -1
    version = (counter, layer.weight.data_ptr())
    cached = layer.__dict__.get("_bf16_weight")
    if cached is None or cached[0] != version:
        cached = (version, layer.weight.detach().to(torch.bfloat16))
        layer.__dict__["_bf16_weight"] = cached
    return cached[1]


def _bf16_forward(layer: nn.Linear, x: Tensor) -> Tensor:
    y = F.linear(x.to(torch.bfloat16), _bf16_weight(layer)).to(x.dtype)
    return y if layer.bias is None else y + layer.bias.to(x.dtype)


class Bf16Linears:
    """Inside this context, the linear layers of ``module`` whose shape runs faster in bf16 multiply in bf16.

    Inputs and outputs stay in their dtype (fp32); only the product is computed from bf16
    operands (with fp32 accumulation). Use it for inference (``torch.no_grad`` or inference
    mode): the bf16 weight copy is not differentiable.

    Args:
        module: the model whose ``nn.Linear`` layers are considered.
        rows: ``R``, the rows a layer typically sees per call (tokens of one step: for a frame
            of ``P`` positions and batch ``B``, ``B * P``).
        margin: how much faster a lone bf16 product must be for its layer to be chosen (``1.3``:
            30 %; the casts around it and the memory traffic take back part of the gain in a model).

    Attributes:
        chosen: names of the layers that run in bf16.
    """

    def __init__(self, module: nn.Module, rows: int, margin: float = 1.3) -> None:
        self.rows, self.margin = int(rows), float(margin)
        self._layers: list[tuple[str, nn.Linear]] = []
        for name, layer in module.named_modules():
            if isinstance(layer, nn.Linear) and layer.weight.dtype == torch.float32 and bf16_pays(
                layer.in_features, layer.out_features, self.rows, bias=layer.bias is not None,
                device=layer.weight.device, margin=self.margin,
            ):
                self._layers.append((name, layer))
        self.chosen = [name for name, _ in self._layers]

    def __enter__(self) -> Bf16Linears:
        for _, layer in self._layers:
            layer.forward = _bound(layer)  # type: ignore[method-assign]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for _, layer in self._layers:
            layer.__dict__.pop("forward", None)


def _bound(layer: nn.Linear):  # noqa: ANN202 - a closure standing in for Linear.forward
    def forward(x: Tensor) -> Tensor:
        return _bf16_forward(layer, x)

    return forward
