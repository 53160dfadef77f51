"""An answer must answer *this* request; a key must name one sale; a frame the host cannot decode
still gets a 30 when it names its sender.

Real ISO 8583 (and CUP) bytes with MACs, the real terminal and host state machines, ledger and
journals in SQLite files; the checker judges from those files only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import iso8583
import pytest

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost, AwaitIssuer, HostAction, Reply
from possim.acquirer_sim.ledger import Ledger
from possim.judging.checker import Verdict, check
from possim.pos_sim.actions import Action, Outcome, WriteJournal
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.journal import Journal
from possim.pos_sim.records import SaleStatus, TxnRecord
from possim.pos_sim.terminal import Terminal
from possim.processes import keys
from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol.messages import Message
from possim.scenario import load
from possim.simulation import simulate
from tests.conftest import SCENARIOS
from tests.helpers import purchase, sends

TID = "POS00001"
RING = keys.derive(7, [TID])
KEY = RING.mac_key(TID)
PROFILES = ("iso", "cup")


class Till:
    """One terminal and its journal file: every ``WriteJournal`` is written, as the driver does."""

    def __init__(self, path: Path, profile: str) -> None:
        currency = "156" if profile == "cup" else "978"
        self.term = Terminal(TerminalConfig(policy="reversal", profile=profile, currency=currency,  # type: ignore[arg-type]
                                            reversal_attempts=3), KEY)
        self.journal = Journal(path, TID)

    def __call__(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            if isinstance(action, WriteJournal):
                self.journal.write(action.record)
        return actions


def new_host(path: Path, profile: str) -> AcquirerHost:
    config = HostConfig(profile=profile)  # type: ignore[arg-type]
    return AcquirerHost(config, Ledger(path, default_balance=config.default_balance), random.Random(0),
                        RING.mac_keys())


def deliver(host: AcquirerHost, now: float, data: bytes) -> list[bytes]:
    """What the host answers to ``data`` (under ``cup`` once the issuer has answered)."""
    out: list[bytes] = []
    actions: list[HostAction] = list(host.receive(now, data))
    while actions:
        action = actions.pop(0)
        if isinstance(action, AwaitIssuer):
            actions += host.issuer_answered(now + action.delay, action.key)
        elif isinstance(action, Reply):
            out.append(action.data)
    return out


def outcomes(actions: Sequence[object]) -> list[Outcome]:
    return [a for a in actions if isinstance(a, Outcome)]


def verdict(tills: Sequence[Till], host: AcquirerHost) -> Verdict:
    return check([t.journal.conn for t in tills], host.ledger.conn)


def debits(host: AcquirerHost) -> list[tuple[str, str, int]]:
    return host.ledger.conn.execute("SELECT kind, stan, amount FROM entries ORDER BY id").fetchall()


def first_sale(tmp_path: Path, profile: str) -> tuple[AcquirerHost, Till, bytes]:
    """A 30.00 sale approved and debited; its genuine answer (MAC and all) is what an attacker records."""
    host, till = new_host(tmp_path / "ledger.db", profile), Till(tmp_path / "before.db", profile)
    sale = sends(till(till.term.request_payment(0.0, purchase(1, 3000))))[0]
    genuine = deliver(host, 0.1, sale.data)[0]
    assert [o.status for o in outcomes(till(till.term.receive(0.2, genuine)))] == ["approved"]
    return host, till, genuine


# -- the terminal: MTI + STAN + terminal id is not enough -------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_a_replayed_answer_to_an_earlier_sale_with_the_same_stan_is_ignored(tmp_path: Path, profile: str) -> None:
    host, before, genuine = first_sale(tmp_path, profile)
    # the journal is lost; the terminal restarts at its first STAN an hour later and sells 500.00
    after = Till(tmp_path / "after.db", profile)
    new_sale = codec.decode(sends(after(after.term.request_payment(3600.0, purchase(2, 50000))))[0].data)
    old = codec.decode(genuine, KEY)
    assert new_sale.stan == old.stan and new_sale.transmission != old.transmission
    # the sale never reaches the host; the attacker replays the genuine 0210 (valid MAC, same STAN)
    ignored = after(after.term.receive(3600.5, genuine))
    assert ignored == [ev.ResponseMismatch(old.mti, old.stan, TID, f"field 7 {old.transmission} != "
                                           f"{new_sale.transmission}", txn=2)]
    assert after.term.inflight is not None and after.term.records[2].status == "pending"
    # the exchange times out as if nothing came; the policy reverses (nothing was debited: 25)
    reversal = sends(after(after.term.timer_fired(3630.0, "response")))
    assert [s.mti for s in reversal] == ["0400"]
    shown = outcomes(after(after.term.receive(3630.2, deliver(host, 3630.1, reversal[0].data)[0])))
    assert all(o.status != "approved" for o in shown)
    assert after.term.records[2].status == "reversed" and after.term.idle
    judged = verdict([before, after], host)
    assert judged.counts["approved"] == 1 and judged.counts["reversed"] == 1
    assert judged.settled and judged.counts["phantom_approvals"] == 0 and judged.merchant_loss == 0
    assert debits(host) == [("debit", "000001", 3000)]


def test_a_replayed_answer_under_the_very_same_key_is_caught_by_its_amount(tmp_path: Path) -> None:
    """Clock set back to the same second as well: field 7 agrees, field 4 does not."""
    _, _, genuine = first_sale(tmp_path, "iso")
    after = Till(tmp_path / "after.db", "iso")
    after(after.term.request_payment(0.0, purchase(2, 50000)))
    ignored = after(after.term.receive(0.5, genuine))
    assert [(type(a), getattr(a, "reason", None)) for a in ignored] == [(ev.ResponseMismatch, "amount 30.00 != 500.00")]
    assert after.term.inflight is not None


def test_a_status_answer_about_another_sale_is_ignored(tmp_path: Path) -> None:
    """A 0610 carries the amount of the sale it reports on: a replayed one for a 30.00 sale does not finish a 500.00."""
    term = Terminal(TerminalConfig(policy="query"), KEY)
    term.request_payment(0.0, purchase(1, 50000))
    query = codec.decode(sends(term.timer_fired(30.0, "response"))[0].data)
    other = query.response("00", status="APPROVED", amount=3000, rrn="329100000001", auth_code="A00001")
    actions = term.receive(30.5, codec.encode(other, KEY))
    assert [getattr(a, "reason", None) for a in actions] == ["amount 30.00 != 500.00"]
    assert not outcomes(actions) and term.inflight is not None


def test_an_advice_answer_naming_another_rrn_is_ignored() -> None:
    term = Terminal(TerminalConfig(policy="reversal"), KEY)
    auth = codec.decode(sends(term.request_payment(0.0, purchase(1, 10000, kind="auth")))[0].data)
    approval = auth.response("00", rrn="329100000001", auth_code="A00001")
    advice = codec.decode(sends(term.receive(0.5, codec.encode(approval, KEY)))[0].data)
    assert advice.mti == "0220" and advice.rrn == "329100000001"
    wrong = term.receive(1.0, codec.encode(advice.response("00", rrn="329100000099"), KEY))
    assert [getattr(a, "reason", None) for a in wrong] == ["field 37 329100000099 != 329100000001"]
    assert term.records[1].completion == "pending"
    term.receive(1.5, codec.encode(advice.response("00"), KEY))
    assert term.records[1].completion == "acked"


def test_a_late_answer_from_before_a_stan_wrap_is_not_journaled_as_a_later_sales() -> None:
    """The journal holds sale 1 with STAN 000001 from the last round; the STAN wraps past 999999 and
    sale 3 gets 000001 again. Sale 1's 0210, arriving late, is nobody's answer: not sale 3's late one."""
    before = TxnRecord(txn_id=1, intent="basket-1", kind="purchase", mti="0200", stan="000001",
                       transmission="1124090000", pan="4000000000000002", amount=3000, completion_amount=3000,
                       started_at=0.0, status=SaleStatus.APPROVED)
    term = Terminal(TerminalConfig(policy="reversal", stan_start=999_999), KEY)
    term.restore(0.0, [before])
    stans = []
    for txn, at in ((2, 10.0), (3, 20.0)):
        sale = codec.decode(sends(term.request_payment(at, purchase(txn, 1000 * txn)))[0].data)
        term.receive(at + 0.5, codec.encode(sale.response("00", rrn=f"32910000000{txn}", auth_code="A00001"), KEY))
        stans.append(sale.stan)
    assert stans == ["999999", "000001"] and term.records[3].status == "approved"
    late = Message(mti="0210", stan="000001", transmission="1124090000", tid=TID, pan="4000000000000002",
                   amount=3000, rrn="329100000001", response_code="00")
    actions = term.receive(30.0, codec.encode(late, KEY))
    assert [type(a) for a in actions] == [ev.UnmatchedMessage]
    assert term.records[3].late_responses == 0


