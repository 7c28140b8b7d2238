"""The ST-ViViT tokenizer: shapes, temporal causality of encoder and decoder, input checks."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("worldmodels_genie")


def test_shapes_ranges_and_grid(make_tokenizer) -> None:
    tok = make_tokenizer().eval()
    video = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        tokens = tok.encode(video)
        decoded = tok.decode(tokens)
    assert tokens.shape == (2, 4, 8, 8) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < 32
    assert decoded.shape == video.shape and 0.0 <= float(decoded.min()) and float(decoded.max()) <= 1.0
    assert tok.token_grid(32, 32) == (8, 8) and tok.token_grid(90, 160) == (23, 40)
    assert tok.temporally_causal and tok.vocab_size == 32


def test_non_multiple_frame_size_is_padded_and_cropped(make_tokenizer) -> None:
    tok = make_tokenizer(image_size=[18, 30]).eval()
    video = torch.rand(1, 2, 3, 18, 30)
    tokens = tok.encode(video)
    assert tokens.shape == (1, 2, 5, 8)
    assert tok.decode(tokens).shape == video.shape


def test_encoder_is_causal_in_time(make_tokenizer) -> None:
    tok = make_tokenizer().eval()
    video = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        latents, tokens = tok.encode_latents(video), tok.encode(video)
        for t in range(3):
            for k in range(1, 4 - t):
                changed = video.clone()
                changed[:, t + k] = torch.rand_like(changed[:, t + k])
                torch.testing.assert_close(tok.encode_latents(changed)[:, : t + 1], latents[:, : t + 1])
                assert torch.equal(tok.encode(changed)[:, : t + 1], tokens[:, : t + 1])
            changed = video.clone()
            changed[:, t + 1] = torch.rand_like(changed[:, t + 1])
            assert not torch.allclose(tok.encode_latents(changed)[:, t + 1], latents[:, t + 1])


def test_decoder_is_causal_in_time(make_tokenizer) -> None:
    tok = make_tokenizer().eval()
    tokens = torch.randint(0, 32, (2, 4, 8, 8))
    with torch.no_grad():
        frames = tok.decode(tokens)
        for t in range(3):
            changed = tokens.clone()
            changed[:, t + 1 :] = torch.randint(0, 32, changed[:, t + 1 :].shape)
            other = tok.decode(changed)
            torch.testing.assert_close(other[:, : t + 1], frames[:, : t + 1])
            assert not torch.allclose(other[:, t + 1], frames[:, t + 1])


def test_loss_metrics_and_gradients(make_tokenizer) -> None:
    tok = make_tokenizer()
    loss, metrics = tok.loss(torch.rand(2, 3, 3, 32, 32))
    loss.backward()
    assert {"loss", "recon_mse", "psnr", "vq_loss", "perplexity", "usage", "usage_entropy"} <= set(metrics)
    assert all(m.ndim == 0 and not m.requires_grad for m in metrics.values())
    assert tok.patch_embed.proj.weight.grad.abs().sum() > 0  # straight-through reaches the encoder
    assert tok.quantizer.codebook.grad.abs().sum() > 0


def test_helpful_errors(make_tokenizer) -> None:
    tok = make_tokenizer()
    with pytest.raises(ValueError, match="32x32"):
        tok.encode(torch.rand(1, 2, 3, 16, 16))
    with pytest.raises(ValueError, match="at most 4 frames"):
        tok.encode(torch.rand(1, 5, 3, 32, 32))
    with pytest.raises(ValueError, match="8x8 grid"):
        tok.decode(torch.zeros(1, 2, 4, 4, dtype=torch.long))
