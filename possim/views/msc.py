"""The message sequence of a run, rebuilt from its trace: arrows, losses, timeouts, notes.

Shared by the Mermaid export and the HTML report. Each step is one trace event worth
showing; arrows know the step they left on and the step they landed (or died) on. A
message that reaches a host which is down dies there: it is an arrow lost at the host
(``HOST_DOWN``), as the chart's rule says of every lost message, never a delivery.

Wallet payments have a lifeline of their own (``WALLET``): the wallet gateway's events and
the wallet frames (QR_PAY, QR_QUERY...) that the acquirer's side hands to it. A wallet
frame's arrow runs from the terminal to the wallet and back, across the acquirer host.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from possim.i18n import Tr
from possim.protocol import events as ev
from possim.views.timeline import is_wallet, lost_at_host, mti_name, refund_acknowledged
from possim.views.timeline import row as timeline_row

TERMINAL, NETWORK, HOST, WALLET = "terminal", "network", "host", "wallet"
#: Why an arrow died: the receiving side was off or down (drawn up to that side, ending in a cross).
TERMINAL_OFF, HOST_DOWN, IN_FLIGHT = "terminal off", "host down", "still in flight"
#: A request sent over a cut host line (``protocol.lines``).
LINE_CUT = "line cut"
_EN = Tr("en")


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
    #: The message's place in its link, as a scenario's ``[[faults]]`` name it: ``to_host`` or
    #: ``to_terminal``, and the 1-based count of this MTI in that direction (``nth``).
    direction: str = "to_host"
    nth: int = 1

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
    event: ev.Event | None = None  # what the step shows, so a summary can link to it


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

    @property
    def has_wallet(self) -> bool:
        """Whether the run drew on the wallet lifeline (a view adds the lane only then)."""
        return any(s.lane == WALLET for s in self.steps) or any(WALLET in (a.frm, a.to) for a in self.arrows)


def category(mti: str) -> str:
    if mti.startswith("QR_"):
        return "wallet"
    if mti.startswith("04"):
        return "reversal"
    if mti.startswith("06"):
        return "query"
    if mti.startswith(("022", "023")):
        return "advice"
    return "financial"


def build(records: Iterable[ev.Stamped], tr: Tr = _EN) -> Sequence:
    seq = Sequence()
    open_arrows: list[Arrow] = []
    timer_start: tuple[int, float] | None = None
    entries = list(records)
    hidden = lost_at_host(entries)
    sent: Counter[tuple[str, str]] = Counter()  # per (direction, MTI), as the fault layer counts
    refunding: set[str] = set()  # orders whose too-late cancel became a refund (退款)
    for index, stamped in enumerate(entries):
        e = stamped.event
        refund = refund_acknowledged(e, refunding)
        if isinstance(e, ev.TimerStarted):
            timer_start = (max(0, len(seq.steps) - 1), stamped.t)
            continue
        row = None if index in hidden else timeline_row(stamped, tr, refund)  # one row per console timeline row
        if row is None:
            continue
        t, term, net, host = row
        lane = TERMINAL if term else NETWORK if net else WALLET if is_wallet(e) else HOST
        step = Step(len(seq.steps), t, lane, term or net or host, _style(e), e)
        seq.steps.append(step)
        match e:
            case ev.MsgSent():
                open_arrows.append(_sent_arrow(e, step, tr, sent))
            case ev.NetDropped():
                _land(seq, open_arrows, _find(open_arrows, e.mti, e.stan), step, lost=e.reason)
            case ev.NetDuplicated():
                arrow = _find(open_arrows, e.mti, e.stan)
                if arrow:
                    open_arrows.append(Arrow(arrow.frm, arrow.to, arrow.mti, arrow.stan, arrow.label + " (copy)",
                                             arrow.sent_step, arrow.sent_t, duplicate=True,
                                             direction=arrow.direction, nth=arrow.nth))
            case ev.MsgReceived():
                to = TERMINAL if e.side == TERMINAL else WALLET if category(e.mti) == "wallet" else HOST
                _land(seq, open_arrows, _find(open_arrows, e.mti, e.stan, to=to), step)
            case ev.TerminalDownDrop():
                _land(seq, open_arrows, _find(open_arrows, e.mti, e.stan, to=TERMINAL), step, lost=TERMINAL_OFF)
            case ev.HostDownDrop():
                _land(seq, open_arrows, _find(open_arrows, e.mti, None, to=HOST, any_stan=True), step, lost=HOST_DOWN)
            case ev.LineDownDrop():
                _land(seq, open_arrows, _find(open_arrows, e.mti, None, to=HOST, any_stan=True), step, lost=LINE_CUT)
            case ev.LateResponse():
                for arrow in reversed(seq.arrows):
                    if arrow.stan == e.stan and arrow.to == TERMINAL:
                        arrow.late = True
                        break
            case ev.TimerFired() if timer_start is not None:
                start_step, began = timer_start
                seq.timeouts.append(Timeout(start_step, step.index, round(t - began, 3)))
                timer_start = None
    for arrow in open_arrows:  # never arrived before the run ended
        arrow.lost = arrow.lost or IN_FLIGHT
        seq.arrows.append(arrow)
    seq.arrows.sort(key=lambda a: a.sent_step)
    return seq


def _sent_arrow(e: ev.MsgSent, step: Step, tr: Tr, sent: Counter[tuple[str, str]]) -> Arrow:
    """The arrow a sent message opens, numbered per (direction, MTI) as the fault layer counts, so
    the lab can name the message a click on it means."""
    far = WALLET if category(e.mti) == "wallet" else HOST
    frm, to = (TERMINAL, far) if e.side == TERMINAL else (far, TERMINAL)
    label = f"{e.mti} {mti_name(e.mti, tr)} #{e.stan[-3:]}"
    direction = "to_host" if e.side == TERMINAL else "to_terminal"
    sent[(direction, e.mti)] += 1
    return Arrow(frm, to, e.mti, e.stan, label, step.index, step.t, direction=direction,
                 nth=sent[(direction, e.mti)])


def _land(seq: Sequence, in_flight: list[Arrow], arrow: Arrow | None, step: Step, lost: str | None = None) -> None:
    """An arrow ends at ``step``: delivered, or ``lost`` on the way."""
    if arrow is None:
        return
    arrow.end_step, arrow.end_t, arrow.lost = step.index, step.t, lost
    in_flight.remove(arrow)
    seq.arrows.append(arrow)


def _find(arrows: list[Arrow], mti: str, stan: str | None, to: str | None = None,
          any_stan: bool = False) -> Arrow | None:
    """The oldest open arrow of ``mti`` (and ``stan``, unless the event does not say: a host that is down)."""
    for arrow in arrows:
        if arrow.mti == mti and (any_stan or arrow.stan == stan) and (to is None or arrow.to == to):
            return arrow
    return None


def _style(e: ev.Event) -> str:
    match e:
        case (ev.NetDropped() | ev.HostCrashed() | ev.HostDownDrop() | ev.TerminalPowerLost() | ev.TerminalDownDrop()
              | ev.ReversalEscalated() | ev.ForgeryInjected() | ev.LineDownDrop()):
            return "bad"
        case ev.TimerFired() | ev.WalletAnswerTimeout():
            return "timeout"
        case ev.TxnOutcome() | ev.WalletOutcome():
            return "good" if e.status == "approved" else "bad"
        case (ev.LedgerMovement() | ev.LedgerCapture() | ev.LedgerDeclined() | ev.LedgerReversal()
              | ev.WalletCharged() | ev.WalletRefunded()):
            return "ledger"
    mti = getattr(e, "mti", None)
    if isinstance(mti, str) and mti.startswith(("04", "06")):
        return "recovery"
    return ""
