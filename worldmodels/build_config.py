"""Model configs: resolving presets, applying overrides, and building components safely.

A *model config* is a plain dict::

    {"name": "genie-tiny", "image_size": 64, "in_channels": 3, "num_frames": 16,
     "tokenizer": {"name": "st-vivit", "patch_size": 8, ...},
     "action_model": {"name": "genie-lam", ...},
     "dynamics": {"name": "maskgit", ...},
     "sampler": {"name": "maskgit", "steps": 25, ...}}

Each component node names a registered component (``name``) and its constructor keyword
arguments. A node may carry ``_target_`` (Hydra's convention) only if it is the import path of a
*registered* component: a config can never make the library call an arbitrary function.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from worldmodels import registry
from worldmodels.interfaces import COMPONENT_KINDS, Component

MODEL_KEYS: tuple[str, ...] = ("image_size", "in_channels", "num_frames")
"""Model-level keys shared by the components (the *context*)."""

CONTEXT_KEYS: dict[str, tuple[str, ...]] = {
    "tokenizer": MODEL_KEYS,
    "action_model": MODEL_KEYS,
    "dynamics": ("vocab_size", "token_grid", "max_frames", "action_dim", "num_actions"),
    "sampler": (),
}
"""Constructor arguments that :class:`~worldmodels.WorldModel` derives and passes to each kind.