@pytest.mark.parametrize("policy", ["reversal", "query-then-reversal"])
def test_possims_own_host_always_answers_this_request(policy: str) -> None:
    """Every answer kind of possim's host (both profiles, every scenario's faults) echoes field 7,
    field 4 and the RRN the check compares: not one answer of a scenario run is refused."""
    for path in sorted(SCENARIOS.glob("*.toml")):
        scenario = load(path)
        if scenario.is_fleet:
            continue
        records = simulate(scenario, policy).trace.records
        assert [s.event for s in records if isinstance(s.event, ev.ResponseMismatch)] == [], path.stem


# -- the host: a key is one sale --------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "rc"), [("iso", "94"), ("cup", "30")])
def test_a_new_sale_under_a_used_key_is_refused_and_books_nothing(tmp_path: Path, profile: str, rc: str) -> None:
    host, before, genuine = first_sale(tmp_path, profile)
    # journal lost and the clock set back to the same second: STAN and field 7 repeat, the key too
    after = Till(tmp_path / "after.db", profile)
    sale = sends(after(after.term.request_payment(0.0, purchase(2, 50000))))[0]
    assert codec.decode(sale.data).key() == codec.decode(genuine).key()
    assert outcomes(after(after.term.receive(0.05, genuine))) == []  # the stored approval, replayed: ignored
    actions = host.receive(0.1, sale.data)
    conflict = [a for a in actions if isinstance(a, ev.DuplicateKeyConflict)]
    assert [(c.rc, c.reason, c.amount, c.original_amount) for c in conflict] == [
        (rc, "amount 500.00 != 30.00", 50000, 3000)]
    answer = codec.decode(deliver(host, 0.1, sale.data)[0], KEY)  # the same again: still refused
    assert (answer.response_code, answer.amount, answer.rrn) == (rc, 50000, None)
    shown = outcomes(after(after.term.receive(0.2, next(a for a in actions if isinstance(a, Reply)).data)))
    assert [(o.status, o.display) for o in shown] == [("declined", f"DECLINED ({rc})")]
    assert debits(host) == [("debit", "000001", 3000)]
    judged = verdict([before, after], host)
    assert (judged.counts["approved"], judged.counts["declined"]) == (1, 1)
    assert judged.settled and judged.counts["phantom_approvals"] == 0 and judged.merchant_loss == 0


