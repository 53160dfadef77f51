"""Hypothesis strategies for possim fault schedules: public, for QA's own pytest suites.

Every fault here is an explicit Hypothesis draw (a list of targeted rules, partitions and
host crashes), never a PRNG seeded from one drawn integer, so shrinking reaches a minimal
schedule you can read. Every schedule heals: rules hit a finite number of messages,
partitions and crashes end, and the terminal gets enough retries to outlast them, so a
violation is a protocol failure, not an endless outage.

Example (copy into a test file)::

    from hypothesis import given
    from possim.pos_sim.testing import schedules
    from possim.scenario import from_dict
    from possim.simulation import simulate

    @given(schedules(max_transactions=5))
    def test_reversal_never_loses_money(schedule):
        verdict = simulate(from_dict(schedule), "reversal").verdict
        assert verdict.counts["orphaned_debits"] == 0
        assert verdict.counts["double_debits"] == 0
"""

from __future__ import annotations

from typing import Any

import tomli_w
from hypothesis import strategies as st

from possim.protocol.faults import WALLET_FORGERY_KINDS

#: What can be lost, delayed or duplicated, per direction. Order matters for shrinking:
#: earlier entries are "simpler", so a minimal failure prefers the plain purchase flow.
TO_HOST_MTIS = ("0200", "0400", "0401", "0600", "0100", "0220", "0221")
TO_TERMINAL_MTIS = ("0210", "0410", "0610", "0110", "0230")

#: Limited-funds accounts for transaction mixes; the default card has plenty.
CARDS = {"4000000000000002": None, "4000000000000010": "150.00", "4000000000000028": "60.00"}

#: How long the schedules' faults may last, in seconds: the terminal's retries outlast this.
MAX_OUTAGE = 120.0


def amounts(max_amount: int = 200_00) -> st.SearchStrategy[str]:
    """Decimal amount strings from 0.01 upwards."""
    return st.integers(1, max_amount).map(_cents)


