"""Fault coverage in domain words: which failure situations a batch of runs really exercised."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

#: (label, test on one trace record). Labels are what QA reads after a fuzz run.
SITUATIONS: tuple[tuple[str, Any], ...] = (
    ("request lost before the host", lambda r: r["event"] == "net_dropped" and r.get("mti") in ("0200", "0100")),
    ("response lost after host approval",
     lambda r: r["event"] == "net_dropped" and r.get("mti") in ("0210", "0110") and r.get("rrn")),
    ("reversal lost", lambda r: r["event"] == "net_dropped" and r.get("mti") in ("0400", "0401")),
    ("reversal answer lost", lambda r: r["event"] == "net_dropped" and r.get("mti") == "0410"),
    ("status query or answer lost", lambda r: r["event"] == "net_dropped" and r.get("mti") in ("0600", "0610")),
    ("completion advice lost", lambda r: r["event"] == "net_dropped" and r.get("mti") in ("0220", "0221")),
    ("message delayed", lambda r: r["event"] == "net_delayed"),
    ("message lost in a partition", lambda r: r["event"] == "net_dropped" and r.get("reason") == "partition"),
    ("duplicate original absorbed by the host", lambda r: r["event"] == "duplicate_original"),
    ("repeated reversal answered once", lambda r: r["event"] == "duplicate_reversal"),
    ("repeated advice captured once", lambda r: r["event"] == "duplicate_advice"),
    ("response timeout", lambda r: r["event"] == "timer_fired"),
    ("late response after timeout", lambda r: r["event"] == "late_response"),
    ("reversal before its original", lambda r: r["event"] == "ledger_reversal_before_original"),
    ("late original refused", lambda r: r["event"] == "late_original_refused"),
    ("reversal credited a debit", lambda r: r["event"] == "ledger_reversal_credited"),
    ("reversal released a hold", lambda r: r["event"] == "ledger_reversal_released"),
    ("status query answered APPROVED", lambda r: r["event"] == "status_answered" and r.get("status") == "APPROVED"),
    ("status query answered NOT_FOUND", lambda r: r["event"] == "status_answered" and r.get("status") == "NOT_FOUND"),
    ("host crash after commit", lambda r: r["event"] == "host_crashed"),
    ("message lost while the host was down", lambda r: r["event"] == "host_down_drop"),
    ("reversal retried with backoff", lambda r: r["event"] == "reversal_retry_scheduled"),
    ("pending reversal sent before the next sale", lambda r: r["event"] == "reversal_before_next_transaction"),
    ("declined (funds, rules or issuer down)", lambda r: r["event"] == "ledger_declined"),
    ("customer paid again after a failure", lambda r: r["event"] == "customer_retries"),
    ("terminal power loss", lambda r: r["event"] == "terminal_power_lost"),
    ("answer lost while the terminal was off", lambda r: r["event"] == "terminal_down_drop"),
    ("recovery resumed from the journal after boot",
     lambda r: r["event"] == "terminal_restored" and r.get("records", 0) > 0),
)


def situations(records: Iterable[dict[str, Any]]) -> set[str]:
    """The situations one run went through (each counted once per run)."""
    seen: set[str] = set()
    for r in records:
        for label, test in SITUATIONS:
            if label not in seen and test(r):
                seen.add(label)
    return seen


def tally(counter: Counter[str], records: Iterable[dict[str, Any]]) -> None:
    counter.update(situations(records))
