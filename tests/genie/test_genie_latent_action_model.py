"""The latent action model: information flow (encoder sees x_t+1, decoder does not), shapes, metrics."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("worldmodels_genie")


def test_shapes_and_embed_returns_codebook_vectors(make_lam) -> None:
    lam = make_lam().eval()
    video = torch.rand(3, 4, 3, 32, 32)
    with torch.no_grad():
        actions = lam.infer(video)
        emb = lam.embed(actions)
    assert actions.shape == (3, 3) and actions.dtype == torch.int64
    assert 0 <= int(actions.min()) and int(actions.max()) < 4
    assert emb.shape == (3, 3, 8) and lam.action_dim == 8 and lam.num_actions == 4
    torch.testing.assert_close(emb, lam.quantizer.codebook[actions].detach())


def test_latent_of_transition_t_sees_the_next_frame_and_nothing_later(make_lam) -> None:
    lam = make_lam().eval()
    video = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        latents = lam.encode_latents(video)
        for t in range(3):
            changed = video.clone()
            changed[:, t + 1] = torch.rand_like(changed[:, t + 1])
            other = lam.encode_latents(changed)
            # transition t (x_t -> x_t+1) must see x_t+1 ...
            assert (other[:, t] - latents[:, t]).abs().amax() > 1e-4, f"latent {t} ignores frame {t + 1}"
            # ... and earlier transitions must not (the encoder is causal).
            torch.testing.assert_close(other[:, :t], latents[:, :t])


def test_action_index_of_transition_t_changes_with_the_next_frame(make_lam) -> None:
    lam = make_lam().eval()
    video = torch.rand(1, 4, 3, 32, 32)
    changed = video.clone()
    changed[:, 2] = torch.rand_like(changed[:, 2])  # x_{t+1} of transition t = 1
    with torch.no_grad():
        z_before, z_after = lam.encode_latents(video)[0, 1], lam.encode_latents(changed)[0, 1]
        # a codebook with one code at each latent (others far away): the index must follow the latent
        lam.quantizer.codebook.copy_(torch.full((4, 8), 100.0))
        lam.quantizer.codebook[0] = z_before
        lam.quantizer.codebook[1] = z_after
        assert lam.infer(video)[0, 1] == 0
        assert lam.infer(changed)[0, 1] == 1


def test_decoder_sees_the_next_frame_only_through_the_action(make_lam) -> None:
    lam = make_lam().eval()
    video = torch.rand(2, 4, 3, 32, 32)
    actions = torch.randn(2, 4, 8)
    with torch.no_grad():
        prediction = lam.predict_next(video[:, :3], actions[:, :3])  # output t predicts frame t+1
        for t in range(3):
            changed = video.clone()
            changed[:, t + 1 :] = torch.rand_like(changed[:, t + 1 :])
            other = lam.predict_next(changed[:, :3], actions[:, :3])
            torch.testing.assert_close(other[:, t], prediction[:, t], msg=f"prediction of x_{t + 1} saw x_{t + 1}")
            other_action = actions.clone()
            other_action[:, t] = torch.randn(2, 8)
            moved = lam.predict_next(video[:, :3], other_action[:, :3])
            assert (moved[:, t] - prediction[:, t]).abs().amax() > 1e-5, f"prediction {t} ignores action {t}"
            torch.testing.assert_close(moved[:, :t], prediction[:, :t])


def test_loss_trains_encoder_through_the_quantised_action(make_lam) -> None:
    lam = make_lam()
    loss, metrics = lam.loss(torch.rand(2, 4, 3, 32, 32))
    loss.backward()
    assert {"loss", "recon_mse", "vq_loss", "perplexity", "usage", "usage_entropy"} <= set(metrics)
    assert all(m.ndim == 0 and not m.requires_grad for m in metrics.values())
    assert lam.encoder_embed.proj.weight.grad.abs().sum() > 0
    assert 0.0 <= float(metrics["usage_entropy"]) <= 1.0


def test_loss_and_actions_share_one_pass_and_match_infer(make_lam) -> None:
    lam = make_lam().eval()
    video = torch.rand(2, 4, 3, 32, 32)
    loss, metrics, actions = lam.loss_and_actions(video)
    torch.testing.assert_close(loss, lam.loss(video)[0])
    assert torch.equal(actions, lam.infer(video)) and not actions.requires_grad


def test_usage_entropy_detects_collapse_to_one_action(make_lam) -> None:
    lam = make_lam().eval()
    with torch.no_grad():
        lam.quantizer.codebook.copy_(torch.full((4, 8), 100.0))
        lam.quantizer.codebook[2] = 0.0  # every latent is nearest to code 2
    _, metrics = lam.loss(torch.rand(2, 4, 3, 32, 32))
    assert float(metrics["usage_entropy"]) == pytest.approx(0.0, abs=1e-6)
    assert float(metrics["perplexity"]) == pytest.approx(1.0)


def test_helpful_errors(make_lam) -> None:
    lam = make_lam()
    with pytest.raises(ValueError, match="at least 2 frames"):
        lam.infer(torch.rand(1, 1, 3, 32, 32))
    with pytest.raises(ValueError, match="integer action indices"):
        lam.embed(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="num_frames >= 2"):
        type(lam)(num_frames=1)


# ---------------------------------------------------------------------------------------- train mode too
LAM_VARIANTS = {
    "vq-layer": {},
    "vq-none-variance": {"latent_norm": "none", "latent_variance_weight": 1.0},
    "fsq": {"quantizer": "fsq", "levels": [2, 2], "latent_norm": "none"},
    "warp": {"decoder_output": "warp"},
}


@pytest.mark.parametrize("variant", sorted(LAM_VARIANTS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_no_information_flows_from_later_frames_or_other_clips(make_lam, mode: str, variant: str) -> None:
    """In training mode as in eval mode: latent t sees x_1..x_t+1 of its own clip only, and the
    decoder's prediction of x_t+1 sees x_1..x_t plus latent t (hence x_t+1 only through the action)."""
    torch.manual_seed(0)
    lam = make_lam(**LAM_VARIANTS[variant]).train(mode == "train")
    if lam.to_flow is not None:  # zero at initialisation: give the warp a displacement to leak through
        torch.nn.init.normal_(lam.to_flow.weight, std=0.5)
    video = torch.rand(3, 4, 3, 32, 32, requires_grad=True)
    latents = lam.encode_latents(video)
    q = lam.quantizer(latents)
    prediction = lam.predict_next(video[:, :-1], q.quantized + (latents - latents.detach()))  # grads via latents
    weights = torch.randn(latents.shape[-1])  # a layer-normed latent sums to zero: weigh its features
    for t in range(3):
        (grad_latent,) = torch.autograd.grad((latents[0, t] * weights).sum(), video, retain_graph=True)
        assert grad_latent[0, t + 1].abs().sum() > 0, f"latent {t} ignores x_{t + 1}"
        assert grad_latent[0, t + 2 :].abs().sum() == 0, f"latent {t} saw frames after x_{t + 1}"
        assert grad_latent[1:].abs().sum() == 0, f"latent {t} of clip 0 saw other clips of the batch"
        (grad_pred,) = torch.autograd.grad(prediction[0, t].sum(), video, retain_graph=True)
        assert grad_pred[0, t + 2 :].abs().sum() == 0, f"the prediction of x_{t + 1} saw later frames"
        assert grad_pred[1:].abs().sum() == 0, f"the prediction of x_{t + 1} of clip 0 saw other clips"


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_indices_of_earlier_transitions_ignore_later_frames_and_other_clips(make_lam, mode: str) -> None:
    torch.manual_seed(0)
    lam = make_lam().train(mode == "train")
    video = torch.rand(8, 4, 3, 32, 32)
    changed = video.clone()
    changed[:, 3] = torch.rand_like(changed[:, 3])  # the last frame of every clip
    changed[4:] = torch.rand_like(changed[4:])  # and the whole of the other half of the batch
    with torch.no_grad():
        before = lam.quantize(video).indices
        after = lam.quantize(changed).indices
    assert torch.equal(before[:4, :2], after[:4, :2])


