"""The one registry shape every concept uses: names in order, one-line errors, temporary entries."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from possim.protocol.registry import Registry


@dataclass(frozen=True)
class Thing:
    name: str


def test_names_in_registration_order_and_lookup() -> None:
    reg: Registry[Thing] = Registry("thing", lambda t: t.name)
    a, b = reg.register(Thing("a")), reg.register(Thing("b"))
    assert reg.names() == ("a", "b") and reg.values() == (a, b) and reg.get("b") is b
    assert "a" in reg and "c" not in reg and list(reg) == ["a", "b"] and len(reg) == 2


def test_unknown_name_is_one_line_naming_the_choices() -> None:
    reg: Registry[Thing] = Registry("thing", lambda t: t.name)
    reg.register(Thing("a"))
    with pytest.raises(ValueError, match=r"^unknown thing 'z' \(choose from a\)$"):
        reg.get("z")


def test_a_name_registers_once() -> None:
    reg: Registry[Thing] = Registry("thing", lambda t: t.name)
    reg.register(Thing("a"))
    with pytest.raises(ValueError, match="registered already"):
        reg.register(Thing("a"))


def test_added_lasts_for_the_block_only_even_when_it_raises() -> None:
    reg: Registry[Thing] = Registry("thing", lambda t: t.name)
    with pytest.raises(RuntimeError), reg.added(Thing("tmp")):
        assert reg.names() == ("tmp",)
        raise RuntimeError
    assert reg.names() == ()
