"""Small components registered by the tests only (the library ships no placeholders).

They are real (trainable, shape-correct) but deliberately simple, so registry, build, config,
checkpoint and trainer tests do not depend on the Genie plug-in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodels import ActionModel, Dynamics, Sampler, Tokenizer, register
from worldmodels.interfaces import LossOutput


def _pair(size: int | list[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@register("tokenizer", "toy-tokenizer", override=True)
class ToyTokenizer(Tokenizer):
    """Per-patch nearest-code quantiser with a linear encoder and decoder."""

    def __init__(self, image_size: int | list[int] = 16, in_channels: int = 3, patch: int = 4, vocab_size: int = 16,
                 num_frames: int = 8) -> None:
        super().__init__()
        self.patch, self.vocab_size, self.channels = patch, vocab_size, in_channels
        dim = in_channels * patch * patch
        self.enc = nn.Linear(dim, 8)
        self.codebook = nn.Embedding(vocab_size, 8)
        self.dec = nn.Linear(8, dim)

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch, width // self.patch

    def _latents(self, video: Tensor) -> Tensor:
        patches = rearrange(video, "b t c (h p) (w q) -> b t h w (c p q)", p=self.patch, q=self.patch)
        return self.enc(patches)

    def _quantize(self, z: Tensor) -> Tensor:
        dist = (z.unsqueeze(-2) - self.codebook.weight).pow(2).sum(-1)
        return dist.argmin(-1)

    def encode(self, video: Tensor) -> Tensor:
        return self._quantize(self._latents(video))

    def decode(self, tokens: Tensor) -> Tensor:
        patches = torch.sigmoid(self.dec(self.codebook(tokens)))
        return rearrange(patches, "b t h w (c p q) -> b t c (h p) (w q)", p=self.patch, q=self.patch, c=self.channels)

    def loss(self, video: Tensor) -> LossOutput:
        z = self._latents(video)
        q = self.codebook(self._quantize(z))
        z_q = z + (q - z).detach()
        patches = torch.sigmoid(self.dec(z_q))
        recon = rearrange(patches, "b t h w (c p q) -> b t c (h p) (w q)", p=self.patch, q=self.patch, c=self.channels)
        rec = F.mse_loss(recon, video)
        vq = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        loss = rec + vq
        return loss, {"loss": loss.detach(), "recon_mse": rec.detach()}


@register("action_model", "toy-lam", override=True)
class ToyLAM(ActionModel):
    """Classifies the mean frame difference of each transition into a latent action."""

    def __init__(self, image_size: int | list[int] = 16, in_channels: int = 3, num_actions: int = 4,
                 action_dim: int = 8, num_frames: int = 8) -> None:
        super().__init__()
        h, w = _pair(image_size)
        self.num_actions, self.action_dim = num_actions, action_dim
        self.enc = nn.Linear(2 * in_channels * h * w, num_actions)
        self.codebook = nn.Embedding(num_actions, action_dim)
        self.dec = nn.Linear(in_channels * h * w + action_dim, in_channels * h * w)

    def _logits(self, video: Tensor) -> Tensor:
        pairs = torch.cat([video[:, :-1], video[:, 1:]], dim=2)
        return self.enc(rearrange(pairs, "b t c h w -> b t (c h w)"))

    def infer(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        return self._logits(video).argmax(-1)

    def embed(self, actions: Tensor) -> Tensor:
        return self.codebook(actions)

    def loss(self, video: Tensor, actions: Tensor | None = None) -> LossOutput:
        soft = self._logits(video).softmax(-1) @ self.codebook.weight
        past = rearrange(video[:, :-1], "b t c h w -> b t (c h w)")
        pred = torch.sigmoid(self.dec(torch.cat([past, soft], dim=-1)))
        loss = F.mse_loss(pred, rearrange(video[:, 1:], "b t c h w -> b t (c h w)"))
        return loss, {"loss": loss.detach()}


@register("dynamics", "toy-dynamics", override=True)
class ToyDynamics(Dynamics):
    """Per-token embedding plus the action, a causal mean over time and a linear head."""

    def __init__(self, vocab_size: int = 16, token_grid: list[int] | None = None, max_frames: int = 8,
                 action_dim: int = 8, num_actions: int = 4, dim: int = 16) -> None:
        super().__init__()
        self.vocab_size, self.max_frames = vocab_size, max_frames
        self.tok = nn.Embedding(vocab_size + 1, dim)
        self.act = nn.Linear(action_dim, dim)
        self.head = nn.Linear(dim, vocab_size)

    @property
    def mask_token_id(self) -> int:
        return self.vocab_size

    def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        x = self.tok(tokens)  # b t h w d
        act = F.pad(self.act(action_embeddings), (0, 0, 1, 0))  # b t d, frame 0 gets no action
        x = x + act[:, :, None, None]
        steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
        x = x.cumsum(1) / steps[None, :, None, None, None]
        return self.head(x)

    def loss(self, tokens: Tensor, action_embeddings: Tensor) -> LossOutput:
        mask = torch.rand(tokens.shape, device=tokens.device) < 0.5
        mask[:, 0] = False
        logits = self(tokens.masked_fill(mask, self.mask_token_id), action_embeddings)
        loss = F.cross_entropy(logits[mask], tokens[mask]) if mask.any() else logits.sum() * 0
        return loss, {"loss": loss.detach()}


@register("sampler", "toy-argmax", override=True)
class ToyArgmax(Sampler):
    """One pass, most likely token everywhere."""

    def __init__(self) -> None:
        super().__init__()

    def sample(self, dynamics, tokens, action_embeddings, generator=None, use_cache=True):  # noqa: ANN001
        draft = torch.full(tokens.shape[:1] + tokens.shape[2:], dynamics.mask_token_id, device=tokens.device)
        cache = dynamics.prefill(tokens, action_embeddings)
        return dynamics.next_logits(draft, cache).argmax(-1)


@register("model", "toy-world", override=True)
def toy_world() -> dict:
    """A 16x16 world of toy components for core tests."""
    return {
        "image_size": 16,
        "in_channels": 3,
        "num_frames": 4,
        "tokenizer": {"name": "toy-tokenizer", "patch": 4, "vocab_size": 16},
        "action_model": {"name": "toy-lam", "num_actions": 4},
        "dynamics": {"name": "toy-dynamics", "dim": 16},
        "sampler": {"name": "toy-argmax"},
    }


# ---------------------------------------------------------------------------------------- continuous latents
@register("tokenizer", "toy-continuous", override=True)
class ToyContinuousTokenizer(Tokenizer):
    """Per-patch linear autoencoder whose tokens are float latent vectors ``B T h w L`` (no codebook)."""

    continuous = True
    conformance_model = "toy-continuous-world"

    def __init__(self, image_size: int | list[int] = 16, in_channels: int = 3, patch: int = 4, latent_dim: int = 4,
                 num_frames: int = 8) -> None:
        super().__init__()
        self.patch, self.channels, self.vocab_size, self.latent_dim = patch, in_channels, None, latent_dim
        dim = in_channels * patch * patch
        self.enc = nn.Linear(dim, latent_dim)
        self.dec = nn.Linear(latent_dim, dim)

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch, width // self.patch

    def encode(self, video: Tensor) -> Tensor:
        patches = rearrange(video, "b t c (h p) (w q) -> b t h w (c p q)", p=self.patch, q=self.patch)
        return torch.tanh(self.enc(patches))

    def decode(self, tokens: Tensor) -> Tensor:
        patches = torch.sigmoid(self.dec(tokens))
        return rearrange(patches, "b t h w (c p q) -> b t c (h p) (w q)", p=self.patch, q=self.patch, c=self.channels)

    def loss(self, video: Tensor) -> LossOutput:
        loss = F.mse_loss(self.decode(self.encode(video)), video)
        return loss, {"loss": loss.detach()}


@register("dynamics", "toy-regression", override=True)
class ToyRegressionDynamics(Dynamics):
    """Regresses frame ``t``'s latents from a causal mean of frames ``< t`` and the action into ``t``."""

    continuous = True
    conformance_model = "toy-continuous-world"

    def __init__(self, latent_dim: int = 4, token_grid: list[int] | None = None, max_frames: int = 8,
                 action_dim: int = 8, num_actions: int = 4, dim: int = 16) -> None:
        super().__init__()
        self.vocab_size, self.max_frames = None, max_frames
        self.inp = nn.Linear(latent_dim, dim)
        self.act = nn.Linear(action_dim, dim)
        self.head = nn.Linear(dim, latent_dim)

    def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        x = self.inp(tokens)  # b t h w d
        steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
        past = x.cumsum(1) / steps[None, :, None, None, None]  # mean over frames <= t
        pred = self.head(past[:, :-1] + self.act(action_embeddings)[:, : x.shape[1] - 1, None, None])
        return torch.cat([torch.zeros_like(tokens[:, :1]), pred], dim=1)  # frame 0 has no prediction

    def loss(self, tokens: Tensor, action_embeddings: Tensor) -> LossOutput:
        loss = F.mse_loss(self(tokens, action_embeddings)[:, 1:], tokens[:, 1:])
        return loss, {"loss": loss.detach()}


@register("sampler", "toy-mean", override=True)
class ToyMeanSampler(Sampler):
    """The dynamics' prediction of the next frame's latents, plus seeded noise of scale ``noise``."""

    conformance_model = "toy-continuous-world"

    def __init__(self, noise: float = 0.0) -> None:
        super().__init__()
        self.noise = noise

    def sample(self, dynamics, tokens, action_embeddings, generator=None, use_cache=True):  # noqa: ANN001
        draft = torch.zeros_like(tokens[:, :1])
        mean = dynamics(torch.cat([tokens, draft], dim=1), action_embeddings)[:, -1]
        if not self.noise:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.noise * noise


@register("model", "toy-continuous-world", override=True)
def toy_continuous_world() -> dict:
    """A 16x16 world whose tokens are continuous latents: regression dynamics, no codebook."""
    return {
        "image_size": 16,
        "in_channels": 3,
        "num_frames": 4,
        "tokenizer": {"name": "toy-continuous", "patch": 4, "latent_dim": 4},
        "action_model": {"name": "toy-lam", "num_actions": 4},
        "dynamics": {"name": "toy-regression", "dim": 16},
        "sampler": {"name": "toy-mean"},
    }
