"""Conformance checks every component must pass: ours, and those of third-party plug-ins.

Use :class:`ComponentConformance` as a mixin of a pytest test class, name the component and a
small world to put it in, and pytest collects the checks::

    from worldmodels.testing import ComponentConformance

    class TestMyTokenizer(ComponentConformance):
        kind = "tokenizer"
        name = "my-vq"
        model_preset = "genie-tiny"          # a registered preset to embed the component in
        overrides = {"hidden": 32}           # small settings so the checks run in seconds

The component is swapped into ``model_preset`` (``build(model_preset, tokenizer={...})``), so
it receives the sizes a real model gives it (image size, vocabulary, token grid), and the
checks exercise it through the same :class:`~worldmodels.WorldModel` a user gets. A component
class may declare the settings it wants for these checks in a ``conformance_config`` class
attribute; the library's own suite runs the checks over every registered component that way.

The checks: shapes and dtypes of every interface method, finite differentiable losses with
0-d detached metrics, a save/load round trip that reproduces outputs bit for bit, seeded
determinism of construction and inference, inference under ``torch.no_grad``, temporal
causality where a component promises it, and for dynamics, that the cached sampling path
(``prefill``/``next_logits``) gives the same logits as a full forward pass.
"""

from __future__ import annotations

import tempfile
from typing import Any, ClassVar

import torch
from torch import Tensor

from worldmodels.interfaces import COMPONENT_KINDS, Component, DynamicsCache

__all__ = ["ComponentConformance", "conformance_overrides", "make_world"]


