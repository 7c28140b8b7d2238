"""``worldmodels list`` and ``worldmodels show``: what is registered, and what a preset builds."""

from __future__ import annotations

import argparse
import json

from worldmodels import registry
from worldmodels.registry import KINDS


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels list``."""
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'genie-*'")
    parser.add_argument("--kind", choices=KINDS, help="list only this kind")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_list(args: argparse.Namespace) -> int:
    """Print the registered names of each kind with their providing distribution."""
    kinds = [args.kind] if args.kind else list(KINDS)
    rows: dict[str, list[dict[str, str]]] = {}
    for kind in kinds:
        rows[kind] = [
            {"name": e.name, "distribution": e.distribution, "description": e.description}
            for e in registry.entries(kind)
            if registry.fnmatch.fnmatchcase(e.name, args.pattern)
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for kind, entries in rows.items():
        print(f"{kind}:")
        if not entries:
            print("  (none)")
        width = max((len(e["name"]) for e in entries), default=0)
        for e in entries:
            print(f"  {e['name']:<{width}}  [{e['distribution']}]  {e['description']}")
    return 0


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels show``."""
    parser.add_argument("name", help="a preset or component name, or a checkpoint directory")
    parser.add_argument("--kind", choices=KINDS, help="the kind, when the name is registered under several")
    parser.add_argument("overrides", nargs="*", help="config overrides such as tokenizer=frame-vq sampler.steps=8")


def run_show(args: argparse.Namespace) -> int:
    """Build on the meta device (no memory) and print the resolved config and parameter counts.

    A preset's overrides go through Hydra (:func:`worldmodels.config.compose`), exactly as in
    ``worldmodels train``; a component's are parsed as ``key=value``.
    """
    from worldmodels.build import build, count_parameters
    from worldmodels.config import compose, parse_overrides
    from worldmodels.world_model import WorldModel

    kinds = [args.kind] if args.kind else registry.find_kinds(args.name)
    if not kinds:
        registry.get_entry("model", args.name)  # raises the "did you mean" error
    if kinds == ["model"]:
        model = build(compose([f"model={args.name}", *args.overrides]), device="meta")
    else:
        model = build(args.name, kind=args.kind, device="meta", **parse_overrides(args.overrides))
    if isinstance(model, WorldModel):
        config = model.config
        counts = {k: count_parameters(getattr(model, k)) for k in ("tokenizer", "action_model", "dynamics", "sampler")}
        counts["total"] = count_parameters(model)
    else:
        config = model.get_config()
        counts = {"total": count_parameters(model)}
    print(json.dumps(config, indent=2))
    print("parameters:")
    for part, n in counts.items():
        print(f"  {part:<13} {n:>15,}  ({_human(n)})")
    return 0


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
