"""Registries of components and whole-model presets.

There is one registry per kind: ``tokenizer``, ``action_model``, ``dynamics``, ``sampler``
(classes subclassing the interfaces in :mod:`worldmodels.interfaces`) and ``model`` (preset
functions returning a model config dict). Register with the :func:`register` decorator::

    @register("tokenizer", "my-vq")
    class MyVQ(Tokenizer): ...

Names are looked up lazily: a miss triggers plug-in discovery once
(:func:`worldmodels.plugins.load_plugins`), and a name that still does not exist raises
:class:`UnknownComponentError` with close matches, what exists of that kind and the loaded
plug-ins.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from worldmodels import plugins

KINDS: tuple[str, ...] = ("tokenizer", "action_model", "dynamics", "sampler", "model")
"""Every registry kind: the four component kinds plus whole-model presets."""

_BUILTIN_MODULES = ("worldmodels.tokenizers", "worldmodels.action_models")

T = TypeVar("T")


class RegistryError(ValueError):
    """Base error of the registry (bad kind, duplicate name)."""


class UnknownComponentError(RegistryError, KeyError):
    """A name that no registry of the asked kind knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class RegistryEntry:
    """One registered component or preset.

    Attributes:
        kind: the registry kind.
        name: the registered name.
        obj: the class (components) or preset function (models).
        distribution: the distribution that registered it (``"worldmodels"`` for built-ins).
        description: the first line of its docstring.
    """

    kind: str
    name: str
    obj: Callable[..., Any]
    distribution: str
    description: str

    @property
    def target(self) -> str:
        """The dotted import path of :attr:`obj` (what a config's ``_target_`` may name)."""
        return f"{self.obj.__module__}.{self.obj.__qualname__}"


_entries: dict[str, dict[str, RegistryEntry]] = {kind: {} for kind in KINDS}
_builtins_loaded = False


def _check_kind(kind: str) -> None:
    if kind not in _entries:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RegistryError(f"Unknown component kind {kind!r}.{hint} Kinds are: {', '.join(KINDS)}.")


