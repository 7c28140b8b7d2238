"""Spatiotemporal vs full space-time attention: forward+backward time of the dynamics as T grows.

The CPU preset's dynamics (``genie-tiny``: 8x8 tokens, width 160, 4 ST blocks) is built twice with
the same settings, once with the paper's factorised attention (``attention="spatiotemporal"``:
spatial attention over the 64 tokens of a frame, causal temporal attention over the T frames of
a token) and once with joint attention over all ``T * 64`` tokens (``attention="full"``,
block-causal in time). The spatial layers and feed-forward layers of the former grow linearly in
T; the attention of the latter grows quadratically. Printed per T: milliseconds per training step
(the fastest of ``--reps``)
(masked cross-entropy forward + backward) of each, their ratio, and each one's growth since the
first T.

Usage::

    python benchmarks/bench_st_attention.py --threads 1          # T = 8, 16, 32 on the CPU
    python benchmarks/bench_st_attention.py --frames 8 16 32 64 --device cuda --bf16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worldmodels  # noqa: E402


def _dynamics(preset: str, attention: str, max_frames: int, device: str) -> torch.nn.Module:
    model = worldmodels.build(preset, dynamics={"attention": attention}, num_frames=max_frames, device=device)
    if model.dynamics.get_config()["name"] != "maskgit":
        raise SystemExit(f"{preset} does not use the maskgit dynamics; pick a Genie preset.")
    return model.dynamics.train()


def _time_step(dyn: torch.nn.Module, tokens: torch.Tensor, emb: torch.Tensor, reps: int, bf16: bool) -> float:
    """Fastest seconds (of ``reps``) of one forward+backward of the masked cross-entropy."""
    device_type = tokens.device.type
    times = []
    for i in range(reps + 1):  # the first run warms up
        if device_type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = dyn.loss(tokens, emb)
        loss.backward()
        if device_type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
        dyn.zero_grad(set_to_none=True)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="genie-tiny")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    max_frames = max(args.frames)
    torch.manual_seed(0)
    models = {mode: _dynamics(args.preset, mode, max_frames, args.device) for mode in ("spatiotemporal", "full")}
    dyn = models["spatiotemporal"]
    h, w = dyn.grid
    print(
        f"{args.preset} dynamics: {h}x{w} tokens/frame, width {dyn.get_config()['dim']}, "
        f"{dyn.get_config()['depth']} blocks, batch {args.batch_size}, device {args.device}"
        f"{', bf16' if args.bf16 else ''}, {torch.get_num_threads()} threads"
    )
    print(f"{'T':>4} {'tokens':>7} {'ST ms':>9} {'full ms':>9} {'full/ST':>8} {'ST growth':>10} {'full growth':>12}")
    first: dict[str, float] = {}
    for t in args.frames:
        g = torch.Generator().manual_seed(t)
        tokens = torch.randint(0, dyn.vocab_size, (args.batch_size, t, h, w), generator=g).to(args.device)
        emb = torch.randn(args.batch_size, t - 1, dyn.action_dim, generator=g).to(args.device)
        row = {}
        for mode, model in models.items():
            torch.manual_seed(0)  # the same training masks for both
            row[mode] = _time_step(model, tokens, emb, args.reps, args.bf16)
            first.setdefault(mode, row[mode])
        st, full = row["spatiotemporal"], row["full"]
        print(
            f"{t:>4} {t * h * w:>7} {st * 1e3:>9.1f} {full * 1e3:>9.1f} {full / st:>8.2f} "
            f"{st / first['spatiotemporal']:>9.2f}x {full / first['full']:>11.2f}x"
        )
    print("growth: time relative to the first T (linear in T doubles per doubling of T, quadratic quadruples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
