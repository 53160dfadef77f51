"""The message sequence of a run, rebuilt from its trace: arrows, losses, timeouts, notes.

Shared by the Mermaid export and the HTML report. Each step is one trace event worth
showing; arrows know the step they left on and the step they landed (or died) on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from possim.timeline import rows as timeline_rows
from protocol import mti as M

TERMINAL, NETWORK, HOST = "terminal", "network", "host"


@dataclass
class Arrow:
    frm: str
    to: str
    mti: str
    stan: str
    label: str
    sent_step: int
    sent_t: float
    end_step: int | None = None
    end_t: float | None = None
    lost: str | None = None  # why it never arrived
    duplicate: bool = False
    late: bool = False

    @property
    def kind(self) -> str:
        return category(self.mti)


@dataclass
class Step:
    index: int
    t: float
    lane: str
    text: str
    style: str = ""


@dataclass
class Timeout:
    start_step: int
    end_step: int
    seconds: float


@dataclass
class Sequence:
    steps: list[Step] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    timeouts: list[Timeout] = field(default_factory=list)


def category(mti: str) -> str:
    if mti.startswith("04"):
        return "reversal"
    if mti.startswith("06"):
        return "query"
    if mti.startswith("022") or mti.startswith("023"):
        return "advice"
    return "financial"


def build(records: list[dict[str, Any]]) -> Sequence:
    seq = Sequence()
    open_arrows: list[Arrow] = []
    timer_start: tuple[int, float] | None = None
    for r in records:
        event = r["event"]
        if event == "timer_started":
            timer_start = (max(0, len(seq.steps) - 1), float(r["t"]))
            continue
        row = timeline_rows([r])  # the same events the console timeline shows, one row each
        if not row:
            continue
        t, term, net, host = row[0]
        lane = TERMINAL if term else NETWORK if net else HOST
        step = Step(len(seq.steps), t, lane, term or net or host, _style(r))
        seq.steps.append(step)
        if event == "msg_sent":
            frm = r.get("side", TERMINAL)
            to = HOST if frm == TERMINAL else TERMINAL
            label = f"{r.get('mti')} {M.NAMES.get(str(r.get('mti')), '')} #{str(r.get('stan', ''))[-3:]}"
            open_arrows.append(Arrow(frm, to, str(r.get("mti")), str(r.get("stan")), label, step.index, t))
        elif event == "net_dropped":
            _land(seq, open_arrows, _find(open_arrows, r), step, lost=r.get("reason", "lost"))
        elif event == "net_duplicated":
            arrow = _find(open_arrows, r)
            if arrow:
                twin = Arrow(arrow.frm, arrow.to, arrow.mti, arrow.stan, arrow.label + " (copy)", arrow.sent_step,
                             arrow.sent_t, duplicate=True)
                open_arrows.append(twin)
        elif event == "msg_received":
            to = r.get("side")
            _land(seq, open_arrows, _find(open_arrows, r, to=to), step)
        elif event == "terminal_down_drop":
            _land(seq, open_arrows, _find(open_arrows, r, to=TERMINAL), step, lost="terminal off")
        elif event == "late_response":
            for arrow in reversed(seq.arrows):
                if arrow.stan == r.get("stan") and arrow.to == TERMINAL:
                    arrow.late = True
                    break
        elif event == "timer_fired" and timer_start is not None and r.get("timer") == "response":
            start_step, began = timer_start
            seq.timeouts.append(Timeout(start_step, step.index, round(t - began, 3)))
            timer_start = None
    for arrow in open_arrows:  # never arrived before the run ended
        arrow.lost = arrow.lost or "still in flight"
        seq.arrows.append(arrow)
    seq.arrows.sort(key=lambda a: a.sent_step)
    return seq


def _land(seq: Sequence, in_flight: list[Arrow], arrow: Arrow | None, step: Step, lost: str | None = None) -> None:
    """An arrow ends at ``step``: delivered, or ``lost`` on the way."""
    if arrow is None:
        return
    arrow.end_step, arrow.end_t, arrow.lost = step.index, step.t, lost
    in_flight.remove(arrow)
    seq.arrows.append(arrow)


def _find(arrows: list[Arrow], r: dict[str, Any], to: str | None = None) -> Arrow | None:
    for arrow in arrows:
        if arrow.mti == r.get("mti") and arrow.stan == r.get("stan") and (to is None or arrow.to == to):
            return arrow
    return None


def _style(r: dict[str, Any]) -> str:
    e = r["event"]
    if e == "net_dropped" or e in ("host_crashed", "host_down_drop", "terminal_power_lost", "terminal_down_drop"):
        return "bad"
    if e == "timer_fired":
        return "timeout"
    if e == "txn_outcome":
        return "good" if r.get("status") == "approved" else "bad"
    if e.startswith("ledger_"):
        return "ledger"
    if str(r.get("mti", "")).startswith(("04", "06")):
        return "recovery"
    return ""