def test_another_card_under_a_used_key_is_refused() -> None:
    host = AcquirerHost(HostConfig(), Ledger(), random.Random(0))
    sale = Message(mti="0200", stan="000001", transmission="1125100000", tid=TID, pan="4000000000000002",
                   processing_code="000000", amount=3000, currency="978")
    assert codec.decode(deliver(host, 0.0, codec.encode(sale))[0]).approved
    other = codec.decode(deliver(host, 1.0, codec.encode(replace(sale, pan="4000000000000010")))[0])
    assert other.response_code == "94"
    assert host.ledger.conn.execute("SELECT kind, amount FROM entries").fetchall() == [("debit", 3000)]


@pytest.mark.parametrize("profile", PROFILES)
def test_a_true_duplicate_still_gets_the_first_answer_and_one_debit(tmp_path: Path, profile: str) -> None:
    """Same key, amount and card: the stored answer (under ``cup`` a copy is answered 94, as before)."""
    host, till = new_host(tmp_path / "ledger.db", profile), Till(tmp_path / "journal.db", profile)
    sale = sends(till(till.term.request_payment(0.0, purchase(1, 3000))))[0]
    first = deliver(host, 0.1, sale.data)[0]
    again = deliver(host, 0.5, sale.data)[0]
    if profile == "iso":
        assert again == first
    else:
        assert codec.decode(again, KEY).response_code == "94"
    assert [o.status for o in outcomes(till(till.term.receive(0.6, first)))] == ["approved"]
    assert debits(host) == [("debit", "000001", 3000)]
    assert host.ledger.conn.execute("SELECT duplicates FROM originals").fetchall() == [(1,)]
    assert verdict([till], host).settled


