"""Training precision: ``fp32``, ``bf16`` (autocast), or ``auto`` (bf16 only where the hardware has it).

bf16 autocast pays only where the hardware multiplies bf16 natively: CUDA GPUs with bf16 support,
and CPUs with AMX or AVX-512 BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later). On
other CPUs PyTorch emulates bf16, and a training step runs many times slower than in fp32
(``benchmarks/bench_training.py --modes eager,bf16`` on a 2-core AVX2-only AMD EPYC: genie-tiny's
tokenizer step 1.7 s in fp32 against 36 s in bf16). ``auto`` picks bf16 where it is native and
fp32 everywhere else, so a CPU recipe is fast on both kinds of machine.

Example:
    >>> import torch
    >>> resolve_precision("fp32", torch.device("cpu"))
    'fp32'
    >>> resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    True
"""

from __future__ import annotations

import torch

from worldmodels.training.config import PRECISIONS

__all__ = ["has_native_bf16", "resolve_precision"]


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 natively (so bf16 autocast can be faster than fp32).

    CUDA: :func:`torch.cuda.is_bf16_supported` without emulation. CPU: AMX tiles or AVX-512 BF16
    instructions. Any other device: ``False``.
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run on ``device`` trains in: ``fp32`` or ``bf16``.

    Args:
        precision: ``fp32``, ``bf16`` (always autocast, even where bf16 is emulated and slow), or
            ``auto`` (``bf16`` where :func:`has_native_bf16`, else ``fp32``).
        device: the training device.

    Raises:
        ValueError: ``precision`` is none of the three.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}; "
                         "use auto to train in bf16 only where the hardware has it")
    if precision == "auto":
        return "bf16" if has_native_bf16(device) else "fp32"
    return precision