def _ensure_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def register(kind: str, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
    """Decorator registering a component class or a model preset function under ``name``.

    Args:
        kind: one of :data:`KINDS`.
        name: the registered name; defaults to the object's ``__name__`` with ``_`` as ``-``.
        override: replace an existing entry of that name instead of raising.

    Returns:
        The decorator; it returns the object unchanged (a class gains ``registered_name``).

    Raises:
        RegistryError: on an unknown kind, or a duplicate name without ``override=True``.
    """
    _check_kind(kind)

    def decorator(obj: T) -> T:
        reg_name = name or getattr(obj, "__name__", "").replace("_", "-").lower()
        if not reg_name:
            raise RegistryError(f"Cannot infer a name for {obj!r}; pass register({kind!r}, 'name').")
        existing = _entries[kind].get(reg_name)
        if existing is not None and not override and existing.obj is not obj:
            raise RegistryError(
                f"A {kind} named {reg_name!r} is already registered by {existing.distribution} "
                f"({existing.target}). Pick another name, or pass override=True to replace it."
            )
        if kind != "model":
            from worldmodels.interfaces import KIND_BASES

            base = KIND_BASES[kind]
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise RegistryError(
                    f"Only subclasses of worldmodels.{base.__name__} can be registered as {kind}; got {obj!r}."
                )
            obj.registered_name = reg_name
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        _entries[kind][reg_name] = RegistryEntry(
            kind=kind,
            name=reg_name,
            obj=obj,  # type: ignore[arg-type]
            distribution=plugins.current_distribution() or _distribution_of(obj),
            description=doc[0] if doc else "",
        )
        return obj

    return decorator


def _distribution_of(obj: object) -> str:
    module = getattr(obj, "__module__", "") or ""
    return "worldmodels" if module.startswith("worldmodels.") or module == "worldmodels" else module.split(".")[0]


def unregister(kind: str, name: str) -> None:
    """Remove an entry (mostly for tests); unknown names are ignored."""
    _check_kind(kind)
    _entries[kind].pop(name, None)


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def list_components(kind: str | None = None, pattern: str = "*") -> list[str] | dict[str, list[str]]:
    """Registered names, sorted naturally, filtered by a shell-style wildcard.

    Args:
        kind: one of :data:`KINDS`; ``None`` lists every kind.
        pattern: a wildcard such as ``"genie-*"``.

    Returns:
        The names of that kind, or, with ``kind=None``, a dict from kind to names.

    Example:
        >>> import worldmodels
        >>> "frame-vq" in worldmodels.list_components("tokenizer")
        True
    """
    _ensure_builtins()
    plugins.load_plugins()
    kinds = KINDS if kind is None else (kind,)
    for k in kinds:
        _check_kind(k)
    listing = {
        k: sorted((n for n in _entries[k] if fnmatch.fnmatchcase(n, pattern)), key=_natural_key) for k in kinds
    }
    return listing if kind is None else listing[kind]


def entries(kind: str) -> list[RegistryEntry]:
    """All entries of a kind (with their providing distribution), triggering discovery."""
    _check_kind(kind)
    _ensure_builtins()
    plugins.load_plugins()
    return [_entries[kind][n] for n in sorted(_entries[kind], key=_natural_key)]


def find_kinds(name: str) -> list[str]:
    """The kinds under which ``name`` is registered (discovering plug-ins if needed)."""
    _ensure_builtins()
    hits = [k for k in KINDS if name in _entries[k]]
    if not hits:
        plugins.load_plugins()
        hits = [k for k in KINDS if name in _entries[k]]
    return hits


def get_entry(kind: str, name: str) -> RegistryEntry:
    """Look up one entry.

    Raises:
        UnknownComponentError: with close matches, the existing names of that kind and the
            loaded plug-ins.
    """
    _check_kind(kind)
    _ensure_builtins()
    if name not in _entries[kind]:
        plugins.load_plugins()
    if name not in _entries[kind]:
        raise UnknownComponentError(_unknown_message(kind, name))
    return _entries[kind][name]


def _unknown_message(kind: str, name: str) -> str:
    existing = sorted(_entries[kind], key=_natural_key)
    close = difflib.get_close_matches(str(name), existing, n=3, cutoff=0.5)
    lines = [f"Unknown {kind} {name!r}."]
    if close:
        lines.append(f"Did you mean {' or '.join(repr(c) for c in close)}?")
    other_kinds = [k for k in KINDS if k != kind and name in _entries[k]]
    if other_kinds:
        lines.append(f"{name!r} is registered as a {' and a '.join(other_kinds)}, not as a {kind}.")
    lines.append(f"Registered {kind} names: {', '.join(existing) if existing else '(none)'}.")
    loaded = plugins.loaded_plugins()
    if plugins.autoload_disabled() and not loaded:
        lines.append(f"Plug-in autoload is disabled ({plugins.DISABLE_ENV_VAR}=1), so no plug-ins were loaded.")
    elif loaded:
        described = ", ".join(
            f"{p.name} ({p.distribution}{'' if p.loaded else ', FAILED: ' + (p.error or '')})" for p in loaded.values()
        )
        lines.append(f"Loaded plug-ins: {described}.")
    else:
        lines.append("No plug-ins are installed (entry-point group 'worldmodels.plugins').")
    lines.append("List what exists with `worldmodels list` or worldmodels.list_components().")
    return " ".join(lines)


def entry_for_target(target: str) -> RegistryEntry | None:
    """The registered entry whose class or function has the dotted path ``target``, if any."""
    _ensure_builtins()
    plugins.load_plugins()
    for kind_entries in _entries.values():
        for entry in kind_entries.values():
            if entry.target == target:
                return entry
    return None
