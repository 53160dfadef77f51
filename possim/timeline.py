"""The run as a readable three-column timeline: terminal | network | host, in run time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from possim.money import format_amount
from protocol import mti as M

Row = tuple[float, str, str, str]


def _msg(r: dict[str, Any]) -> str:
    name = M.NAMES.get(str(r.get("mti")), str(r.get("mti")))
    rrn = f" rrn {r['rrn']}" if r.get("rrn") else ""
    return f"{r.get('mti')} {name} stan {r.get('stan')}{rrn}"


def _terminal(r: dict[str, Any]) -> str | None:
    e = r["event"]
    if e == "payment_requested":
        return f"customer pays {format_amount(r['amount'])} ({r['kind']}, txn {r['txn']})"
    if e == "customer_retries":
        return f"customer told it failed: pays AGAIN (txn {r['retry_txn']})"
    if e == "msg_sent":
        return f"-> {_msg(r)}"
    if e == "msg_received":
        return f"<- {_msg(r)}"
    if e == "timer_fired":
        return "TIMEOUT: no answer in time"
    if e == "txn_outcome":
        return f"screen: {r['display']} (journal: {r['status']})"
    if e == "reversal_acknowledged":
        return f"reversal of txn {r['txn']} acknowledged"
    if e in ("late_response", "duplicate_response"):
        return f"{e.replace('_', ' ')} {r.get('mti')} rc {r.get('rc')} for txn {r.get('txn')}: logged, ignored"
    if e == "reversal_retry_scheduled":
        return f"reversal retry at {r['at']:.1f}s ({r['reason']})"
    if e == "reversal_parked":
        return f"reversal gave up after {r['attempts']} tries: stays pending"
    if e == "reversal_before_next_transaction":
        return "pending reversal goes out before the next sale"
    if e == "terminal_power_lost":
        return "POWER LOST: memory gone, journal kept"
    if e == "terminal_down_drop":
        return f"{r.get('mti')} arrives at a dead terminal: LOST"
    if e == "terminal_restored":
        return f"power back: {r['records']} journal record(s) reloaded"
    if e in ("malformed_frame", "unmatched_message"):
        return e.replace("_", " ")
    return None


def _network(r: dict[str, Any]) -> str | None:
    e = r["event"]
    if e == "net_dropped":
        return f"X {r['mti']} LOST ({r['reason'].replace('_', ' ')})"
    if e in ("net_delayed", "net_duplicated", "net_reordered"):
        delays = ", ".join(f"{d:.2f}s" for d in r["delays"])
        return f"~ {r['mti']} {e[4:]} (arrives after {delays})"
    return None


def _host(r: dict[str, Any]) -> str | None:
    e = r["event"]
    if e == "msg_received":
        return f"<- {_msg(r)}"
    if e == "msg_sent":
        return f"-> {_msg(r)}"
    if e.startswith("ledger_"):
        what = e[7:].replace("_", " ")
        amount = f" {format_amount(r['amount'])}" if "amount" in r else ""
        return f"ledger: {what}{amount}"
    labels = {"host_crashed": "CRASH after commit, no reply", "host_restarted": "host back up",
              "host_down_drop": f"down: {r.get('mti')} lost", "duplicate_original": "duplicate: first answer again",
              "duplicate_reversal": "repeat reversal: already done", "late_original_refused": "late original refused",
              "status_answered": f"status: {r.get('status')}", "advice_rejected": f"advice rejected {r.get('rc')}",
              "duplicate_advice": "repeat advice: already captured"}
    return labels.get(e)


def rows(records: Iterable[dict[str, Any]]) -> list[Row]:
    out: list[Row] = []
    for r in records:
        side = r.get("side")
        if side == "host" or r["event"] == "host_restarted":
            cell = _host(r)
            if cell:
                out.append((r["t"], "", "", cell))
        elif r["event"].startswith("net_"):
            cell = _network(r)
            if cell:
                out.append((r["t"], "", cell, ""))
        else:
            cell = _terminal(r)
            if cell:
                out.append((r["t"], cell, "", ""))
    return out
