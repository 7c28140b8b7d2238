"""How much of the control a_t the frames around it tell: a small supervised CNN per view.

The views of transition ``t`` (from frame ``t`` to ``t+1``): the history ``(x_{t-1}, x_t)``, which a
latent action model's causal decoder also sees; the pair ``(x_t, x_{t+1})``; and both. The
actions are collapsed to what they visibly do (CoinRun: left, right, jump, stay). Each view trains
its own classifier on the train split and is scored on the test split (accuracy, the majority
class's share, NMI of the predictions with the truth)::

    python docs/_experiments/action_information.py DATA --steps 600

What the history already tells is what a next-frame objective gives the latent no reason to carry
(docs/experiments.rst, fourth LAM series).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels import build
from worldmodels.eval.held_out import load_held_out_clips
from worldmodels.eval.latent_actions import collapse_actions, contingency_table, nmi_from_table

VIEWS = {"history": (-1, 0), "pair": (0, 1), "history+next": (-1, 0, 1)}
"""Frame offsets from ``t`` that each view stacks."""


class FrameClassifier(nn.Module):
    """Stacked 64x64 frames and their successive differences -> action logits."""

    def __init__(self, frames: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3 * (2 * frames - 1), 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, classes),
        )  # fmt: skip

    def forward(self, frames_BCHW: Tensor) -> Tensor:
        x = frames_BCHW.float() / 255
        diffs = [x[:, 3 * i + 3:3 * i + 6] - x[:, 3 * i:3 * i + 3] for i in range(x.shape[1] // 3 - 1)]
        return self.net(torch.cat([x, *diffs], dim=1))


def views(video_NTCHW: Tensor, labels_NT: Tensor, offsets: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """The stacked frames of every transition ``t = 1..T-2`` with a known action, and its label."""
    t_max = video_NTCHW.shape[1]
    stacks = [torch.cat([video_NTCHW[:, t + o] for o in offsets], dim=1) for t in range(1, t_max - 1)]
    x, y = torch.cat(stacks), torch.cat([labels_NT[:, t] for t in range(1, t_max - 1)])
    return x[y >= 0], y[y >= 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--train-clips", type=int, default=3000)
    parser.add_argument("--test-clips", type=int, default=600)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build("genie-tiny")  # only its clip length and frame size

    def load(split: str, count: int) -> tuple[Tensor, Tensor, list[str]]:
        clips = load_held_out_clips(args.data, model, split, count)
        if not clips.action_groups:
            raise SystemExit(f"{args.data} has no action groups in its manifest: nothing to collapse the actions to.")
        names = list(clips.action_groups)
        labels = collapse_actions(clips.actions, [clips.action_groups[g] for g in names])
        return (clips.video * 255).to(torch.uint8), labels, names

    train_video, train_labels, names = load("train", args.train_clips)
    test_video, test_labels, _ = load("test", args.test_clips)
    results = {}
    for view, offsets in VIEWS.items():
        x, y = views(train_video, train_labels, offsets)
        x_test, y_test = views(test_video, test_labels, offsets)
        net = FrameClassifier(len(offsets), len(names))
        optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
        start = time.time()
        for _ in range(args.steps):
            pick = torch.randint(0, len(x), (128,))
            loss = F.cross_entropy(net(x[pick]), y[pick])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            predicted = torch.cat([net(x_test[i:i + 512]).argmax(1) for i in range(0, len(x_test), 512)])
        k = len(names)
        results[view] = {
            "accuracy": round((predicted == y_test).float().mean().item(), 3),
            "majority": round(torch.bincount(y_test, minlength=k).max().item() / len(y_test), 3),
            "nmi": round(nmi_from_table(contingency_table(predicted, y_test, k, k)), 3),
            "seconds": round(time.time() - start),
        }
        print(view, results[view], flush=True)
    print(json.dumps({"data": args.data, "groups": names, "views": results}))


if __name__ == "__main__":
    main()
