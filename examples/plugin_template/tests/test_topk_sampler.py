"""The template's tests: the library's conformance checks plus one behaviour of our own."""

from __future__ import annotations

import torch

import worldmodels
from worldmodels.testing import ComponentConformance, make_world


class TestTopKSampler(ComponentConformance):
    """Shapes, determinism, save/load, no-grad: the checks every component passes."""

    kind = "sampler"
    name = "example-topk"
    model_preset = "genie-tiny"
    overrides = {"k": 2}


def test_k_of_one_is_argmax() -> None:
    world = make_world("genie-tiny", "sampler", "example-topk", {"k": 1})
    video = torch.rand(1, 3, world.in_channels, *world.image_size)
    with torch.no_grad():
        tokens = world.encode(video)
        emb = world.action_model.embed(world.infer_actions(video))
        sampled = world.sampler.sample(world.dynamics, tokens[:, :-1], emb)
        draft = torch.full_like(tokens[:, -1], world.dynamics.mask_token_id)
        argmax = world.dynamics.next_logits(draft, world.dynamics.prefill(tokens[:, :-1], emb)).argmax(-1)
    assert torch.equal(sampled, argmax)


def test_is_listed_and_builds_by_name() -> None:
    assert "example-topk" in worldmodels.list_components("sampler")
    assert worldmodels.build("genie-tiny", sampler="example-topk").sampler.k == 5