They are not settings a user picks: the tokenizer's vocabulary decides the dynamics'
``vocab_size``, the model's ``image_size`` decides the tokenizer's, and so on.
"""

_SPECIAL_BUILD_KEYS = ("device", "dtype")


class ConfigError(ValueError):
    """A config that cannot be built: unknown keys, bad values, or a forbidden ``_target_``."""


def to_container(cfg: Any) -> Any:
    """Turn OmegaConf containers (from Hydra) into plain dicts and lists; other values pass."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a core dependency
        pass
    if isinstance(cfg, Mapping):
        return {k: to_container(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_container(v) for v in cfg]
    return cfg


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` over ``base`` (``update`` wins); returns a new dict."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"Cannot set {dotted!r}: {part!r} is a value ({child!r}), not a group of settings.")
        node = child
    node[parts[-1]] = value


def merge_overrides(cfg: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply user overrides to a model config.

    * ``tokenizer="frame-vq"`` swaps a component by name (its settings reset to that
      component's defaults);
    * ``tokenizer={"patch_size": 4}`` merges settings into the current component
      (a dict with a different ``name`` swaps and then applies the settings);
    * ``"sampler.steps": 8`` sets one nested value;
    * anything else sets a model-level key (``num_frames=8``).

    Returns:
        A new config dict.
    """
    out = copy.deepcopy(dict(to_container(cfg)))
    for key, value in to_container(dict(overrides)).items():
        if key in COMPONENT_KINDS:
            current = out.get(key) or {}
            if isinstance(value, str):
                out[key] = {"name": value} if current.get("name") != value else current
            elif isinstance(value, Mapping):
                new_name = value.get("name", current.get("name"))
                base = current if new_name == current.get("name") else {"name": new_name}
                out[key] = deep_merge(base, value)
            else:
                raise ConfigError(
                    f"Override {key}={value!r} is neither a component name nor a dict of settings; "
                    f"use {key}='frame-vq' or {key}={{'setting': value}}."
                )
        elif "." in key:
            _set_dotted(out, key, value)
        else:
            out[key] = value
    return out


def flatten_composed_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a hydra-composed config into a model config; a model config passes unchanged.

    :func:`worldmodels.config.compose` yields ``{"model": {"name", "image_size", ...},
    "tokenizer": {...}, "action_model": {...}, "dynamics": {...}, "sampler": {...}, ...}`` plus
    training sections; a model config holds the model-level keys at its top instead.
    """
    model = cfg.get("model")
    if not isinstance(model, Mapping):
        return dict(cfg)
    flat = {k: v for k, v in model.items() if k not in COMPONENT_KINDS}
    for kind in COMPONENT_KINDS:
        nested, group = model.get(kind), cfg.get(kind)
        if isinstance(nested, Mapping) and isinstance(group, Mapping) and nested and group:
            keys = ", ".join(sorted(str(key) for key in nested))
            first = next(iter(nested))
            raise ConfigError(
                f"model.{kind} ({keys}) is set next to the composed {kind} group, which is what the model is built "
                f"from: model.{kind} would be ignored. Set those keys on the group instead, e.g. "
                f"{kind}.{first}={nested[first]!r} (not +model.{kind}.{first}=...)."
            )
        node = group or nested
        if node is not None:
            flat[kind] = node
    return flat


def resolve_model_config(name_or_config: str | Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """The full model config for a preset name or a config dict, with overrides applied.

    Raises:
        UnknownComponentError: for an unknown preset name.
        ConfigError: for a config missing a component.
    """
    if isinstance(name_or_config, str):
        entry = registry.get_entry("model", name_or_config)
        cfg = to_container(entry.obj())
        cfg.setdefault("name", name_or_config)
    else:
        cfg = flatten_composed_config(to_container(dict(name_or_config)))
    cfg = merge_overrides(cfg, overrides)
    missing = [k for k in COMPONENT_KINDS if not cfg.get(k)]
    if missing:
        raise ConfigError(
            f"Model config lacks {', '.join(missing)}: a model needs one of each of {', '.join(COMPONENT_KINDS)}. "
            "Start from a preset, e.g. worldmodels.build('genie-tiny', tokenizer='frame-vq')."
        )
    return cfg


def _resolve_entry(kind: str, node: Mapping[str, Any]) -> registry.RegistryEntry:
    name = node.get("name")
    target = node.get("_target_")
    if target is not None:
        entry = registry.entry_for_target(str(target))
        if entry is None:
            raise ConfigError(
                f"Refusing _target_={target!r}: configs may only target registered worldmodels components, "
                "never arbitrary callables. Register the class with @worldmodels.register(kind, name) and refer "
                "to it by 'name'."
            )
        if entry.kind != kind:
            raise ConfigError(f"_target_={target!r} is a registered {entry.kind}, but this node needs a {kind}.")
        if name is not None and name != entry.name:
            raise ConfigError(f"Node names {name!r} but its _target_ is {entry.name!r}; keep one of the two.")
        return entry
    if not name:
        raise ConfigError(f"The {kind} config {dict(node)!r} has no 'name': say which registered {kind} to build.")
    return registry.get_entry(kind, str(name))


def component_parameters(obj: Any) -> dict[str, inspect.Parameter]:
    """The keyword parameters a component's constructor accepts."""
    return {
        p.name: p
        for p in inspect.signature(obj).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }


def build_component(kind: str, node: Mapping[str, Any] | str, **context: Any) -> Component:
    """Build one registered component from its config node.

    Args:
        kind: one of the component kinds.
        node: ``{"name": ..., **kwargs}`` or just the name.
        **context: derived keyword arguments (image size, vocabulary, ...) passed when the
            constructor accepts them; they win over the node's values.

    Raises:
        ConfigError: on settings the component does not accept (with close matches).
    """
    node = {"name": node} if isinstance(node, str) else dict(to_container(node))
    entry = _resolve_entry(kind, node)
    kwargs = {k: v for k, v in node.items() if k not in ("name", "_target_")}
    params = component_parameters(entry.obj)
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(entry.obj).parameters.values())
    unknown = [k for k in kwargs if k not in params and not accepts_any]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(params), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{kind} {entry.name!r} does not accept {', '.join(hints)}. It accepts: {', '.join(sorted(params))}."
        )
    kwargs.update({k: v for k, v in context.items() if k in params or accepts_any})
    return entry.obj(**kwargs)
