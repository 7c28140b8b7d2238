"""The built-in IRIS-style per-frame tokenizer ``frame-vq`` (optionally with a timm backbone)."""

from __future__ import annotations

import pytest
import torch

import worldmodels
from worldmodels.tokenizers import FrameVQTokenizer

SMALL = dict(image_size=32, vocab_size=32, code_dim=8, channels=8)


def _tokenizer(**overrides) -> FrameVQTokenizer:  # noqa: ANN003
    tok = worldmodels.build("frame-vq", kind="tokenizer", **{**SMALL, **overrides})
    assert isinstance(tok, FrameVQTokenizer)
    return tok


def test_registered_as_a_builtin() -> None:
    assert "frame-vq" in worldmodels.list_components("tokenizer")
    assert worldmodels.registry.get_entry("tokenizer", "frame-vq").distribution == "worldmodels"


@pytest.mark.parametrize(("downsample", "grid"), [(8, (4, 4)), (4, (8, 8)), (2, (16, 16))])
def test_shapes_for_each_downsampling(downsample: int, grid: tuple[int, int]) -> None:
    tok = _tokenizer(downsample=downsample).eval()
    video = torch.rand(2, 3, 3, 32, 32)
    with torch.no_grad():
        tokens = tok.encode(video)
        decoded = tok.decode(tokens)
    assert tokens.shape == (2, 3, *grid) and tokens.dtype == torch.int64
    assert tok.token_grid(32, 32) == grid
    assert decoded.shape == video.shape and 0.0 <= float(decoded.min()) and float(decoded.max()) <= 1.0


def test_64x64_frames_give_8x8_or_16x16_tokens() -> None:
    assert _tokenizer(image_size=64, downsample=8).token_grid(64, 64) == (8, 8)
    assert _tokenizer(image_size=64, downsample=4).token_grid(64, 64) == (16, 16)


def test_frames_are_tokenized_independently() -> None:
    tok = _tokenizer().eval()
    video = torch.rand(1, 4, 3, 32, 32)
    changed = video.clone()
    changed[:, 2] = torch.rand_like(changed[:, 2])
    with torch.no_grad():
        a, b = tok.encode_latents(video), tok.encode_latents(changed)
    assert tok.temporally_causal
    torch.testing.assert_close(a[:, [0, 1, 3]], b[:, [0, 1, 3]])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_decode_last_decodes_only_the_newest_frame() -> None:
    tok = _tokenizer().eval()
    tokens = tok.encode(torch.rand(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        torch.testing.assert_close(tok.decode_last(tokens), tok.decode(tokens)[:, -1], atol=1e-6, rtol=0)
        other = tokens.clone()
        other[:, :-1] = (other[:, :-1] + 1) % tok.vocab_size
        assert torch.equal(tok.decode_last(other), tok.decode_last(tokens)), "older frames changed the newest one"


def test_odd_frame_sizes_are_padded_and_cropped() -> None:
    tok = _tokenizer(image_size=[20, 28], downsample=8).eval()
    video = torch.rand(1, 2, 3, 20, 28)
    with torch.no_grad():
        tokens = tok.encode(video)
        assert tokens.shape == (1, 2, 3, 4)
        assert tok.decode(tokens).shape == video.shape


def _train(tok: FrameVQTokenizer, video: torch.Tensor, metric: str, steps: int = 20) -> tuple[list[float], dict]:
    """Adam (lr 3e-3) on ``tok.loss(video)``; returns the ``metric`` of each step and the last metrics."""
    opt = torch.optim.Adam(tok.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, metrics = tok.loss(video)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(metrics[metric]))
    return losses, metrics


def test_loss_lowers_with_training(sprite_clips) -> None:
    tok = _tokenizer(image_size=16, downsample=4)
    losses, _ = _train(tok, sprite_clips.video[:4, :2], "recon_mse")
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3


def test_bad_settings_are_explained() -> None:
    with pytest.raises(ValueError, match="power of two"):
        _tokenizer(downsample=6)
    with pytest.raises(ValueError, match="32x32"):
        _tokenizer().encode(torch.rand(1, 1, 3, 16, 16))


def test_timm_backbone_encoder() -> None:
    pytest.importorskip("timm", reason="timm (optional extra worldmodels[timm]) is not installed")
    tok = _tokenizer(image_size=64, backbone="resnet18", downsample=8).eval()
    video = torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        tokens = tok.encode(video)
    assert tokens.shape == (1, 2, 8, 8)
    assert any("backbone" in name for name, _ in tok.named_parameters())
    loss, _ = tok.train().loss(video)
    loss.backward()
    with pytest.raises(ValueError, match="strides"):
        _tokenizer(image_size=64, backbone="resnet18", downsample=64)
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        _tokenizer(backbone="resnet81")


def test_genie_tiny_adapts_its_dynamics_to_frame_vq() -> None:
    pytest.importorskip("worldmodels_genie")
    model = worldmodels.build("genie-tiny", tokenizer={"name": "frame-vq", "quantizer": "vq", "levels": None,
                                                       "vocab_size": 256, "downsample": 4}, device="meta")
    assert model.token_grid == (16, 16)
    assert model.dynamics.vocab_size == 256 and model.dynamics.grid == (16, 16)
    g = model.dynamics.token_patch
    assert model.dynamics.head.out_features == g * g * 256


def test_fsq_quantizer_sets_the_vocabulary_and_trains_with_the_sprite_loss(sprite_clips) -> None:
    torch.manual_seed(0)
    tok = _tokenizer(image_size=16, downsample=4, quantizer="fsq", levels=[5, 4, 3], recon_loss="l1+grad",
                     hard_patch_fraction=0.1)
    assert tok.vocab_size == 60 and tok.code_dim == 3 and tok.get_config()["vocab_size"] == 60
    video = sprite_clips.video[:4, :2]
    losses, metrics = _train(tok, video, "recon_loss")
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    assert {"recon_loss", "recon_mse", "psnr", "usage"} <= set(metrics) and metrics["vq_loss"] == 0
    tokens = tok.encode(video)
    assert int(tokens.max()) < 60 and tok.decode(tokens).shape == video.shape
    with pytest.raises(ValueError, match="needs levels"):
        _tokenizer(quantizer="fsq")
    with pytest.raises(ValueError, match="reconstruction loss"):
        _tokenizer(recon_loss="perceptual")


def test_hard_patch_term_is_the_mean_error_of_the_worst_patches() -> None:
    from worldmodels.layers.recon_loss import reconstruction_loss

    target = torch.zeros(1, 1, 1, 8, 8)
    recon = target.clone()
    recon[..., :4, :4] = 0.5  # one of four 4x4 patches is wrong by 0.5
    plain = reconstruction_loss(recon, target, "mse")
    hard = reconstruction_loss(recon, target, "mse", hard_fraction=0.25, patch=4)
    torch.testing.assert_close(plain, torch.tensor(0.25 * 0.25))
    torch.testing.assert_close(hard - plain, torch.tensor(0.5))  # the worst quarter of the patches: error 0.5
