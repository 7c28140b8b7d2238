"""Train ``genie-tiny``'s latent action model alone on a recorded data set and score it on the test split.

The fourth LAM series of docs/experiments.rst came from this script (the demo's data set recorded
with ``worldmodels record coinrun --out DATA --episodes 1000 --frames-per-episode 64 --policy sticky
--env-kwargs use_backgrounds=false restrict_themes=true``)::

    python docs/_experiments/lam_alone.py DATA                                  # the default LAM
    python docs/_experiments/lam_alone.py DATA --lam '{"num_actions": 32}'      # any genie-lam setting
    python docs/_experiments/lam_alone.py DATA --variant attention-pool         # a change not in the library
    python docs/_experiments/lam_alone.py DATA --variant true-actions           # decoder given the true actions
    python docs/_experiments/lam_alone.py DATA --variant tokens --tokenizer RUN/tokenizer/final

It prints one JSON line: NMI against the collapsed actions (left, right, jump, stay), the linear
probe, the few-label mapping at K=200 and chance, code usage, and the decoder's next-frame MSE on
the test clips (for ``tokens``, its cross-entropy instead). Variants:

* ``attention-pool`` / ``max-pool``: the latent read from the frame's patches by a learned
  attention query or a max instead of the mean;
* ``true-actions`` / ``no-actions``: the decoder conditioned on an embedding of the recorded action
  (or of nothing) instead of the latent code: how much of the next frame the controls explain;
* ``codes+true-actions``: the latent code plus the recorded action's embedding: what the controls add
  to what the codes already explain;
* ``tokens``: the decoder predicts the frozen tokenizer's tokens of the next frame (cross-entropy,
  copying the last frame's tokens made cheap by a learned logit bonus) instead of its pixels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import types
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange

from worldmodels import resolve_model_config
from worldmodels.data.clips import ClipDataset
from worldmodels.eval.ground_truth import ground_truth_metrics
from worldmodels.eval.held_out import load_held_out_clips
from worldmodels.training import TrainConfig, Trainer
from worldmodels.training.checkpointing import seed_everything
from worldmodels.world_model import WorldModel
from worldmodels_genie.latent_action_model import LATENT_STD

VARIANTS = ("none", "attention-pool", "max-pool", "true-actions", "no-actions", "codes+true-actions", "tokens")


def _standardise(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    return F.layer_norm(vectors.float(), (dim,)) * LATENT_STD


def patch_pooling(lam: Any, how: str) -> None:
    """Read each latent from its frame's patches by attention or max instead of the mean."""
    width = lam.to_latent.in_features
    if how == "attention-pool":
        lam.pool_query = torch.nn.Parameter(torch.zeros(width))
        lam.pool_key = torch.nn.Linear(width, width)

    def encode_latents(self: Any, video: torch.Tensor) -> torch.Tensor:
        self._check(video)
        previous = torch.cat([video[:, :1], video[:, :-1]], dim=1)
        video = torch.cat([video, video - previous], dim=2)
        h_BTND = self.encoder(self.encoder_embed(video) + self.encoder_pos(video.shape[1]))[:, 1:]
        if how == "max-pool":
            pooled_BTD = h_BTND.amax(dim=2)
        else:
            weights_BTN = torch.softmax((self.pool_key(h_BTND) * self.pool_query).sum(-1) / width**0.5, dim=2)
            pooled_BTD = (weights_BTN[..., None] * h_BTND).sum(2)
        return _standardise(self.to_latent(pooled_BTD), self.action_dim)

    lam.encode_latents = types.MethodType(encode_latents, lam)


