"""``worldmodels train``: train a world model's stages from the composed config.

Usage::

    worldmodels train model=toy-world stage=tokenizer train.steps=20 data=DIR
    worldmodels train model=genie-tiny stage=all data.synthetic=true train.precision=bf16
    worldmodels train recipe=NAME train.resume=true
    torchrun --nproc_per_node 2 -m worldmodels train model=genie-tiny data=DIR

Overrides are Hydra's (``key=value``, ``+key=value`` to add a key, ``recipe=NAME`` for a
plug-in's recipe). Shorthands: ``stage=X`` is ``train.stage=X``, ``data=DIR`` is
``data.path=DIR``, ``resume=true`` is ``train.resume=true``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

SHORTHANDS: dict[str, str] = {"stage": "train.stage", "data": "data.path", "resume": "train.resume"}
"""Top-level shorthand keys of ``worldmodels train`` and the config keys they stand for."""


def expand_shorthands(overrides: Sequence[str]) -> list[str]:
    """Rewrite ``stage=X`` / ``data=DIR`` / ``resume=B`` to their full config keys; others pass."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        out.append(f"{SHORTHANDS[key]}={value}" if sep and key in SHORTHANDS else item)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels train``."""
    parser.add_argument(
        "overrides",
        nargs="*",
        help="config overrides: model=NAME, train.steps=N, stage=tokenizer|lam|dynamics|all, data=DIR, recipe=NAME",
    )
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")


def run(args: argparse.Namespace) -> int:
    """Compose the config, train, and print where the checkpoints and final models went."""
    from worldmodels.config import compose, to_yaml
    from worldmodels.training import train

    cfg = compose(expand_shorthands(args.overrides))
    if args.print_config:
        print(to_yaml(cfg))
        return 0
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(f"run directory: {result.run_dir}")
    for stage, res in result.stages.items():
        loss = f", last loss {res.last_loss:.5g}" if res.last_loss is not None else ""
        state = "already finished" if res.already_done else f"{res.step} steps{loss}"
        print(f"  {stage}: {state}")
        print(f"    checkpoints: {res.checkpoint_dir}")
        print(f"    model:       {res.final_dir}  (WorldModel.from_pretrained)")
    sys.stdout.flush()
    return 0
