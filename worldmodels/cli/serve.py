"""``worldmodels serve``: play a learned world in the browser.

Examples::

    worldmodels serve demo_out/run/dynamics/final --data demo_out/data        # http://127.0.0.1:8765/
    worldmodels serve runs/coinrun/model --port 9000 --report runs/coinrun/model/eval/report.json

The game's arrow keys and space play the latent actions the recorded true actions point to (from
the checkpoint's ``worldmodels eval`` report, or counted from ``--data``); keys 1..A play the
latent actions themselves.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels serve``."""
    parser.add_argument("source", metavar="CHECKPOINT_OR_PRESET",
                        help="a checkpoint directory (WorldModel.save_pretrained) or a preset name (random weights)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; other addresses warn)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="a recorded data set: held-out prompts, and the key mapping when no eval report has one")
    parser.add_argument("--split", default="test", help="the data set split to use (default test)")
    parser.add_argument("--report", metavar="REPORT_JSON", default=None,
                        help="a worldmodels eval report.json for the key mapping (default: the checkpoint's, if any)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto (default): bf16 only where a step measures faster; fp32; bf16 autocast")
    parser.add_argument("--sampler-steps", dest="sampler_steps", type=int, metavar="K",
                        help="the sampler's steps per frame (MaskGIT iterations for Genie)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model's generation (slow first steps; faster play after)")
    parser.add_argument("--threads", type=int, metavar="N", default=None,
                        help="CPU threads for torch (default: torch's); with the browser on the same few cores, "
                             "one fewer than the cores can play faster")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    try:
        from worldmodels.serve.app import serve
    except ImportError as exc:
        print(f"worldmodels serve: error: {exc}; install the server with pip install 'worldmodels[serve]'",
              file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"worldmodels serve: error: --port must lie in 1..65535, got {args.port}", file=sys.stderr)
        return 2
    bf16 = {"auto": "auto", "fp32": False, "bf16": True}[args.precision]
    try:
        serve(args.source, host=args.host, port=args.port, data=args.data, report=args.report, split=args.split,
              bf16=bf16, sampler_steps=args.sampler_steps, threads=args.threads, compile=args.compile)
    except (FileNotFoundError, ValueError) as exc:
        print(f"worldmodels serve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
