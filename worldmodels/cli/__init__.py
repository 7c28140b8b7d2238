"""The ``worldmodels`` command line.

Each subcommand lives in its own module of this package and exposes two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

(or ``add_<name>_arguments`` / ``run_<name>`` when one module serves several subcommands).
:data:`SUBCOMMANDS` maps each subcommand to its module and help text. Every module is imported
to build the parser, so a module keeps its heavy imports (torch models, environments) inside
``run``; that keeps ``worldmodels list`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": ("worldmodels.cli.inspect", "List registered components and presets."),
    "show": ("worldmodels.cli.inspect", "Show a preset's or component's resolved config and parameter count."),
    "train": ("worldmodels.cli.train", "Train a model's stages (tokenizer, lam, dynamics, all) with checkpoints and logs."),
    "play": ("worldmodels.cli.play", "Play a learned world in a window, or headless into a GIF/MP4 file."),
    "serve": ("worldmodels.cli.serve", "Play a learned world in the browser: a local web server (frames over a WebSocket)."),
    "record": ("worldmodels.cli.record", "Record an environment (coinrun, gym:ENV_ID) into a data set of shards."),
    "demo": ("worldmodels.cli.demo", "Record CoinRun, train genie-tiny, evaluate and play: the end-to-end demo."),
    "eval": ("worldmodels.cli.eval", "Evaluate a checkpoint on held-out clips: metrics, report and pictures."),
}
"""Subcommand name -> (module, help text)."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="worldmodels",
        description="Learned world models: list components, record data, train, evaluate and play.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        module = importlib.import_module(module_name)
        adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        adder(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    runner = getattr(module, f"run_{args.command}", None) or module.run
    from worldmodels.build_config import ConfigError
    from worldmodels.checkpoint import CheckpointError
    from worldmodels.registry import RegistryError

    try:
        return int(runner(args) or 0)
    except (RegistryError, ConfigError, CheckpointError) as exc:
        print(f"worldmodels {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
