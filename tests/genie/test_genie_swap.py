"""Every registered discrete tokenizer fits genie-tiny in place of st-vivit; the WorldModel API runs with Genie parts."""

from __future__ import annotations

import pytest
import torch

import worldmodels
from worldmodels import registry

pytest.importorskip("worldmodels_genie")

# genie-tiny with a short context and few MaskGIT steps, so each case takes a few seconds
SMALL_TINY = {"num_frames": 3, "sampler": {"steps": 4}}


DISCRETE_TOKENIZERS = [name for name in worldmodels.list_components("tokenizer")
                       if not registry.get_entry("tokenizer", name).obj.continuous]  # Genie's dynamics reads token ids


@pytest.mark.parametrize("tokenizer", DISCRETE_TOKENIZERS)
def test_every_tokenizer_works_in_genie_tiny(tokenizer: str) -> None:
    model = worldmodels.build("genie-tiny", tokenizer=tokenizer, **SMALL_TINY)
    h, w = model.token_grid
    assert model.dynamics.grid == (h, w) and model.dynamics.vocab_size == model.tokenizer.vocab_size
    video = torch.rand(1, 3, 3, 64, 64)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3)
    for stage_loss in (model.tokenizer_loss, model.dynamics_loss):  # the paper's two training stages
        loss, metrics = stage_loss(video)
        assert torch.isfinite(loss) and all(m.ndim == 0 for m in metrics.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    step = model.play(video[:, :2], torch.tensor([1]), generator=torch.Generator().manual_seed(0))
    assert step.frame.shape == (1, 3, 64, 64) and step.tokens.shape == (1, h, w)
    assert int(step.tokens.max()) < model.tokenizer.vocab_size


def test_dynamics_loss_stops_gradient_into_the_action_codebook_but_trains_the_lam() -> None:
    model = worldmodels.build("genie-tiny", **SMALL_TINY)
    loss, metrics = model.dynamics_loss(torch.rand(2, 3, 3, 64, 64))
    loss.backward()
    assert {"lam/recon_mse", "lam/usage_entropy", "dynamics/loss", "dynamics/masked_accuracy"} <= set(metrics)
    assert model.action_model.encoder_embed.proj.weight.grad.abs().sum() > 0  # LAM loss trains the LAM
    assert model.dynamics.action_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.tokenizer.parameters())  # frozen tokenizer


def test_generate_is_the_same_with_and_without_the_cache() -> None:
    model = worldmodels.build("genie-tiny", num_frames=4, sampler={"steps": 5, "temperature": 0.0}).eval()
    prompt = torch.rand(1, 3, 64, 64)
    actions = torch.tensor([[0, 5, 7, 2, 1]])
    cached = model.generate(prompt, actions, use_cache=True)
    uncached = model.generate(prompt, actions, use_cache=False)
    assert cached.shape == (1, 6, 3, 64, 64)
    torch.testing.assert_close(cached, uncached)


def test_actions_change_the_generated_frame() -> None:
    # without the copy prior: at initialisation it would make every action's argmax "as before"
    model = worldmodels.build("genie-tiny", num_frames=3, sampler={"steps": 4, "temperature": 0.0},
                              dynamics={"copy_prior": False}).eval()
    frames = torch.rand(1, 2, 3, 64, 64)
    tokens = [model.play(frames, a).tokens for a in range(model.num_actions)]
    assert len({tuple(t.flatten().tolist()) for t in tokens}) > 1


def test_actions_change_the_next_frame_logits_with_the_copy_prior() -> None:
    model = worldmodels.build("genie-tiny", num_frames=3).eval()
    frames = torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.encode(frames)
        logits = [model.dynamics(tokens, model.action_model.embed(torch.tensor([[a]])))[:, 1] for a in (0, 1)]
    assert (logits[0] - logits[1]).abs().amax() > 1e-4


def test_save_and_load_reproduce_play(tmp_path) -> None:
    model = worldmodels.build("genie-tiny", **SMALL_TINY).eval()
    frames = torch.rand(1, 2, 3, 64, 64)
    before = model.play(frames, 2, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "ckpt")
    loaded = worldmodels.WorldModel.from_pretrained(tmp_path / "ckpt").eval()
    after = loaded.play(frames, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(before.tokens, after.tokens) and torch.equal(before.frame, after.frame)
