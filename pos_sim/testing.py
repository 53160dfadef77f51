"""Hypothesis strategies for possim fault schedules: public, for QA's own pytest suites.

Every fault here is an explicit Hypothesis draw (a list of targeted rules, partitions and
host crashes), never a PRNG seeded from one drawn integer, so shrinking reaches a minimal
schedule you can read. Every schedule heals: rules hit a finite number of messages,
partitions and crashes end, and the terminal gets enough retries to outlast them, so a
violation is a protocol failure, not an endless outage.

Example (copy into a test file)::

    from hypothesis import given
    from pos_sim.testing import schedules
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

from hypothesis import strategies as st

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
    return st.integers(1, max_amount).map(lambda cents: f"{cents // 100}.{cents % 100:02d}")


@st.composite
def fault_rules(draw: st.DrawFn, max_rules: int = 6) -> list[dict[str, Any]]:
    """Targeted faults: drop, delay or duplicate the nth message of an MTI in one direction."""
    rules = []
    for _ in range(draw(st.integers(0, max_rules))):
        direction = draw(st.sampled_from(["to_terminal", "to_host"]))
        mti = draw(st.sampled_from(TO_TERMINAL_MTIS if direction == "to_terminal" else TO_HOST_MTIS))
        rule: dict[str, Any] = {"action": draw(st.sampled_from(["drop", "delay", "duplicate"])),
                                "direction": direction, "mti": mti, "nth": draw(st.integers(1, 3))}
        if rule["action"] != "drop":
            rule["delay"] = float(draw(st.integers(0, int(MAX_OUTAGE))))
        rules.append(rule)
    return rules


def partitions(max_partitions: int = 2, horizon: float = 600.0) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Network partitions that start within ``horizon`` and heal within ``MAX_OUTAGE`` seconds."""
    one = st.tuples(st.integers(0, int(horizon)), st.integers(1, int(MAX_OUTAGE)),
                    st.sampled_from(["both", "to_host", "to_terminal"]))
    return st.lists(one, max_size=max_partitions).map(
        lambda ps: [{"start": float(s), "end": float(s + d), "direction": dr} for s, d, dr in ps])


def host_crashes(max_crashes: int = 1) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Host crashes after committing the nth purchase/authorization; back within MAX_OUTAGE."""
    one = st.fixed_dictionaries({"mti": st.sampled_from(["0200", "0100"]), "nth": st.integers(1, 3),
                                 "down_for": st.integers(1, int(MAX_OUTAGE)).map(float)})
    return st.lists(one, max_size=max_crashes, unique_by=lambda c: (c["mti"], c["nth"]))


@st.composite
def transaction_mixes(draw: st.DrawFn, max_transactions: int = 5, min_transactions: int = 1) -> list[dict[str, Any]]:
    """Purchases and authorization + completion, spaced in time, on cards with limited funds."""
    txns = []
    at = 0.0
    for _ in range(draw(st.integers(min_transactions, max_transactions))):
        kind = draw(st.sampled_from(["purchase", "auth"]))
        txn: dict[str, Any] = {"at": at, "kind": kind, "amount": draw(amounts()),
                               "pan": draw(st.sampled_from(sorted(CARDS)))}
        if kind == "auth" and draw(st.booleans()):
            cents = round(float(txn["amount"]) * 100)
            completion = draw(st.integers(1, cents))
            txn["completion_amount"] = f"{completion // 100}.{completion % 100:02d}"
        if draw(st.booleans()):
            txn["customer_retries"] = True
        txns.append(txn)
        at += float(draw(st.integers(0, 300)))
    return txns


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


@st.composite
def schedules(draw: st.DrawFn, max_transactions: int = 5, max_rules: int = 6,
              min_transactions: int = 1) -> dict[str, Any]:
    """A whole scenario (as a dict ready for ``possim.scenario.from_dict``) with its faults."""
    # Draw order steers shrinking: Hypothesis prefers empty earlier lists, so outages are
    # shrunk away first and a minimal failure reads as a few targeted message faults.
    txns = draw(transaction_mixes(max_transactions, min_transactions))
    parts = draw(partitions())
    crashes = draw(host_crashes())
    rules = draw(fault_rules(max_rules))
    return {
        "title": "Generated fault schedule",
        "description": "A fault schedule generated by possim fuzz.",
        "seed": 0,
        "terminal": dict(FUZZ_TERMINAL),
        "host": {"accounts": {pan: bal for pan, bal in CARDS.items() if bal}, "crash_after_commit": crashes},
        "faults": rules,
        "partitions": parts,
        "transactions": txns,
    }
