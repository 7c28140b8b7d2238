"""Process groups, devices and model wrapping (DDP / FSDP2) for the trainer.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`setup_distributed` starts the
default process group with ``nccl`` when CUDA is available and ``gloo`` otherwise, so the same
code path runs on CPU in tests. Models are wrapped with PyTorch's own engines only:
:class:`~torch.nn.parallel.DistributedDataParallel` or FSDP2's
:func:`torch.distributed.fsdp.fully_shard`.
"""

from __future__ import annotations

import datetime
import gc
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class DistContext:
    """Where this process stands in the job.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this node (picks the CUDA device).
        device: the device this process trains on.
        backend: the process group's backend, or ``None`` for a single process.
        owns_group: whether :func:`setup_distributed` started the process group (and so ends it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that writes files and shows progress)."""
        return self.rank == 0

    @property
    def collective_device(self) -> torch.device:
        """Where tensors must live for collectives (``cuda`` for nccl, ``cpu`` for gloo)."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def barrier(self) -> None:
        """Wait for every rank (no-op for a single process)."""
        if self.distributed:
            dist.barrier()

    def all_reduce_mean(self, tensor: Tensor) -> Tensor:
        """The mean of ``tensor`` over ranks (a new tensor on the tensor's device)."""
        if not self.distributed:
            return tensor
        out = tensor.detach().to(self.collective_device, copy=True)
        dist.all_reduce(out)
        return (out / self.world_size).to(tensor.device)

    def all_reduce_max(self, tensor: Tensor) -> Tensor:
        """The element-wise maximum of ``tensor`` over ranks."""
        if not self.distributed:
            return tensor
        out = tensor.detach().to(self.collective_device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return out.to(tensor.device)

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """``tensor`` of every rank (same shape on all), as CPU tensors, in rank order."""
        if not self.distributed:
            return [tensor.detach().cpu()]
        local = tensor.detach().to(self.collective_device).contiguous()
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return [t.cpu() for t in out]

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.collective_device)
        dist.broadcast(t, src=0)
        return int(t.item())


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but CUDA is not available; use train.device=cpu or auto.")
        return torch.device("cuda", local_rank)
    return torch.device(device)


def setup_distributed(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` job if there is one, pick the device, and describe this process.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set by ``torchrun``. An already started
    default process group is reused (and left running); otherwise one is started with
    ``nccl`` on CUDA and ``gloo`` on CPU.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        The :class:`DistContext` of this process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        dev = _pick_device(device, local_rank)
        return DistContext(rank, world_size, local_rank, dev, dist.get_backend(), owns_group=False)
    if world_size <= 1:
        return DistContext(device=_pick_device(device, int(os.environ.get("LOCAL_RANK", "0"))))
    if not dist.is_available():  # pragma: no cover - every supported build has torch.distributed
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed.")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend, owns_group=True)


def teardown_distributed(ctx: DistContext) -> None:
    """End the process group if :func:`setup_distributed` started it.

    Unreachable objects are collected first: a finished trainer's DDP wrapper sits in a
    reference cycle, and if its reducer outlived the group, gloo's pending work would be freed
    during interpreter shutdown, which aborts the process (SIGABRT, "terminate called without
    an active exception") on some exits.
    """
    if ctx.owns_group and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def resolve_strategy(strategy: str, ctx: DistContext) -> str:
    """``auto`` -> ``ddp`` with several processes, ``none`` with one; others pass through.

    ``ddp`` and ``fsdp`` need a process group (``torchrun``, or one the caller started, which
    may have a single rank).

    Raises:
        ValueError: for ``ddp`` / ``fsdp`` without a process group, or ``none`` with several ranks.
    """
    if strategy == "auto":
        return "ddp" if ctx.distributed else "none"
    if strategy in ("ddp", "fsdp") and not ctx.distributed and not dist.is_initialized():
        raise ValueError(
            f"train.strategy={strategy} needs several processes: launch with "
            "`torchrun --nproc_per_node N -m worldmodels train ...` or use train.strategy=auto."
        )
    if strategy == "none" and ctx.distributed:
        raise ValueError(
            "train.strategy=none with several processes would train unsynchronised copies; use ddp, fsdp or auto."
        )
    return strategy


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def fsdp_units(root: nn.Module, components: Sequence[str]) -> list[nn.Module]:
    """The submodules :func:`wrap_fsdp` shards on their own.

    Every element of every :class:`~torch.nn.ModuleList` inside the trainable components
    (``root.model.<component>``; transformer blocks, as a rule) that holds trainable parameters;
    the rest is sharded with the root.
    """
    units: list[nn.Module] = []
    for name in components:
        component = root.get_submodule(f"model.{name}")
        for module in component.modules():
            if isinstance(module, nn.ModuleList):
                units.extend(child for child in module if _trainable(child) and child not in units)
    # a block nested inside another unit is sharded with that unit
    nested = {id(m) for u in units for m in u.modules() if m is not u}
    return [u for u in units if id(u) not in nested]


def replicated_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters FSDP must leave whole on every rank.

    A submodule that writes to its own parameters during ``forward`` (a vector quantiser's
    data-dependent initialisation, dead-code reset and EMA updates) declares
    ``replicate_under_fsdp = True``: under FSDP those writes would land in a temporary unsharded
    copy and be lost. Such modules keep their ranks in step themselves (they all-reduce their
    statistics and broadcast re-initialised codes); their gradients are averaged by
    :func:`all_reduce_gradients`.
    """
    found: dict[int, nn.Parameter] = {}
    for sub in module.modules():
        if getattr(sub, "replicate_under_fsdp", False):
            found.update({id(p): p for p in sub.parameters()})
    return list(found.values())


def wrap_fsdp(module: nn.Module, ctx: DistContext, components: Sequence[str]) -> nn.Module:
    """Shard ``module`` with FSDP2: each unit of :func:`fsdp_units` first, then the root.

    Frozen parameters stay in the root's group (FSDP2 accepts mixed ``requires_grad``);
    they are gathered for the forward pass and never updated. :func:`replicated_parameters`
    are not sharded at all (``ignored_params``).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
    ignored = set(replicated_parameters(module)) or None
    for unit in fsdp_units(module, components):
        fully_shard(unit, mesh=mesh, ignored_params=ignored)
    fully_shard(module, mesh=mesh, ignored_params=ignored)
    return module


def all_reduce_gradients(params: Sequence[nn.Parameter], ctx: DistContext) -> None:
    """Average the gradients of parameters that no wrapper synchronises (see :func:`replicated_parameters`)."""
    if not ctx.distributed:
        return
    for param in params:
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad)
            param.grad.div_(ctx.world_size)


def clip_gradients(params: Sequence[nn.Parameter], max_norm: float) -> Tensor:
    """Clip the global gradient norm of ``params`` (sharded DTensors and plain tensors mixed); returns it.

    The norm is computed per kind of tensor and combined, so FSDP's sharded gradients and the
    replicated ones of :func:`replicated_parameters` count once each.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    groups: dict[bool, list[Tensor]] = {}
    for grad in grads:
        groups.setdefault(hasattr(grad, "full_tensor"), []).append(grad)
    norms = [grad_norm_value(torch.nn.utils.get_total_norm(group)) for group in groups.values()]
    total = torch.stack([n.float().cpu() for n in norms]).norm()
    for group in groups.values():
        torch.nn.utils.clip_grads_with_norm_(group, max_norm, total.to(group[0].device))
    return total


def wrap_ddp(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap with :class:`~torch.nn.parallel.DistributedDataParallel` (frozen parameters are ignored)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


@contextmanager
def gradient_sync(module: nn.Module, strategy: str, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps (``sync=False``)."""
    if strategy == "ddp" and not sync:
        with module.no_sync():  # type: ignore[operator]  # a DistributedDataParallel here
            yield
        return
    if strategy == "fsdp":
        module.set_requires_gradient_sync(sync)  # type: ignore[operator]  # an FSDP2 module here
    with nullcontext():
        yield


def full_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The full (unsharded) model and optimizer state, on CPU, keyed by parameter name.

    A collective under FSDP: every rank must call it; rank 0 receives the full state (other
    ranks may receive empty dicts).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state, optimizer_state = get_state_dict(module, optimizer, options=options)
    return cast(dict[str, Tensor], model_state), cast(dict[str, Any], optimizer_state)


def load_full_state(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_state: dict[str, Tensor],
    optimizer_state: dict[str, Any],
) -> None:
    """Load a full state written by :func:`full_state` on any world size (each rank shards locally)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        module,
        optimizer,
        model_state_dict=cast(dict[str, Any], model_state),
        optim_state_dict=optimizer_state,
        options=StateDictOptions(full_state_dict=True),
    )


def grad_norm_value(norm: Tensor) -> Tensor:
    """A plain tensor from ``clip_grad_norm_``'s result (a DTensor under FSDP2)."""
    full = getattr(norm, "full_tensor", None)
    return full() if callable(full) else norm
