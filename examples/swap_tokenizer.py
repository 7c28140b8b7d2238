"""Swap one component of a preset: genie-tiny with its frame-vq tokenizer, and with Genie's ST-ViViT.

The same swap three ways, which build the same architecture:

* Python keyword: ``worldmodels.build("genie-tiny", tokenizer="st-vivit")``;
* Hydra composition: ``build(compose(["model=genie-tiny", "tokenizer=st-vivit"]))``;
* command line: ``worldmodels show genie-tiny tokenizer=st-vivit`` (and ``worldmodels train ...``).

The parts that depend on the tokenizer follow it: the dynamics' vocabulary and token grid are
derived from the tokenizer the model is built with (st-vivit's 8x8-pixel patches give an 8x8
grid of 512 ids; a coarser frame-vq a 4x4 grid, and the dynamics is built for that). Each model
then computes a tokenizer loss, a co-training loss and one generated frame on the same random clip.

    python examples/swap_tokenizer.py
    python examples/swap_tokenizer.py --backbone resnet18     # frame-vq with a timm encoder (needs timm)
    python examples/swap_tokenizer.py --tiny
"""

from __future__ import annotations

import argparse

import torch

import worldmodels
from worldmodels.config import compose


def describe(label: str, model: worldmodels.WorldModel, video: torch.Tensor) -> None:
    """Print the tokenizer, token grid, vocabulary, parameter counts, losses and a generated frame's shape."""
    h, w = model.token_grid
    with torch.no_grad():
        tok_loss, _ = model.tokenizer_loss(video)
        dyn_loss, _ = model.dynamics_loss(video)
        frame = model.play(video[:, :2], action=1).frame  # B C H W
    params = worldmodels.count_parameters(model.tokenizer) / 1e6
    print(f"{label:<34} tokenizer {model.tokenizer.registered_name:<9} grid {h}x{w}  vocab {model.tokenizer.vocab_size:>4}"
          f"  dynamics vocab {model.dynamics.vocab_size:>4}  tokenizer {params:5.2f}M params"
          f"  losses {float(tok_loss):.3f} / {float(dyn_loss):.3f}  next frame {tuple(frame.shape)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="genie-tiny")
    parser.add_argument("--backbone", help="a timm model name for frame-vq's encoder, e.g. resnet18")
    parser.add_argument("--tiny", action="store_true", help="a 2-clip batch of 3 frames and a 2-step sampler")
    args = parser.parse_args(argv)

    frames = 3 if args.tiny else 8
    sampler = {"steps": 2} if args.tiny else {}
    tokenizer: str | dict = "st-vivit" if not args.backbone else {"name": "frame-vq", "backbone": args.backbone}

    torch.manual_seed(0)
    original = worldmodels.build(args.preset, sampler=sampler)
    torch.manual_seed(0)
    swapped = worldmodels.build(args.preset, tokenizer=tokenizer, sampler=sampler)

    overrides = [f"model={args.preset}", "tokenizer=st-vivit" if not args.backbone else f"tokenizer.backbone={args.backbone}"]
    if args.tiny:
        overrides.append("sampler.steps=2")
    composed = worldmodels.build(compose(overrides))
    assert isinstance(original, worldmodels.WorldModel) and isinstance(swapped, worldmodels.WorldModel)
    assert composed.config == swapped.config, "Hydra composition and build(...) keywords should agree"

    video = torch.rand(2, frames, original.in_channels, *original.image_size)
    describe(f"build({args.preset!r})", original, video)
    describe(f"build({args.preset!r}, tokenizer=...)", swapped, video)
    # Settings go with the name; the dynamics' vocabulary and grid follow the tokenizer.
    coarse_cfg = {"name": "frame-vq", "downsample": 16}
    coarse = worldmodels.build(args.preset, tokenizer=coarse_cfg, sampler=sampler)
    assert isinstance(coarse, worldmodels.WorldModel)
    describe("  ... frame-vq with downsample=16", coarse, video)
    print(f"compose({overrides}) builds the same config as the keyword swap: "
          f"{composed.config['tokenizer']['name']}, {composed.config['dynamics']['vocab_size']} dynamics tokens")
    print(f"command line: worldmodels show {args.preset} {' '.join(overrides[1:])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