# -- the host: a frame it cannot decode --------------------------------------------------------------

FIELDS = {"t": "0200", "2": "4000000000000002", "3": "000000", "4": "000000002500", "7": "1125100000",
          "11": "000042", "41": TID, "42": "MERCHANT0000001", "49": "978"}


def iso_frame(**changes: str | None) -> bytes:
    """Real ASCII ISO 8583 bytes with fields changed or (None) left out: what another tool sends."""
    doc = {k: v for k, v in {**FIELDS, **changes}.items() if v is not None}
    return bytes(iso8583.encode(doc, codec.SPEC)[0])


def cup_frame(**changes: str | None) -> bytes:
    doc = {k: v for k, v in {**FIELDS, "49": "156", **changes}.items() if v is not None}
    return cup.encode_fields(doc)


@pytest.mark.parametrize("mti", ["0200", "0100"])
@pytest.mark.parametrize("profile", PROFILES)
def test_a_request_without_field_7_is_answered_30_without_a_mac(mti: str, profile: str) -> None:
    host = AcquirerHost(HostConfig(profile=profile), Ledger(), random.Random(0), RING.mac_keys())  # type: ignore[arg-type]
    frame = (cup_frame if profile == "cup" else iso_frame)(t=mti, **{"7": None})
    with pytest.raises(codec.ProtocolError, match="missing field"):
        codec.decode(frame)
    actions = host.receive(5.0, frame)
    [event] = [a for a in actions if isinstance(a, ev.Event)]
    assert isinstance(event, ev.FormatErrorAnswered) and (event.tid, event.stan, event.mti) == (TID, "000042", mti)
    [reply] = [a for a in actions if isinstance(a, Reply)]
    assert not reply.authenticated  # an unreadable frame proves nobody: answered only where it came from
    with pytest.raises(codec.MacMissingError):  # its fields are the sender's: the host signs none of them
        codec.decode(reply.data, KEY)
    answer = codec.decode(reply.data)
    assert codec.dialect_of(reply.data) == profile
    assert (answer.mti, answer.stan, answer.tid, answer.response_code) == (
        str(int(mti) + 10).zfill(4), "000042", TID, "30")
    assert answer.transmission == "1125100005" and answer.amount == 2500  # the host's own field 7; field 4 echoed
    assert host.ledger.conn.execute("SELECT COUNT(*) FROM originals").fetchone()[0] == 0


def test_a_malformed_field_is_answered_30_without_echoing_it() -> None:
    host = AcquirerHost(HostConfig(), Ledger(), random.Random(0))
    actions = host.receive(0.0, iso_frame(**{"4": "00000000AB00"}))
    [reply] = [a for a in actions if isinstance(a, Reply)]
    answer = codec.decode(reply.data)
    assert (answer.response_code, answer.transmission, answer.amount) == ("30", "1125100000", None)
    assert "field 4" in next(a for a in actions if isinstance(a, ev.FormatErrorAnswered)).reason


@pytest.mark.parametrize(("frame", "keys_", "sender", "event"), [
    (b"\x00\x01junk", None, None, "malformed_frame"),
    (iso_frame(t="0210", **{"7": None}), None, None, "malformed_frame"),  # an answer: nobody asked
    (iso_frame(**{"7": None, "41": "POS\x010001"}), None, None, "malformed_frame"),  # no readable terminal id
    (iso_frame(**{"7": None, "41": "POS00009"}), RING.mac_keys(), None, "request_dropped"),  # no key to MAC with
    (iso_frame(**{"7": None}), None, "POS00002", "identity_mismatch"),  # the connection is another terminal's
])
def test_what_names_nobody_answerable_is_dropped_with_an_event(frame: bytes, keys_: object, sender: str | None,
                                                                event: str) -> None:
    host = AcquirerHost(HostConfig(), Ledger(), random.Random(0), keys_)  # type: ignore[arg-type]
    actions = host.receive(0.0, frame, sender)
    assert [a.event for a in actions if isinstance(a, ev.Event)] == [event]
    assert not [a for a in actions if isinstance(a, Reply)]
