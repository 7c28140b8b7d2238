"""The trainer's data order: one seeded sample stream, cut into global batches, split over ranks.

All ranks agree on one infinite *stream* of dataset indices: epoch ``e`` is a permutation of
``range(len(dataset))`` drawn from the seed ``(seed, e)``, and the epochs follow each other.
Optimizer step ``s`` consumes stream positions ``[s * B, (s + 1) * B)`` for the global batch
size ``B``; rank ``r`` of ``W`` takes the ``r``-th of ``W`` equal slices of that batch, cut into
``grad_accum`` micro-batches. The *position* (number of global samples consumed) is all a
checkpoint needs to continue the order exactly, on any world size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def split_batch(global_batch: int, world_size: int, grad_accum: int) -> int:
    """The micro-batch size of each rank: ``global_batch / (world_size * grad_accum)``.

    Raises:
        ValueError: if the global batch does not divide evenly.
    """
    parts = world_size * grad_accum
    if global_batch % parts:
        raise ValueError(
            f"train.batch_size={global_batch} is not divisible by world_size x grad_accum = "
            f"{world_size} x {grad_accum} = {parts}; pick a batch size that is a multiple of {parts}."
        )
    return global_batch // parts


class GlobalBatchSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches of dataset indices, from a position in the sample stream.

    Use it as a :class:`~torch.utils.data.DataLoader` ``batch_sampler``: each rank reads only
    its own share of the clips.

    Args:
        dataset_size: ``len(dataset)``.
        global_batch: ``B``, samples per optimizer step over all ranks.
        rank: this process's rank.
        world_size: number of processes.
        grad_accum: micro-batches per optimizer step.
        seed: seed of the per-epoch permutations.
        start: stream position to start from (a multiple of ``global_batch`` when resuming).
        num_steps: optimizer steps to yield (``None``: forever).

    Example:
        >>> s = GlobalBatchSampler(10, 4, rank=1, world_size=2, seed=0, num_steps=1)
        >>> [len(b) for b in s]
        [2]
    """

    def __init__(
        self,
        dataset_size: int,
        global_batch: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        grad_accum: int = 1,
        seed: int = 0,
        start: int = 0,
        num_steps: int | None = None,
    ) -> None:
        if dataset_size < 1:
            raise ValueError("GlobalBatchSampler needs a non-empty dataset.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside [0, world_size={world_size}).")
        self.dataset_size = int(dataset_size)
        self.global_batch = int(global_batch)
        self.rank, self.world_size, self.grad_accum = int(rank), int(world_size), int(grad_accum)
        self.micro_batch = split_batch(self.global_batch, self.world_size, self.grad_accum)
        self.seed = int(seed)
        self.start = int(start)
        self.num_steps = num_steps
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()

    def permutation(self, epoch: int) -> np.ndarray:
        """The dataset order of ``epoch`` (same on every rank and every run with this seed)."""
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)
            self._perms[epoch] = perm
            while len(self._perms) > 2:
                self._perms.popitem(last=False)
        return perm

    def stream(self, position: int, count: int) -> list[int]:
        """Dataset indices at stream positions ``[position, position + count)``."""
        out: list[int] = []
        while count > 0:
            epoch, offset = divmod(position, self.dataset_size)
            take = min(count, self.dataset_size - offset)
            out.extend(int(i) for i in self.permutation(epoch)[offset : offset + take])
            position += take
            count -= take
        return out

    def step_batches(self, step_position: int) -> list[list[int]]:
        """This rank's ``grad_accum`` micro-batches of the global batch starting at ``step_position``."""
        per_rank = self.micro_batch * self.grad_accum
        mine = self.stream(step_position + self.rank * per_rank, per_rank)
        return [mine[i * self.micro_batch : (i + 1) * self.micro_batch] for i in range(self.grad_accum)]

    def __iter__(self) -> Iterator[list[int]]:
        position, produced = self.start, 0
        while self.num_steps is None or produced < self.num_steps:
            yield from self.step_batches(position)
            position += self.global_batch
            produced += 1

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("An endless GlobalBatchSampler (num_steps=None) has no length.")
        return self.num_steps * self.grad_accum
