"""Names users know from another Genie library, as thin entry points over worldmodels' own API.

Code written as::

    from worldmodels_genie import GenieConfig, create_genie_small
    cfg = GenieConfig(num_frames=16, image_size=64)
    model = create_genie_small(num_frames=16, image_size=64)
    actions = model.infer_actions(frames)           # frames B T C H W
    step = model.play(current_frame, torch.tensor([3]))

ports with few changes. :class:`GenieConfig` only maps the familiar field names onto a preset's
model config (``GenieConfig().to_model_config()``); everything is built by
:func:`worldmodels.build` and returns a :class:`worldmodels.WorldModel`. Figures from that library
(e.g. its "~50M" small model) are not followed: the sizes are our presets' (``genie-small``,
``genie-large``), which follow the paper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

import worldmodels
from worldmodels.build_config import resolve_model_config

_MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "num_frames": ("num_frames",),
    "image_size": ("image_size",),
    "in_channels": ("in_channels",),
    "tokenizer_vocab_size": ("tokenizer", "vocab_size"),
    "tokenizer_patch_size": ("tokenizer", "patch_size"),
    "tokenizer_code_dim": ("tokenizer", "code_dim"),
    "action_vocab_size": ("action_model", "num_actions"),
    "action_dim": ("action_model", "action_dim"),
    "dynamics_dim": ("dynamics", "dim"),
    "dynamics_depth": ("dynamics", "depth"),
    "dynamics_num_heads": ("dynamics", "num_heads"),
    "maskgit_steps": ("sampler", "steps"),
    "maskgit_temperature": ("sampler", "temperature"),
}
"""GenieConfig field -> path in a worldmodels model config."""


@dataclass
class GenieConfig:
    """The familiar Genie settings, mapped onto a worldmodels preset.

    Defaults are the ``genie-small`` preset's; :meth:`from_preset` fills them from another one.
    ``dynamics_depth`` counts ST blocks (each holds two attention layers: the paper's 48-layer
    dynamics has ``dynamics_depth=24``).

    Attributes:
        num_frames: frames per clip ``T``.
        image_size: frame size ``H`` or ``(H, W)``.
        in_channels: ``C``.
        tokenizer_vocab_size: video token codebook size.
        tokenizer_patch_size: tokenizer patch side.
        tokenizer_code_dim: tokenizer code width.
        action_vocab_size: number of latent actions.
        action_dim: latent action code width.
        dynamics_dim: dynamics transformer width.
        dynamics_depth: dynamics ST blocks.
        dynamics_num_heads: dynamics attention heads.
        maskgit_steps: MaskGIT decoding steps.
        maskgit_temperature: MaskGIT sampling temperature.
        preset: the worldmodels preset the other settings are merged over.
        batch_size: training batch size (for the trainer; not part of the model config).
        learning_rate: training learning rate (for the trainer).
        warmup_steps: learning-rate warmup steps (for the trainer).
        max_steps: training steps (for the trainer).
        epochs: training epochs (for the trainer; ``None`` trains ``max_steps``).
        extra: further worldmodels overrides, e.g. ``{"sampler.order": "confidence"}``.
    """

    num_frames: int = 16
    image_size: int | tuple[int, int] = 64
    in_channels: int = 3
    tokenizer_vocab_size: int = 1024
    tokenizer_patch_size: int = 4
    tokenizer_code_dim: int = 32
    action_vocab_size: int = 8
    action_dim: int = 32
    dynamics_dim: int = 768
    dynamics_depth: int = 12
    dynamics_num_heads: int = 12
    maskgit_steps: int = 25
    maskgit_temperature: float = 2.0
    preset: str = "genie-small"
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup_steps: int = 5000
    max_steps: int = 125_000
    epochs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_preset(cls, preset: str, **changes: Any) -> GenieConfig:
        """A config whose model fields are those of a worldmodels preset, then ``changes``.

        Example:
            >>> GenieConfig.from_preset("genie-large").dynamics_dim
            5120
        """
        model = resolve_model_config(preset)
        values: dict[str, Any] = {"preset": preset}
        for name, path in _MODEL_FIELDS.items():
            node: Any = model
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                values[name] = tuple(node) if isinstance(node, list) else node
        values.update(changes)
        return cls(**values)

    def to_model_config(self) -> dict[str, Any]:
        """The worldmodels model config: the preset with this config's model fields set.

        Returns:
            A dict for :func:`worldmodels.build` (or :meth:`worldmodels.WorldModel.from_config`).
        """
        overrides: dict[str, Any] = {}
        for name, path in _MODEL_FIELDS.items():
            value = getattr(self, name)
            overrides[".".join(path)] = list(value) if isinstance(value, tuple) else value
        overrides.update(self.extra)
        return resolve_model_config(self.preset, **overrides)

    def training_settings(self) -> dict[str, Any]:
        """The training fields (batch size, learning rate, warmup, steps, epochs) as a dict for the trainer."""
        names = ("batch_size", "learning_rate", "warmup_steps", "max_steps", "epochs")
        return {n: getattr(self, n) for n in names}

    def replace(self, **changes: Any) -> GenieConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _create(
    preset: str,
    num_frames: int,
    image_size: int | tuple[int, int],
    device: str | torch.device | None,
    dtype: torch.dtype | None,
    kwargs: dict[str, Any],
) -> worldmodels.WorldModel:
    unknown = [k for k in kwargs if k not in {f.name for f in dataclasses.fields(GenieConfig)}]
    if unknown:
        raise TypeError(
            f"Unknown setting(s) {', '.join(unknown)}; GenieConfig fields are: "
            f"{', '.join(f.name for f in dataclasses.fields(GenieConfig))}."
        )
    config = GenieConfig.from_preset(preset, num_frames=num_frames, image_size=image_size, **kwargs)
    model = worldmodels.build(config.to_model_config(), device=device, dtype=dtype)
    assert isinstance(model, worldmodels.WorldModel)
    return model


def create_genie_small(
    num_frames: int = 16,
    image_size: int | tuple[int, int] = 64,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **kwargs: Any,
) -> worldmodels.WorldModel:
    """Build the ``genie-small`` preset (single-GPU size, ~190M parameters).

    Args:
        num_frames: frames per clip.
        image_size: frame size ``H`` or ``(H, W)``.
        device: build on this device (``"meta"``: no memory, for inspection).
        dtype: cast the parameters.
        **kwargs: any other :class:`GenieConfig` field, e.g. ``action_vocab_size=8``.

    Returns:
        A :class:`worldmodels.WorldModel`.
    """
    return _create("genie-small", num_frames, image_size, device, dtype, kwargs)


def create_genie_large(
    num_frames: int = 16,
    image_size: int | tuple[int, int] = (90, 160),
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **kwargs: Any,
) -> worldmodels.WorldModel:
    """Build the ``genie-large`` preset (the paper's sizes, ~10.7B parameters, ~43 GB in fp32).

    Pass ``device="meta"`` to inspect it without allocating memory.

    Args:
        num_frames: frames per clip.
        image_size: frame size ``H`` or ``(H, W)`` (the paper's frames are 90x160).
        device: build on this device.
        dtype: cast the parameters (the paper trains in bf16).
        **kwargs: any other :class:`GenieConfig` field.

    Returns:
        A :class:`worldmodels.WorldModel`.
    """
    return _create("genie-large", num_frames, image_size, device, dtype, kwargs)
