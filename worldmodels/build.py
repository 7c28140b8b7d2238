"""``build``: one entry point from a name or config to a ready model or component."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from worldmodels import registry
from worldmodels.build_config import ConfigError, build_component, to_container
from worldmodels.interfaces import COMPONENT_KINDS, Component
from worldmodels.world_model import WorldModel


def _device_context(device: str | torch.device | None) -> contextlib.AbstractContextManager[Any]:
    return torch.device(device) if device is not None else contextlib.nullcontext()


def build(
    name_or_config: str | Mapping[str, Any],
    kind: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> WorldModel | Component:
    """Build a whole model (from a preset name or model config) or one component.

    Args:
        name_or_config: a preset name (``"genie-tiny"``), a component name (with ``kind``),
            a model config dict, or a component config ``{"name": ...}`` (with ``kind``).
        kind: ``"model"`` (default for presets) or a component kind.
        device: build directly on this device; ``"meta"`` allocates no memory (for
            inspecting parameter counts of large presets).
        dtype: cast parameters to this dtype after building.
        **overrides: config overrides, e.g. ``tokenizer="frame-vq"``,
            ``sampler={"steps": 8}`` or ``**{"sampler.steps": 8}``.

    Returns:
        A :class:`~worldmodels.WorldModel`, or a component when ``kind`` names a component kind.

    Raises:
        UnknownComponentError: for an unknown name (with suggestions).
        ConfigError: for settings a component does not accept or a forbidden ``_target_``.

    Example:
        >>> import worldmodels
        >>> model = worldmodels.build("genie-tiny", sampler={"steps": 4})
        >>> model.sampler.steps
        4
    """
    cfg = to_container(name_or_config) if not isinstance(name_or_config, str) else name_or_config
    if kind is None:
        if isinstance(cfg, str):
            kinds = registry.find_kinds(cfg)
            if "model" in kinds or not kinds:
                kind = "model"
            elif len(kinds) == 1:
                kind = kinds[0]
            else:
                raise ConfigError(
                    f"{cfg!r} is registered as {', '.join(kinds)}; say which with build({cfg!r}, kind=...)."
                )
        else:
            kind = "model" if any(k in cfg for k in COMPONENT_KINDS) else None
            if kind is None:
                raise ConfigError(
                    "A config passed to build() without kind must be a model config (with tokenizer, "
                    "action_model, dynamics, sampler); for one component pass kind='tokenizer' etc."
                )
    with _device_context(device):
        if kind == "model":
            built: WorldModel | Component = WorldModel.from_config(cfg, **overrides)
        elif kind in COMPONENT_KINDS:
            node = {"name": cfg} if isinstance(cfg, str) else dict(cfg)
            node.update(overrides)
            built = build_component(kind, node)
        else:
            registry.get_entry(kind, str(cfg))  # raises the helpful unknown-kind error
            raise ConfigError(f"Unknown kind {kind!r}.")
    if dtype is not None:
        built = built.to(dtype=dtype)
    return built


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())
