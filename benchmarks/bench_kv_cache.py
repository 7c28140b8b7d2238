"""Next-frame sampling time of the MaskGIT dynamics with and without the temporal key/value cache.

The CPU preset's dynamics and MaskGIT sampler (``genie-tiny``, random weights: speed does not
depend on training) predict one frame after a full context of ``num_frames - 1`` frames, at 1, 8
and 25 MaskGIT steps. Without the cache every step reruns the whole context; with it the context
runs once (``prefill``) and each step computes only the new frame's tokens (``next_logits``).
Cached and uncached calls alternate, so a noisy shared machine affects both alike, and the
fastest of ``--reps`` runs is kept. Printed per step count: milliseconds per frame of each, the
speed-up, and (cached) the prefill share.

On a GPU the small presets are bound by kernel-launch latency, not arithmetic, so the cache saves
little there (CUDA graphs or ``torch.compile`` address that); it pays where compute dominates: on
CPUs and for large models.

Usage::

    python benchmarks/bench_kv_cache.py --threads 1     # on a shared 2-core machine, 1 thread is steadier
    python benchmarks/bench_kv_cache.py --steps 1 8 25 --context 15 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worldmodels  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:  # noqa: ANN001
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="genie-tiny")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 8, 25])
    parser.add_argument("--context", type=int, default=None, help="context frames (default num_frames - 1)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = worldmodels.build(args.preset, device=args.device).eval()
    dyn = model.dynamics
    context = args.context or model.num_frames - 1
    h, w = model.token_grid
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, dyn.vocab_size, (args.batch_size, context, h, w), generator=g).to(args.device)
    actions = torch.randint(0, model.num_actions, (args.batch_size, context), generator=g).to(args.device)
    with torch.no_grad():
        emb = model.action_model.embed(actions)
        prefill = min(_timed(lambda: dyn.prefill(tokens, emb), args.device) for _ in range(args.reps + 1))
    print(
        f"{args.preset}: {context} context frames of {h}x{w} tokens, batch {args.batch_size}, device {args.device}, "
        f"{torch.get_num_threads()} threads; prefill {prefill * 1e3:.1f} ms"
    )
    print(f"{'steps':>5} {'cached ms':>10} {'uncached ms':>12} {'speed-up':>9} {'prefill share':>14}")
    for steps in args.steps:
        sampler = worldmodels.build("maskgit", kind="sampler", steps=steps, temperature=2.0)
        times: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(args.reps + 1):  # the first round warms up
            for use_cache in (True, False):
                gen = torch.Generator(device=args.device).manual_seed(rep)
                seconds = _timed(
                    lambda s=sampler, g=gen, c=use_cache: s.sample(dyn, tokens, emb, generator=g, use_cache=c), args.device
                )
                if rep:
                    times[use_cache].append(seconds)
        cached, uncached = min(times[True]), min(times[False])
        print(
            f"{steps:>5} {cached * 1e3:>10.1f} {uncached * 1e3:>12.1f} {uncached / cached:>8.1f}x "
            f"{prefill / cached:>13.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
