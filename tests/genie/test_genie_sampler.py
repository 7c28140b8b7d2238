"""MaskGIT and argmax samplers: the schedule, unmasking each token exactly once, determinism, caching."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import worldmodels
from worldmodels import Dynamics

pytest.importorskip("worldmodels_genie")

from worldmodels_genie.sampler import ArgmaxSampler, MaskGITSampler, cosine_schedule, masked_counts  # noqa: E402


class RecordingDynamics(Dynamics):
    """Random (seeded) logits; records every draft (the last frame of its input) it is asked about."""

    def __init__(self, vocab_size: int = 10, grid: tuple[int, int] = (4, 5)) -> None:
        super().__init__()
        self.vocab_size, self.max_frames, self.grid = vocab_size, 8, grid
        self.drafts: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(0)

    @property
    def mask_token_id(self) -> int:
        return self.vocab_size

    def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
        self.drafts.append(tokens[:, -1].clone())
        b, t = tokens.shape[:2]
        return torch.randn(b, t, *self.grid, self.vocab_size, generator=self.generator)

    def loss(self, tokens: Tensor, action_embeddings: Tensor):  # noqa: ANN201
        raise NotImplementedError


def _context(batch: int = 3) -> tuple[Tensor, Tensor]:
    return torch.zeros(batch, 2, 4, 5, dtype=torch.long), torch.zeros(batch, 2, 1)


@pytest.mark.parametrize(("tokens", "steps"), [(64, 8), (20, 25), (256, 25), (920, 25), (7, 1)])
def test_schedule_ends_at_zero_and_never_increases(tokens: int, steps: int) -> None:
    counts = masked_counts(tokens, steps)
    assert len(counts) == steps and counts[-1] == 0
    previous = tokens
    for count in counts:
        assert 0 <= count <= previous
        assert count < previous or previous == 0, "a step with tokens left must fix at least one"
        previous = count


@pytest.mark.parametrize(("tokens", "steps"), [(64, 8), (256, 25), (920, 25)])
def test_schedule_follows_the_cosine(tokens: int, steps: int) -> None:
    expected = [math.floor(tokens * math.cos(math.pi / 2 * i / steps)) for i in range(1, steps)] + [0]
    assert masked_counts(tokens, steps) == expected
    assert cosine_schedule(0.0) == 1.0 and abs(cosine_schedule(1.0)) < 1e-12
    fixed = [a - b for a, b in zip([tokens, *expected], expected)]
    assert fixed[0] < fixed[-1], "the cosine schedule fixes few tokens first and many at the end"


@pytest.mark.parametrize("order", ["random", "confidence"])
@pytest.mark.parametrize("steps", [1, 5, 25])
def test_every_token_is_unmasked_exactly_once(order: str, steps: int) -> None:
    dyn = RecordingDynamics()
    sampler = MaskGITSampler(steps=steps, temperature=1.0, order=order)
    tokens, emb = _context()
    out = sampler.sample(dyn, tokens, emb, generator=torch.Generator().manual_seed(0), use_cache=False)
    assert out.shape == (3, 4, 5) and out.dtype == torch.int64
    assert int(out.max()) < dyn.vocab_size, "no mask token may survive the last step"
    counts = masked_counts(20, steps)
    expected_calls = sum(1 for prev, c in zip([20, *counts], counts) if prev > c)
    assert len(dyn.drafts) == expected_calls
    drafts = [*dyn.drafts, out]
    for before, after in zip(drafts, drafts[1:]):
        was_fixed = before != dyn.mask_token_id
        assert torch.equal(after[was_fixed], before[was_fixed]), "a fixed token changed"
    masked_per_call = [int((d == dyn.mask_token_id).sum()) // 3 for d in drafts]
    assert masked_per_call == [20] + [c for prev, c in zip([20, *counts], counts) if prev > c]


def test_confidence_order_fixes_the_most_likely_tokens_first() -> None:
    class Peaked(RecordingDynamics):
        def forward(self, tokens: Tensor, action_embeddings: Tensor) -> Tensor:
            self.drafts.append(tokens[:, -1].clone())
            logits = torch.zeros(tokens.shape[0], tokens.shape[1], 4, 5, self.vocab_size)
            logits[..., 3] = torch.arange(20.0).view(4, 5)  # position i is most confident about token 3
            return logits

    dyn = Peaked()
    MaskGITSampler(steps=4, temperature=0.0, order="confidence").sample(dyn, *_context(1), use_cache=False)
    first_fixed = (dyn.drafts[1] != dyn.mask_token_id).flatten()
    count = 20 - masked_counts(20, 4)[0]
    assert torch.equal(first_fixed.nonzero().flatten(), torch.arange(20 - count, 20))


def test_temperature_zero_is_deterministic_and_seeds_reproduce(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics().eval()
    tokens, emb = random_tokens(frames=3, actions=3)
    greedy = MaskGITSampler(steps=6, temperature=0.0)
    a = greedy.sample(dyn, tokens, emb, generator=torch.Generator().manual_seed(1))
    b = greedy.sample(dyn, tokens, emb, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    hot = MaskGITSampler(steps=6, temperature=2.0)
    c = hot.sample(dyn, tokens, emb, generator=torch.Generator().manual_seed(1))
    d = hot.sample(dyn, tokens, emb, generator=torch.Generator().manual_seed(1))
    e = hot.sample(dyn, tokens, emb, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c, d) and not torch.equal(c, e)


@pytest.mark.parametrize("attention", ["spatiotemporal", "full"])
def test_cached_and_uncached_sampling_agree(make_dynamics, random_tokens, attention: str) -> None:
    dyn = make_dynamics(attention=attention).eval()
    tokens, emb = random_tokens(frames=4, actions=4)
    sampler = MaskGITSampler(steps=8, temperature=0.0)
    cached = sampler.sample(dyn, tokens, emb, use_cache=True)
    uncached = sampler.sample(dyn, tokens, emb, use_cache=False)
    assert torch.equal(cached, uncached)


def test_argmax_sampler_is_one_pass_of_the_fully_masked_frame(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics().eval()
    tokens, emb = random_tokens(frames=2, actions=2)
    out = ArgmaxSampler().sample(dyn, tokens, emb)
    draft = torch.full((2, 3, 4), dyn.mask_token_id)
    with torch.no_grad():
        expected = dyn(torch.cat([tokens, draft[:, None]], 1), emb)[:, -1].argmax(-1)
    assert torch.equal(out, expected)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 step"):
        MaskGITSampler(steps=0)
    with pytest.raises(ValueError, match="temperature"):
        MaskGITSampler(temperature=-1.0)
    with pytest.raises(ValueError, match="order"):
        MaskGITSampler(order="sorted")
    with pytest.raises(ValueError, match="schedule"):
        masked_counts(10, 4, schedule="exp")


def test_the_mask_id_is_the_dynamics_own_or_maskgits_convention() -> None:
    from worldmodels_genie.sampler import mask_token_id

    class Plain(Dynamics):  # a discrete dynamics that names no mask id
        def __init__(self) -> None:
            super().__init__()
            self.vocab_size, self.max_frames = 7, 4

        def forward(self, tokens, action_embeddings):  # noqa: ANN001, ANN202
            raise NotImplementedError

        def loss(self, tokens, action_embeddings):  # noqa: ANN001, ANN202
            raise NotImplementedError

    assert mask_token_id(RecordingDynamics()) == 10 and mask_token_id(Plain()) == 7
    continuous = worldmodels.build("toy-continuous-world").dynamics
    with pytest.raises(TypeError, match="continuous latents"):
        mask_token_id(continuous)