def conformance_overrides(kind: str, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The component node for the checks: ``name``, its class's ``conformance_config``, then ``overrides``."""
    from worldmodels import registry

    cls = registry.get_entry(kind, name).obj
    return {"name": name, **dict(getattr(cls, "conformance_config", {}) or {}), **(overrides or {})}


def make_world(model_preset: str, kind: str, name: str, overrides: dict[str, Any] | None = None, seed: int = 0):
    """Build ``model_preset`` with the component ``kind``/``name`` swapped in, seeded, in eval mode."""
    from worldmodels.build import build

    torch.manual_seed(seed)
    components: dict[str, Any] = {kind: conformance_overrides(kind, name, overrides)}
    model = build(model_preset, **components)
    return model.eval()


class ComponentConformance:
    """Mixin of conformance tests for one registered component (see the module docstring).

    Attributes:
        kind: the component kind (``tokenizer``, ``action_model``, ``dynamics``, ``sampler``).
        name: the registered name.
        model_preset: the registered preset the component is embedded in.
        overrides: settings merged over the component's ``conformance_config``.
        batch_size: ``B`` of the test inputs.
        seed: the seed of construction and inputs.
        atol: tolerance of the cached-vs-full dynamics comparison.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    model_preset: ClassVar[str]
    overrides: ClassVar[dict[str, Any]] = {}
    batch_size: ClassVar[int] = 2
    seed: ClassVar[int] = 0
    atol: ClassVar[float] = 1e-4

    # ------------------------------------------------------------------ fixtures
    def world(self, seed: int | None = None):
        """A fresh seeded world containing the component (a :class:`~worldmodels.WorldModel`)."""
        if self.kind not in COMPONENT_KINDS:
            raise ValueError(f"kind must be one of {COMPONENT_KINDS}, got {self.kind!r}.")
        return make_world(self.model_preset, self.kind, self.name, self.overrides, self.seed if seed is None else seed)

    def component(self, world) -> Component:  # noqa: ANN001
        """The component under test inside ``world``."""
        return getattr(world, self.kind)

    def video(self, world, frames: int | None = None) -> Tensor:  # noqa: ANN001
        """A seeded random clip ``B T C H W`` in ``[0, 1]`` of the world's size."""
        g = torch.Generator().manual_seed(self.seed + 1)
        t = frames or world.num_frames
        h, w = world.image_size
        return torch.rand(self.batch_size, t, world.in_channels, h, w, generator=g)

    def recorded_actions(self, world, video: Tensor) -> Tensor | None:  # noqa: ANN001
        """Seeded "recorded" actions ``B T-1`` for an action model that reads them, else ``None``."""
        if not getattr(world.action_model, "uses_recorded_actions", False):
            return None
        g = torch.Generator().manual_seed(self.seed + 2)
        return torch.randint(0, world.action_model.num_actions, video.shape[:2], generator=g)[:, :-1]

    def _infer(self, world, video: Tensor) -> Tensor:  # noqa: ANN001
        return world.action_model.infer(video, self.recorded_actions(world, video))

    def _outputs(self, world, video: Tensor) -> dict[str, Tensor]:  # noqa: ANN001
        """Deterministic outputs of the component on ``video`` (used by round-trip checks)."""
        with torch.no_grad():
            tokens = world.tokenizer.encode(video)
            if self.kind == "tokenizer":
                return {"tokens": tokens, "decoded": world.tokenizer.decode(tokens)}
            if self.kind == "action_model":
                actions = self._infer(world, video)
                return {"actions": actions, "embeddings": world.action_model.embed(actions)}
            actions = self._infer(world, video)
            emb = world.action_model.embed(actions)
            if self.kind == "dynamics":
                return {"logits": world.dynamics(tokens, emb)}
            g = torch.Generator().manual_seed(self.seed)
            return {"next": world.sampler.sample(world.dynamics, tokens[:, :-1], emb, generator=g)}

    # ------------------------------------------------------------------ generic checks
    def test_registered_and_config_roundtrip(self) -> None:
        """The component reports its registered name and a config that rebuilds it."""
        from worldmodels.build_config import build_component

        world = self.world()
        comp = self.component(world)
        config = comp.get_config()
        assert config["name"] == self.name, f"get_config() names {config['name']!r}, registered as {self.name!r}"
        rebuilt = build_component(self.kind, config)
        assert type(rebuilt) is type(comp)
        assert rebuilt.get_config() == config, "rebuilding from get_config() changed the config"

    def test_seeded_construction_is_deterministic(self) -> None:
        """Two builds under the same seed have identical weights."""
        a, b = self.component(self.world()), self.component(self.world())
        for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(pa, pb), f"parameter {name} differs between two builds with the same seed"

    def test_save_load_roundtrip_bit_for_bit(self) -> None:
        """``save_pretrained`` then ``from_pretrained`` reproduces the outputs exactly."""
        from worldmodels.world_model import WorldModel

        world = self.world()
        video = self.video(world)
        before = self._outputs(world, video)
        with tempfile.TemporaryDirectory() as tmp:
            world.save_pretrained(tmp)
            loaded = WorldModel.from_pretrained(tmp).eval()
        after = self._outputs(loaded, video)
        for key, value in before.items():
            assert torch.equal(value, after[key]), f"{key} changed after a save/load round trip"

    def test_inference_under_no_grad(self) -> None:
        """Inference runs under ``torch.no_grad`` and returns tensors that need no grad."""
        world = self.world()
        outputs = self._outputs(world, self.video(world))
        for key, value in outputs.items():
            assert isinstance(value, Tensor), f"{key} is not a tensor"
            assert not value.requires_grad, f"{key} requires grad under torch.no_grad"

    def test_loss_is_finite_and_differentiable(self) -> None:
        """The component's training loss is a finite 0-d tensor with gradients and 0-d metrics."""
        if self.kind == "sampler":
            return  # samplers have no loss
        world = self.world().train()
        video = self.video(world)
        if self.kind == "tokenizer":
            loss, metrics = world.tokenizer_loss(video)
        elif self.kind == "action_model":
            loss, metrics = world.action_model_loss(video, self.recorded_actions(world, video))
        else:
            loss, metrics = world.dynamics_loss(
                video, train_action_model=False, actions=self.recorded_actions(world, video)
            )
        assert loss.ndim == 0 and torch.isfinite(loss), f"loss must be a finite 0-d tensor, got {loss}"
        for key, value in metrics.items():
            assert isinstance(value, Tensor) and value.ndim == 0, f"metric {key} must be a 0-d tensor"
            assert not value.requires_grad, f"metric {key} must be detached"
        trainable = [p for p in self.component(world).parameters() if p.requires_grad]
        if not trainable:  # nothing to learn (e.g. recorded actions): the loss need not carry a gradient
            return
        loss.backward()
        grads = [p.grad for p in trainable]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), "the loss gives no gradient to the component"

    # ------------------------------------------------------------------ kind-specific checks
    def test_shapes_and_dtypes(self) -> None:
        """Each interface method returns the documented shape, dtype and value range."""
        world = self.world()
        video = self.video(world)
        b, t = video.shape[:2]
        h, w = world.token_grid
        latent = world.latent_shape  # (h, w), or (h, w, L) for continuous latents
        continuous = world.tokenizer.continuous
        out = self._outputs(world, video)
        if self.kind == "tokenizer":
            tok = out["tokens"]
            assert tok.shape == (b, t, *latent), f"encode gave {tuple(tok.shape)}, expected {(b, t, *latent)}"
            if continuous:
                assert tok.is_floating_point() and bool(torch.isfinite(tok).all()), f"latents must be finite floats, got {tok.dtype}"
            else:
                assert tok.dtype == torch.int64, f"encode gave {tok.dtype}, expected int64 ids"
                assert 0 <= int(tok.min()) and int(tok.max()) < world.tokenizer.vocab_size, "token ids out of range"
            dec = out["decoded"]
            assert dec.shape == video.shape and dec.is_floating_point(), f"decode gave {dec.shape}"
            assert float(dec.min()) >= 0.0 and float(dec.max()) <= 1.0, "decoded video outside [0, 1]"
        elif self.kind == "action_model":
            act = out["actions"]
            assert act.shape == (b, t - 1) and act.dtype == torch.int64, f"infer gave {act.shape} {act.dtype}"
            assert 0 <= int(act.min()) and int(act.max()) < world.action_model.num_actions, "actions out of range"
            emb = out["embeddings"]
            assert emb.shape == (b, t - 1, world.action_model.action_dim), f"embed gave {emb.shape}"
        elif self.kind == "dynamics":
            logits = out["logits"]
            if continuous:
                assert logits.shape[:4] == (b, t, h, w) and logits.is_floating_point(), f"forward gave {logits.shape}"
            else:
                assert logits.shape == (b, t, h, w, world.dynamics.vocab_size), f"forward gave {logits.shape}"
        else:
            nxt = out["next"]
            if continuous:
                assert nxt.shape == (b, *latent) and nxt.is_floating_point(), f"sample gave {nxt.shape} {nxt.dtype}"
            else:
                assert nxt.shape == (b, h, w) and nxt.dtype == torch.int64, f"sample gave {nxt.shape} {nxt.dtype}"
                assert 0 <= int(nxt.min()) and int(nxt.max()) < world.dynamics.vocab_size, "sampled ids out of range"

    def test_seeded_inference_is_deterministic(self) -> None:
        """The same inputs (and sampler seed) give the same outputs twice."""
        world = self.world()
        video = self.video(world)
        first, second = self._outputs(world, video), self._outputs(world, video)
        for key, value in first.items():
            assert torch.equal(value, second[key]), f"{key} differs between two identical calls"

    def test_temporal_causality(self) -> None:
        """Changing the last frame leaves every earlier output unchanged (where causality is promised)."""
        world = self.world()
        video = self.video(world)
        changed = video.clone()
        changed[:, -1] = 1.0 - changed[:, -1]
        if self.kind == "tokenizer":
            if not world.tokenizer.temporally_causal:
                return
            with torch.no_grad():
                a, b = world.tokenizer.encode(video), world.tokenizer.encode(changed)
            assert torch.equal(a[:, :-1], b[:, :-1]), "tokens of earlier frames changed when the last frame changed"
        elif self.kind == "dynamics":
            with torch.no_grad():
                tokens = world.tokenizer.encode(video)
                emb = world.action_model.embed(self._infer(world, video))
                other = tokens.clone()
                if world.tokenizer.continuous:
                    other[:, -1] = other[:, -1] + 1.0
                else:
                    other[:, -1] = (other[:, -1] + 1) % world.dynamics.vocab_size
                la, lb = world.dynamics(tokens, emb), world.dynamics(other, emb)
            torch.testing.assert_close(la[:, :-1], lb[:, :-1], msg="dynamics logits at t < T-1 saw frame T-1")

    def test_cached_prediction_matches_full_forward(self) -> None:
        """``prefill`` + ``next_logits`` equal the last frame of a full forward pass (discrete tokens, masked draft)."""
        if self.kind != "dynamics" or self.world().tokenizer.continuous:
            return
        world = self.world()
        video = self.video(world)
        dyn = world.dynamics
        with torch.no_grad():
            tokens = world.tokenizer.encode(video)
            emb = world.action_model.embed(self._infer(world, video))
            draft = tokens[:, -1].clone()
            mask_id = getattr(dyn, "mask_token_id", None)  # a dynamics that takes partly decided drafts
            if mask_id is not None:
                draft[:, ::2] = mask_id
            full = dyn(torch.cat([tokens[:, :-1], draft[:, None]], dim=1), emb)[:, -1]
            cache = dyn.prefill(tokens[:, :-1], emb)
            assert isinstance(cache, DynamicsCache), "prefill must return a DynamicsCache"
            cached = dyn.next_logits(draft, cache)
            again = dyn.next_logits(draft, cache)  # the cache must survive repeated MaskGIT iterations
        torch.testing.assert_close(cached, full, atol=self.atol, rtol=1e-4)
        torch.testing.assert_close(again, cached, atol=0.0, rtol=0.0)