def test_fsq_latent_actions_are_fixed_corners(make_lam) -> None:
    lam = make_lam(quantizer="fsq", levels=[2, 2, 2], latent_norm="none").eval()
    assert lam.num_actions == 8 and lam.action_dim == 3
    emb = lam.embed(torch.arange(8)[None])
    assert set(emb.unique().tolist()) == {-1.0, 1.0} and len({tuple(v) for v in emb[0].tolist()}) == 8
    loss, metrics = lam.loss(torch.rand(2, 4, 3, 32, 32))
    assert torch.isfinite(loss) and metrics["vq_loss"] == 0


def test_variance_term_enters_the_loss_not_the_latents(make_lam) -> None:
    torch.manual_seed(0)
    plain, regularised = make_lam(latent_norm="none"), make_lam(latent_norm="none", latent_variance_weight=1.0)
    regularised.load_state_dict(plain.state_dict())
    video = torch.rand(2, 4, 3, 32, 32)
    torch.testing.assert_close(plain.encode_latents(video), regularised.encode_latents(video))
    loss, metrics = regularised.loss(video)
    assert "variance_loss" in metrics and float(metrics["variance_loss"]) >= 0


def test_removed_batch_norm_setting_explains_itself(make_lam) -> None:
    with pytest.raises(ValueError, match="leaked"):
        make_lam(latent_norm="batch")