def patch_conditioning(lam: Any, how: str, num_true: int) -> None:
    """Condition the decoder on the recorded actions (with or without the codes), or on nothing."""
    lam.true_embed = torch.nn.Embedding(num_true, lam.action_dim)

    def loss(self: Any, video: torch.Tensor, actions: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        if actions is None:
            raise ValueError("this variant needs the recorded actions in the batch")
        known = actions.clamp_min(0).long() if how != "no-actions" else torch.zeros_like(actions).long()
        vectors = _standardise(self.true_embed(known), self.action_dim)
        extra = torch.zeros(())
        if how == "codes+true-actions":
            q = self.quantizer(self.encode_latents(video))
            vectors, extra = vectors + q.quantized, q.loss
        mse = F.mse_loss(self.predict_next(video[:, :-1], vectors).float(), video[:, 1:].float())
        return mse + extra, {"loss": mse.detach(), "recon_mse": mse.detach()}

    lam.loss = types.MethodType(loss, lam)


def patch_token_decoder(lam: Any, tokenizer_dir: str) -> None:
    """The decoder predicts the frozen tokenizer's tokens of the next frame instead of its pixels."""
    tokenizer = WorldModel.from_pretrained(tokenizer_dir).tokenizer.eval().requires_grad_(False)
    vocab, side = tokenizer.vocab_size, lam.patch_size // tokenizer.downsample  # tokens per LAM patch side
    width = lam.action_proj.out_features
    lam.token_embed = torch.nn.Embedding(vocab, 16)
    lam.token_in = torch.nn.Linear(16 * side * side, width)
    lam.token_out = torch.nn.Linear(width, side * side * vocab)
    lam.copy_bonus = torch.nn.Parameter(torch.tensor(4.0))
    gh, gw = lam.grid

    def predict(self: Any, tokens_BThw: torch.Tensor, vectors_BTE: torch.Tensor) -> torch.Tensor:
        e = rearrange(self.token_embed(tokens_BThw), "b t (gh ph) (gw pw) c -> b t (gh gw) (ph pw c)", gh=gh, gw=gw)
        x = self.token_in(e) + self.decoder_pos(tokens_BThw.shape[1]) + self.action_proj(vectors_BTE)[:, :, None, :]
        logits = rearrange(self.token_out(self.decoder(x)), "b t (gh gw) (ph pw v) -> b t (gh ph) (gw pw) v",
                           gh=gh, gw=gw, ph=side, pw=side)
        return logits + self.copy_bonus * F.one_hot(tokens_BThw, vocab).to(logits.dtype)

    def loss(self: Any, video: torch.Tensor, actions: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        with torch.no_grad():
            tokens = tokenizer.encode(video).long()
        q = self.quantizer(self.encode_latents(video))
        ce = F.cross_entropy(predict(self, tokens[:, :-1], q.quantized).flatten(0, -2).float(), tokens[:, 1:].flatten())
        return ce + q.loss, {"loss": (ce + q.loss).detach(), "recon_mse": ce.detach()}

    lam.loss = types.MethodType(loss, lam)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--lam", default="{}", help="genie-lam settings as JSON")
    parser.add_argument("--variant", default="none", choices=VARIANTS)
    parser.add_argument("--tokenizer", default=None, help="a trained tokenizer checkpoint (variant tokens)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-data", default=None, help="score on this data set's test split (default: DATA's)")
    parser.add_argument("--clips", type=int, default=400)
    args = parser.parse_args()

    seed_everything(args.seed)
    model = WorldModel.from_config(resolve_model_config("genie-tiny", action_model=json.loads(args.lam)))
    lam = model.action_model
    train = ClipDataset(args.data, num_frames=model.num_frames, image_size=model.image_size, split="train")
    if args.variant in ("attention-pool", "max-pool"):
        patch_pooling(lam, args.variant)
    elif args.variant in ("true-actions", "no-actions", "codes+true-actions"):
        patch_conditioning(lam, args.variant, num_true=32)
    elif args.variant == "tokens":
        if not args.tokenizer:
            parser.error("--variant tokens needs --tokenizer RUN/tokenizer/final")
        patch_token_decoder(lam, args.tokenizer)
    config = TrainConfig(stage="lam", steps=args.steps, batch_size=8, lr=1e-3, warmup=30, min_lr_ratio=0.1,
                         run_dir=tempfile.mkdtemp(prefix="lam-alone-"), progress=False, tensorboard=False,
                         checkpoint_every=0, image_every=0, log_every=10**9, seed=args.seed, precision="fp32")
    start = time.time()
    trainer = Trainer(model, config, train)
    trainer.fit()
    seconds = time.time() - start

    wm = trainer.model.eval()
    clips = load_held_out_clips(args.eval_data or args.data, wm, "test", args.clips)
    latent, vectors, errors = [], [], []
    with torch.no_grad():
        for i in range(0, len(clips.video), 32):
            video, actions = clips.video[i:i + 32], clips.actions[i:i + 32]
            latent.append(wm.action_model.infer(video).long())
            vectors.append(wm.action_model.latent_vectors(video).float())
            errors.append(float(wm.action_model.loss(video, actions)[1]["recon_mse"]))
    latent_NT = torch.cat(latent)
    truth = ground_truth_metrics(latent_NT, clips.actions, wm.num_actions, clips.num_true_actions,
                                 action_names=clips.action_names, action_groups=clips.action_groups,
                                 vectors=torch.cat(vectors), fit_fraction=0.5, random_trials=20, seed=0)
    collapsed = truth["collapsed"]
    few = collapsed["few_label"]
    k200 = round(few["accuracy"][few["counts"].index(200)], 3) if 200 in few["counts"] else None  # too few clips
    print(json.dumps({
        "variant": args.variant, "lam": json.loads(args.lam), "steps": args.steps, "seed": args.seed,
        "train_seconds": round(seconds), "nmi": round(collapsed["nmi"], 3),
        "nmi_random": round(collapsed["nmi_random"]["mean"], 3),
        "linear_probe": round(collapsed["linear_probe"]["accuracy"], 3),
        "few_label_k200": k200, "chance": round(few["chance_accuracy"], 3),
        "usage": torch.bincount(latent_NT.flatten(), minlength=wm.num_actions).tolist(),
        "test_next_frame_error": round(sum(errors) / len(errors), 5),
    }))


if __name__ == "__main__":
    main()
