"""Every table about messages agrees with the message kinds (``protocol.mti.KINDS``).

The kinds are the one place a request/response pair is described; what is still kept elsewhere
(the host's handlers, the catalogue's names, the field numbers of the checks) is held here to the
same set of MTIs, so a pair added to one and forgotten in another fails a test, not a run.
"""

from __future__ import annotations

import pytest

from possim.acquirer_sim.host import HANDLERS
from possim.i18n import Tr
from possim.pos_sim.exchanges import ExchangeKind
from possim.pos_sim.terminal import EXCHANGES
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol import validation


def test_the_views_are_the_kinds() -> None:
    kinds = M.KINDS.values()
    assert set(M.REQUESTS) == {m for k in kinds for m in k.requests}
    assert set(M.RESPONSES) == {k.response for k in kinds}
    assert set(M.KNOWN) == set(M.REQUESTS) | set(M.RESPONSES)
    assert not set(M.REQUESTS) & set(M.RESPONSES)
    assert set(M.NAMES) == set(M.KNOWN) == set(validation.REQUIRED)
    assert set(validation.ALLOWED_CODES) <= set(M.REQUESTS)


@pytest.mark.parametrize("kind", M.KINDS.values(), ids=M.KINDS.names())
def test_each_kind_answers_with_its_response(kind: M.MessageKind) -> None:
    assert {M.response_to(m) for m in kind.requests} == {kind.response}
    assert all(M.KINDS.of(m) is kind for m in kind.mtis)


def test_the_host_handles_every_request_and_nothing_else() -> None:
    assert set(HANDLERS) == set(M.REQUESTS)


def test_every_name_and_event_label_is_in_the_catalogue() -> None:
    zh = Tr("zh")
    labels = [*M.NAMES.values(), *(label for k in M.KINDS.values() for label in k.events.values() if label)]
    untranslated = [label for label in labels if zh(label) == label]
    assert untranslated == []


def test_kind_events_are_trace_events() -> None:
    assert all(name in ev.REGISTRY for k in M.KINDS.values() for name in k.events)


def test_every_required_field_has_a_field_number() -> None:
    assert {a for attrs in validation.REQUIRED.values() for a in attrs} <= set(validation.FIELD_NUMBERS)


def test_the_terminal_runs_every_exchange_kind() -> None:
    assert set(EXCHANGES) == set(ExchangeKind)


def test_a_kind_cannot_take_another_kind_s_mti() -> None:
    with pytest.raises(ValueError, match="0810 belongs to another kind"):
        M.KINDS.register(M.MessageKind("echo", "0820", M.SIGN_ON_RESPONSE, "echo", "echo response"))
    assert "echo" not in M.KINDS
