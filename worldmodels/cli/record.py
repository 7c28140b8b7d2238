"""``worldmodels record``: roll out an environment with a policy and save a data set of uint8 shards."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_EPILOG = """\
environments:
  coinrun                    Procgen CoinRun (the Genie paper's case study; pip install 'worldmodels[coinrun]')
  procgen:GAME               another Procgen game, e.g. procgen:ninja
  gym:ENV_ID                 any gymnasium env rendering rgb_array, e.g. gym:ALE/Breakout-v5 (ale-py),
                             gym:MiniGrid-Empty-8x8-v0 (minigrid)

examples:
  worldmodels record coinrun --out data/coinrun --episodes 1000 --frames-per-episode 500
  worldmodels record gym:MiniGrid-Empty-8x8-v0 --out data/minigrid --episodes 100 \\
      --frames-per-episode 64 --policy scripted --splits train=80,val=10,test=10

Load the result with
  ClipDataset("DIR", num_frames=16, split="train")   (worldmodels.data.clips)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels record``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("env", help="coinrun, procgen:GAME or gym:ENV_ID")
    parser.add_argument("--out", required=True, help="data set directory to create")
    parser.add_argument("--episodes", type=int, default=None,
                        help="total episodes over all splits (optional when --splits gives counts)")
    parser.add_argument("--frames-per-episode", type=int, default=500, help="most frames of one episode (default 500)")
    parser.add_argument("--policy", default="biased", help="random, biased, sticky or scripted (default biased)")
    parser.add_argument("--image-size", default="64", help="stored frame size: S or HxW (default 64)")
    parser.add_argument("--splits", default="train=0.8,val=0.1,test=0.1",
                        help="fractions or episode counts per split; each split gets its own level seeds "
                             "(default train=0.8,val=0.1,test=0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the policy and of level sampling")
    parser.add_argument("--start-level", type=int, default=0, help="first level seed of the first split")
    parser.add_argument("--num-levels", type=int, default=None,
                        help="level seeds per split (default: one per episode of the split)")
    parser.add_argument("--num-envs", type=int, default=64, help="parallel Procgen environments (default 64)")
    parser.add_argument("--distribution-mode", default="hard", help="Procgen distribution mode (default hard)")
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra environment options, e.g. use_backgrounds=false or full_action_space=true")
    parser.add_argument("--frames-per-shard", type=int, default=4096, help="frames per shard file (default 4096)")
    parser.add_argument("--compress", action="store_true",
                        help="compress shards (CoinRun: ~10x smaller, slower to write and not memory-mappable)")
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.gif of the first episode")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _parse_image_size(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text)
    except ValueError:
        raise SystemExit(
            f"worldmodels record: --image-size must be S or HxW (e.g. 64 or 64x96), got {text!r}."
        ) from None


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_kwargs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"worldmodels record: --env-kwargs entries are KEY=VALUE, got {item!r}.")
        out[key] = _parse_value(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Record the data set and print where it went and what it holds."""
    from worldmodels.data.recorders import get_recorder

    options = _parse_kwargs(args.env_kwargs)
    if args.env.split(":")[0] in ("coinrun", "procgen"):
        options = {"distribution_mode": args.distribution_mode, "num_envs": args.num_envs, **options}
    try:
        recorder = get_recorder(args.env, **options)
        result = recorder.record(
            args.out,
            episodes=args.episodes,
            frames_per_episode=args.frames_per_episode,
            policy=args.policy,
            image_size=_parse_image_size(args.image_size),
            splits=args.splits,
            seed=args.seed,
            start_level=args.start_level,
            num_levels=args.num_levels,
            frames_per_shard=args.frames_per_shard,
            compress=args.compress,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ValueError, ImportError, FileExistsError) as exc:
        print(f"worldmodels record: {exc}", file=sys.stderr)
        return 2
    manifest = result.manifest
    counts = manifest["counts"]
    h, w = manifest["image_size"]
    print(f"Recorded {manifest['env']['name']} with the {manifest['policy']['name']} policy into {result.directory}")
    print(f"  {counts['episodes']} episodes, {counts['frames']} frames of {h}x{w}, "
          f"{counts['labelled_transitions']}/{counts['transitions']} transitions with true actions")
    print(f"  {result.seconds:.1f} s, {result.frames_per_second:,.0f} frames/s")
    for name, split in manifest["splits"].items():
        lo, hi = split.get("level_seeds", [None, None])
        print(f"  {name:<6} {split['episodes']:>6} episodes {split['frames']:>9} frames  "
              f"{len(split['shards'])} shard(s)  level seeds [{lo}, {hi})")
    size = sum(s["bytes"] for s in manifest["shards"])
    print(f"  {size / 2**20:.1f} MiB in {len(manifest['shards'])} shard(s); "
          f"manifest {result.directory / 'manifest.json'}")
    if args.preview and manifest["shards"]:
        from worldmodels.data.shards import load_shard
        from worldmodels.data.video_io import write_gif

        first = manifest["shards"][0]
        _, offset, length, _ = first["episodes"][0]
        frames = load_shard(result.directory / first["path"])["frames"][offset : offset + length]
        path = write_gif(result.directory / "preview.gif", frames, fps=float(manifest.get("fps") or 15))
        print(f"  preview {path}")
    split = "train" if "train" in manifest["splits"] else next(iter(manifest["splits"]))
    print(f"Load it with: ClipDataset({str(result.directory)!r}, num_frames=16, split={split!r})")
    return 0