def test_warp_moves_pixels_by_the_flow_and_is_the_identity_at_zero() -> None:
    from worldmodels_genie.latent_action_model import warp_frames

    frames = torch.rand(2, 3, 3, 8, 10)
    torch.testing.assert_close(warp_frames(frames, torch.zeros(2, 3, 2, 8, 10)), frames)
    flow = torch.zeros(2, 3, 2, 8, 10)
    flow[:, :, 0] = 1.0  # each output pixel reads the input one pixel to its right
    flow[:, :, 1] = -2.0  # and two pixels up
    out = warp_frames(frames, flow)
    torch.testing.assert_close(out[..., 2:, :-1], frames[..., :-2, 1:])
    torch.testing.assert_close(out[..., 2:, -1], frames[..., :-2, -1])  # the border repeats
    half = warp_frames(frames, flow * 0.5)  # bilinear between whole-pixel moves
    torch.testing.assert_close(half[..., 1:, :-1], 0.5 * (frames[..., :-1, :-1] + frames[..., :-1, 1:]))


def test_warp_decoder_starts_as_the_residual_decoder_and_learns_a_shift(make_lam) -> None:
    """With zero flow the warp decoder equals the residual one; trained on frames that scroll by one
    pixel, its flow head moves, and it predicts the scroll better than copying the last frame."""
    torch.manual_seed(0)
    warp, residual = make_lam(decoder_output="warp").eval(), make_lam().eval()
    residual.load_state_dict({k: v for k, v in warp.state_dict().items() if not k.startswith("to_flow")})
    frames, actions = torch.rand(2, 3, 3, 32, 32), torch.randn(2, 3, 8)
    with torch.no_grad():
        torch.testing.assert_close(warp.predict_next(frames, actions), residual.predict_next(frames, actions))
    base = torch.rand(4, 3, 32, 48)
    video = torch.stack([base[..., t : t + 32] for t in range(4)], dim=1)  # x_t+1 is x_t moved left by a pixel
    warp.train()
    optimizer = torch.optim.Adam(warp.parameters(), lr=3e-3)
    copy_mse = float(((video[:, 1:] - video[:, :-1]) ** 2).mean())
    for _ in range(60):
        loss, metrics = warp.loss(video)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert warp.to_flow.weight.abs().sum() > 0
    assert float(metrics["recon_mse"]) < 0.5 * copy_mse
