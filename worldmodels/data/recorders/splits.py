"""Which episodes of a recording belong to which split, and which level seeds each split plays.

Each split (train / val / test) plays its own disjoint range of level seeds: split ``k`` uses
``[start_level + offset_k, start_level + offset_k + num_levels_k)``, where ``num_levels_k`` is
``num_levels`` or, by default, the number of episodes of the split (:func:`plan_splits`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_SPLITS", "SplitPlan", "parse_splits", "plan_splits"]

DEFAULT_SPLITS = "train=0.8,val=0.1,test=0.1"
"""Split fractions of ``worldmodels record`` when none are given."""


@dataclass(frozen=True)
class SplitPlan:
    """What to record for one split.

    Attributes:
        name: split name (``train``, ``val``, ``test``, ...).
        index: position of the split (seeds the policy's random generator).
        episodes: episodes to record.
        level_start: first level seed of the split's range.
        num_levels: size of the split's level-seed range.
    """

    name: str
    index: int
    episodes: int
    level_start: int
    num_levels: int

    @property
    def level_stop(self) -> int:
        """One past the last level seed of the split."""
        return self.level_start + self.num_levels


def parse_splits(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """Parse ``"train=0.8,val=0.1,test=0.1"`` (fractions) or ``"train=100,val=10"`` (counts).

    Args:
        text: the specification, a mapping, or ``None`` for the default 80/10/10.

    Returns:
        Split name -> fraction (a float) or episode count (an int), in the given order.

    Raises:
        ValueError: on malformed entries, negative values, or mixed fractions and counts.

    Shapes:
        none.
    """
    if text is None:
        text = DEFAULT_SPLITS
    items: list[tuple[str, float]] = []
    if isinstance(text, Mapping):
        items = [(str(k), v) for k, v in text.items()]
    else:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(
                    f"Bad split entry {part!r} in {text!r}; write NAME=VALUE, e.g. train=0.8,val=0.1,test=0.1."
                )
            try:
                number: float = int(value) if value.strip().lstrip("+").isdigit() else float(value)
            except ValueError:
                raise ValueError(
                    f"Bad split value {value!r} for {name.strip()!r}: expected a fraction or a count."
                ) from None
            items.append((name.strip(), number))
    out: dict[str, float] = {}
    for name, number in items:
        if name in out:
            raise ValueError(f"Split {name!r} is given twice in {text!r}.")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"Split name {name!r} must be a plain word such as train, val or test.")
        if number < 0:
            raise ValueError(f"Split {name!r} has a negative size {number}.")
        out[name] = number
    if not out:
        raise ValueError(f"No splits in {text!r}; e.g. train=0.8,val=0.1,test=0.1.")
    kinds = {isinstance(v, int) for v in out.values()}
    if len(kinds) > 1:
        raise ValueError(f"Splits {text!r} mix counts and fractions; give all as counts or all as fractions.")
    if not isinstance(next(iter(out.values())), int) and not math.isclose(sum(out.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"Split fractions {text!r} sum to {sum(out.values()):g}, not 1.")
    return out


def plan_splits(
    episodes: int | None,
    splits: str | Mapping[str, float] | None = None,
    *,
    start_level: int = 0,
    num_levels: int | None = None,
) -> list[SplitPlan]:
    """Turn a split specification into episode counts and disjoint level-seed ranges.

    Fractions are turned into counts by largest remainder; a split with a positive fraction
    gets at least one episode when there are enough episodes to go round.

    Args:
        episodes: total episodes (may be ``None`` when ``splits`` gives counts).
        splits: see :func:`parse_splits`.
        start_level: first level seed of the first split.
        num_levels: level seeds per split (default: one per episode of the split).

    Returns:
        One :class:`SplitPlan` per split with at least one episode, in order.

    Shapes:
        none.
    """
    spec = parse_splits(splits)
    if all(isinstance(v, int) for v in spec.values()):
        counts = {k: int(v) for k, v in spec.items()}
        if episodes is not None and sum(counts.values()) != episodes:
            raise ValueError(
                f"The split counts {dict(counts)} add up to {sum(counts.values())} episodes, but {episodes} were "
                "requested; make them agree or leave out the episode count."
            )
    else:
        if episodes is None or episodes < 1:
            raise ValueError(f"Recording needs episodes >= 1 when splits are fractions, got {episodes}.")
        exact = {k: v * episodes for k, v in spec.items()}
        counts = {k: int(math.floor(x)) for k, x in exact.items()}
        for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: episodes - sum(counts.values())]:
            counts[k] += 1
        for k in spec:  # every requested split gets an episode if another split can spare one
            if spec[k] > 0 and counts[k] == 0:
                donor = max(counts, key=lambda d: counts[d])
                if counts[donor] > 1:
                    counts[donor] -= 1
                    counts[k] = 1
    if num_levels is not None and num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}.")
    if start_level < 0:
        raise ValueError(f"start_level must be >= 0, got {start_level}.")
    plans = []
    level = start_level
    for index, (name, count) in enumerate(counts.items()):
        if count <= 0:
            continue
        levels = num_levels or count
        plans.append(SplitPlan(name, index, count, level, levels))
        level += levels
    if not plans:
        raise ValueError(f"The splits {spec} leave no episode to record.")
    return plans
