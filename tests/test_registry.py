"""The registry: decorator registration, listing with wildcards, helpful errors for unknown names."""

from __future__ import annotations

import pytest
from toy_components import ToyArgmax

import worldmodels
from worldmodels import registry
from worldmodels.registry import RegistryError, UnknownComponentError


def test_list_components_lists_every_kind_sorted_naturally() -> None:
    listing = worldmodels.list_components()
    assert set(listing) == set(worldmodels.KINDS)
    assert "toy-world" in listing["model"]
    assert "toy-tokenizer" in listing["tokenizer"]

    @worldmodels.register("sampler", "zz-sampler-10")
    class S10(ToyArgmax):
        """Ten."""

    @worldmodels.register("sampler", "zz-sampler-9")
    class S9(ToyArgmax):
        """Nine."""

    try:
        assert worldmodels.list_components("sampler", "zz-sampler-*") == ["zz-sampler-9", "zz-sampler-10"]
    finally:
        registry.unregister("sampler", "zz-sampler-9")
        registry.unregister("sampler", "zz-sampler-10")


def test_wildcard_filters_and_no_match_is_empty() -> None:
    assert worldmodels.list_components("model", "toy-*") == ["toy-continuous-world", "toy-world"]
    assert worldmodels.list_components("model", "toy-w*") == ["toy-world"]
    assert worldmodels.list_components("model", "no-such-*") == []


def test_duplicate_name_is_an_error_unless_overridden() -> None:
    @worldmodels.register("sampler", "dup-sampler")
    class First(ToyArgmax):
        """First."""

    try:
        with pytest.raises(RegistryError, match="already registered"):

            @worldmodels.register("sampler", "dup-sampler")
            class Second(ToyArgmax):
                """Second."""

        @worldmodels.register("sampler", "dup-sampler", override=True)
        class Third(ToyArgmax):
            """Third."""

        assert registry.get_entry("sampler", "dup-sampler").obj is Third
    finally:
        registry.unregister("sampler", "dup-sampler")


def test_only_subclasses_of_the_interface_can_be_registered() -> None:
    with pytest.raises(RegistryError, match="Only subclasses of worldmodels.Tokenizer"):
        worldmodels.register("tokenizer", "not-a-tokenizer")(ToyArgmax)


def test_unknown_kind_suggests_the_right_kind() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'tokenizer'"):
        worldmodels.list_components("tokeniser")


def test_unknown_name_suggests_close_matches_and_lists_what_exists() -> None:
    with pytest.raises(UnknownComponentError) as info:
        worldmodels.build("toy-wrld")
    message = str(info.value)
    assert "Did you mean 'toy-world'" in message
    assert "Registered model names:" in message and "toy-world" in message
    assert "plug-in" in message.lower()


def test_name_registered_under_another_kind_is_explained() -> None:
    with pytest.raises(UnknownComponentError, match="registered as a tokenizer"):
        registry.get_entry("dynamics", "toy-tokenizer")


def test_entries_record_the_providing_distribution_and_description() -> None:
    entry = registry.get_entry("model", "toy-world")
    assert entry.description.startswith("A 16x16 world")
    assert entry.distribution == "toy_components"
    assert entry.target == "toy_components.toy_world"