def _cents(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


#: Every (action, direction, MTI) a rule can target, simplest first: shrinking walks towards
#: index 0, so a minimal failure prefers "drop the 0210 on its way to the terminal".
RULE_TARGETS: tuple[tuple[str, str, str], ...] = tuple(
    (action, direction, mti)
    for action in ("drop", "delay", "duplicate")
    for direction, mtis in (("to_terminal", TO_TERMINAL_MTIS), ("to_host", TO_HOST_MTIS))
    for mti in mtis
)

# Each fault is one flat tuple of draws: Hypothesis generates (and shrinks) those several
# times faster than nested composites, which matters at thousands of examples.
_RULE = st.tuples(st.sampled_from(RULE_TARGETS), st.integers(1, 3), st.integers(0, int(MAX_OUTAGE)))
_PARTITION = st.tuples(st.integers(0, 600), st.integers(1, int(MAX_OUTAGE)),
                       st.sampled_from(["both", "to_host", "to_terminal"]))
_CRASH = st.tuples(st.sampled_from(["0200", "0100"]), st.integers(1, 3), st.integers(1, int(MAX_OUTAGE)))
_POWER = st.tuples(st.integers(0, 600), st.integers(1, int(MAX_OUTAGE)))
#: Forgeries: (at, kind, target sale, how it is signed, queries per forged batch).
_FORGERY = st.tuples(st.integers(0, 600), st.sampled_from(["reversal", "approval", "query"]), st.integers(1, 3),
                     st.sampled_from(["wrong", "none"]), st.integers(1, 5))
_TXN = st.tuples(st.sampled_from(["purchase", "auth"]), st.integers(1, 200_00), st.sampled_from(sorted(CARDS)),
                 st.integers(0, 300), st.booleans(), st.integers(1, 100))


def _rule(t: tuple[tuple[str, str, str], int, int]) -> dict[str, Any]:
    (action, direction, mti), nth, delay = t
    rule: dict[str, Any] = {"action": action, "direction": direction, "mti": mti, "nth": nth}
    if action != "drop":
        rule["delay"] = float(delay)
    return rule


def _partition(t: tuple[int, int, str]) -> dict[str, Any]:
    start, length, direction = t
    return {"start": float(start), "end": float(start + length), "direction": direction}


def _crash(t: tuple[str, int, int]) -> dict[str, Any]:
    return {"mti": t[0], "nth": t[1], "down_for": float(t[2])}


def _transactions(ts: list[tuple[str, int, str, int, bool, int]]) -> list[dict[str, Any]]:
    txns, at = [], 0.0
    for kind, cents, pan, gap, retries, completion_pct in ts:
        txn: dict[str, Any] = {"at": at, "kind": kind, "amount": _cents(cents), "pan": pan}
        if kind == "auth" and completion_pct < 100:
            txn["completion_amount"] = _cents(max(1, cents * completion_pct // 100))
        if retries:
            txn["customer_retries"] = True
        txns.append(txn)
        at += float(gap)
    return txns


def fault_rules(max_rules: int = 6) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Targeted faults: drop, delay or duplicate the nth message of an MTI in one direction."""
    return st.lists(_RULE, max_size=max_rules).map(lambda rs: [_rule(r) for r in rs])


def partitions(max_partitions: int = 2) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Network partitions that start within 600 s and heal within ``MAX_OUTAGE`` seconds."""
    return st.lists(_PARTITION, max_size=max_partitions).map(lambda ps: [_partition(p) for p in ps])


def host_crashes(max_crashes: int = 1) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Host crashes after committing the nth purchase/authorization; back within MAX_OUTAGE."""
    return st.lists(_CRASH, max_size=max_crashes, unique_by=lambda c: (c[0], c[1])).map(
        lambda cs: [_crash(c) for c in cs])


def power_losses(max_losses: int = 1) -> st.SearchStrategy[list[dict[str, Any]]]:
    """The terminal loses power (memory gone, journal kept) and boots within MAX_OUTAGE seconds."""
    return st.lists(_POWER, max_size=max_losses).map(
        lambda ps: [{"at": float(at), "down_for": float(d)} for at, d in ps])


def forgeries(max_forgeries: int = 3) -> st.SearchStrategy[list[dict[str, Any]]]:
    """An attacker's forged reversals, approvals and queries at points of the run (MACs stay on:
    the attacker lacks the keys, so with the run's MACs nothing it sends may change anything)."""
    return st.lists(_FORGERY, max_size=max_forgeries).map(
        lambda fs: [{"at": float(at), "kind": kind, "target": target, "mac": mac, "count": count}
                    for at, kind, target, mac, count in fs])


def transaction_mixes(max_transactions: int = 5, min_transactions: int = 1) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Purchases and authorization + completion, spaced in time, on cards with limited funds,
    some by customers who pay again after a failed screen."""
    return st.lists(_TXN, min_size=min_transactions, max_size=max_transactions).map(_transactions)


def link_faults() -> st.SearchStrategy[dict[str, Any]]:
    """Random link faults (loss, latency, duplication, reordering) for a ``[network.*]`` table.

    Combine with ``st.randoms(use_true_random=False)`` as the RNG so the random choices
    shrink too; the possim fuzz command uses explicit rules only, so it can write them out.
    """
    latency = st.one_of(
        st.fixed_dictionaries({"dist": st.just("constant"), "value": st.floats(0, 2)}),
        st.fixed_dictionaries({"dist": st.just("uniform"), "low": st.just(0.0), "high": st.floats(0, 3)}),
        st.fixed_dictionaries({"dist": st.just("lognormal"), "value": st.floats(0.01, 1), "sigma": st.floats(0, 1.5)}),
    )
    return st.fixed_dictionaries({"loss": st.floats(0, 0.3), "latency": latency, "duplicate": st.floats(0, 0.1),
                                  "reorder": st.floats(0, 0.1)})


#: Terminal settings of generated schedules: enough retries to outlast every generated fault.
FUZZ_TERMINAL = {"reversal_attempts": 20, "advice_attempts": 20, "backoff_max": 60.0}


def schedules(max_transactions: int = 5, max_rules: int = 6, min_transactions: int = 1, *, wallet: bool = False,
              forgeries: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """A whole scenario (as a dict ready for ``possim.scenario.from_dict``) with its faults.

    Draw order steers shrinking: Hypothesis prefers empty earlier lists, so outages are
    shrunk away first and a minimal failure reads as a few targeted message faults.

    ``wallet``: QR wallet payments in the mix (``wallet_schedules``: at most 3 wallet payments
    beside up to 2 card ones, faults on every wallet message, slow customers, rescans).
    ``forgeries``: an attacker's forged reversals, approvals and queries at points of the run
    (with ``wallet``, wallet forgeries too: ``wallet_forgeries``); the run's MACs stay on, so a
    policy that holds its invariants must hold them still. Both are off by default: the same
    draws as a suite written before they existed.
    """
    if wallet:
        return wallet_schedules(min(max_transactions, 3), min(max_rules, 4), forgeries=forgeries)
    return st.tuples(transaction_mixes(max_transactions, min_transactions), _sometimes(partitions(), 6),
                     _sometimes(host_crashes(), 7), _sometimes(power_losses(), 8),
                     fault_rules(max_rules), _forged(forgeries)).map(_schedule)


def _forged(drawn: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Forgeries in a share of schedules when ``drawn``; else always none, with no draw at all."""
    return _sometimes(forgeries(), 6) if drawn else st.builds(list)


def _sometimes(outages: st.SearchStrategy[list[dict[str, Any]]], threshold: int) -> st.SearchStrategy[
        list[dict[str, Any]]]:
    """Outages in a share of schedules only (a gate drawn from 0-9 must reach ``threshold``).

    Gating keeps most failures message-shaped, and gives the shrinker a one-step way to
    remove a whole outage: lowering the gate to 0.
    """
    return st.tuples(st.integers(0, 9), outages).map(lambda t: t[1] if t[0] >= threshold else [])


class Schedule(dict[str, Any]):
    """A generated schedule: the scenario as a dict (``possim.scenario.from_dict`` takes it as it
    is) that shows itself as the scenario's TOML.

    Why: Hypothesis prints a failing value by its repr, and by default that is the calls that
    built it (``_schedule((_transactions([...``), which nobody can read or run. As TOML it is
    the scenario to save and replay with ``possim run FILE``.
    """

    def toml(self) -> str:
        """The scenario file's text."""
        return tomli_w.dumps(self, multiline_strings=True)

    def __repr__(self) -> str:
        return "\n# a possim scenario: save it as a .toml file, replay it with possim run FILE\n" + self.toml()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How Hypothesis's falsifying example shows it (its printer asks for this before anything else)."""
        printer.text(repr(self))


def _schedule(parts: tuple[list[dict[str, Any]], ...]) -> Schedule:
    txns, parts_, crashes, powers, rules, forged = parts
    return Schedule({
        "title": "Generated fault schedule",
        "description": "A fault schedule generated by possim fuzz.",
        "seed": 0,
        "terminal": dict(FUZZ_TERMINAL),
        "host": {"accounts": {pan: bal for pan, bal in CARDS.items() if bal}, "crash_after_commit": crashes},
        "faults": rules,
        "partitions": parts_,
        "power_losses": powers,
        "forgeries": forged,
        "transactions": txns,
    })


# -- wallet payments (QR payment codes) -------------------------------------------------------

#: Wallet kinds a rule can target, per direction (protocol.wallet).
WALLET_TO_HOST = ("QR_PAY", "QR_QUERY", "QR_CANCEL")
WALLET_TO_TERMINAL = ("QR_PAY_RESP", "QR_QUERY_RESP", "QR_CANCEL_RESP")
WALLET_RULE_TARGETS: tuple[tuple[str, str, str], ...] = tuple(
    (action, direction, kind)
    for action in ("drop", "delay", "duplicate")
    for direction, kinds in (("to_terminal", WALLET_TO_TERMINAL), ("to_host", WALLET_TO_HOST))
    for kind in kinds
)
_WALLET_RULE = st.tuples(st.sampled_from(WALLET_RULE_TARGETS), st.integers(1, 3), st.integers(0, int(MAX_OUTAGE)))
#: How long a customer takes to confirm on the phone: mostly at once (no password), else up to
#: 60 s. The delay is drawn only when the gate says so, so a shrunk failure prefers a customer
#: who pays at once and shows the network fault that matters.
_CONFIRM = st.integers(0, 9).flatmap(lambda gate: st.just(0) if gate < 6 else st.integers(1, 60))
#: amount, provider, pay answer lost, confirmation delay, gives up, gap, pays again, by what.
_WALLET_TXN = st.tuples(st.integers(1, 200_00), st.sampled_from(["alipay", "wechat"]), st.booleans(), _CONFIRM,
                        st.booleans(), st.integers(0, 300), st.booleans(), st.sampled_from(["qr_wallet", "credit"]))


def wallet_transaction_mixes(max_transactions: int = 3, min_transactions: int = 1) -> st.SearchStrategy[
        list[dict[str, Any]]]:
    """QR wallet payments: Alipay or WeChat, customers who confirm at once, slowly or never,
    some who pay again (a rescan or a card) after a failed screen."""
    return _wallet_mix(max_transactions, min_transactions).map(lambda ts: [_without_lost(t) for t in ts])


def _wallet_mix(max_transactions: int, min_transactions: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Wallet payments, each marked ``_lost`` when its pay answer is to be lost (one draw: it
    shrinks to the single lost answer rather than to a longer list of rules)."""
    return st.lists(_WALLET_TXN, min_size=min_transactions, max_size=max_transactions).map(_wallet_transactions)


def _without_lost(txn: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in txn.items() if k != "_lost"}


def _wallet_transactions(ts: list[tuple[int, str, bool, int, bool, int, bool, str]]) -> list[dict[str, Any]]:
    txns, at = [], 0.0
    for cents, provider, lost, confirm, gives_up, gap, retries, retry_with in ts:
        txn: dict[str, Any] = {"at": at, "amount": _cents(cents), "card_type": "qr_wallet", "provider": provider}
        if confirm:
            txn["confirm_after"] = float(confirm)
        if gives_up:
            txn["gives_up"] = True
        if retries:
            txn |= {"customer_retries": True, "retry_with": retry_with}
        txn["_lost"] = lost
        txns.append(txn)
        at += float(gap)
    return txns


def wallet_fault_rules(max_rules: int = 4) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Targeted faults on wallet messages: drop, delay or duplicate the nth pay, query, cancel or answer."""
    return st.lists(_WALLET_RULE, max_size=max_rules).map(lambda rs: [_rule(r) for r in rs])


#: A wallet forgery: (at, kind, target order, how it is signed).
_WALLET_FORGERY = st.tuples(st.integers(0, 600), st.sampled_from(WALLET_FORGERY_KINDS), st.integers(1, 3),
                            st.sampled_from(["wrong", "none"]))


def wallet_forgeries(max_forgeries: int = 3) -> st.SearchStrategy[list[dict[str, Any]]]:
    """An attacker's wallet requests at points of the run: a cancel, refund or query of the victim's
    order, a pay for an unknown terminal, a replayed genuine request, a pay with another amount
    under its original sign (``protocol.faults.Forgery``). Keys stay on: none may move money."""
    return st.lists(_WALLET_FORGERY, max_size=max_forgeries).map(
        lambda fs: [{"at": float(at), "kind": kind, "target": target, "mac": mac} for at, kind, target, mac in fs])


def wallet_schedules(max_transactions: int = 3, max_rules: int = 4, *, forgeries: bool = False) -> st.SearchStrategy[
        dict[str, Any]]:
    """Schedules with wallet payments in the mix: QR payments (and a few card ones) with faults
    on every wallet message, customer confirmation delays, rescans, partitions and power losses;
    ``forgeries``: wallet forgeries (``wallet_forgeries``) and forged reversals, approvals and
    queries aimed at the card sales too."""
    wallet_forged = _sometimes(wallet_forgeries(), 4) if forgeries else st.builds(list)
    return st.tuples(_wallet_mix(max_transactions, 1), transaction_mixes(2, 0),
                     _sometimes(partitions(), 6), _sometimes(power_losses(), 8),
                     wallet_fault_rules(max_rules), fault_rules(2), _forged(forgeries), wallet_forged).map(
        _wallet_schedule)


def _wallet_schedule(parts: tuple[list[dict[str, Any]], ...]) -> Schedule:
    wallet, cards, parts_, powers, wallet_rules, card_rules, card_forged, wallet_forged = parts
    forged = card_forged + wallet_forged
    lost = [{"action": "drop", "direction": "to_terminal", "mti": "QR_PAY_RESP", "nth": n}
            for n, txn in enumerate(wallet, start=1) if txn["_lost"]]
    wallet = [_without_lost(t) for t in wallet]
    schedule = _schedule((wallet + cards, parts_, [], powers, lost + wallet_rules + card_rules, forged))
    schedule["transactions"] = sorted(schedule["transactions"], key=lambda t: t["at"])
    return schedule
