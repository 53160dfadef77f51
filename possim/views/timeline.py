"""The run as a readable three-column timeline: terminal | network | host, in run time.

Rows are chosen by event class (``protocol.events``) and worded in the reader's language
(:mod:`possim.i18n`). Only the response timer firing is a TIMEOUT; a retry wake-up for
recovery work is not shown (its effect, the repeat, is). A message that reaches a host
which is down is shown once, as lost (the host never read it), not as received and then
dropped: :func:`lost_at_host` finds those arrivals.

A new event gets its row here: one ``case`` returning ``tr("English text {field}", field=...)``,
and one entry for that text in each catalogue under ``possim/locale``. An event a registered
message kind lists (``protocol.mti.MessageKind.events``) and that has no ``case`` here gets the
kind's label instead (``kind_row``): a new kind's events are shown, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import fields

from possim.i18n import N_, Tr
from possim.protocol import events as ev
from possim.protocol import wallet
from possim.protocol.mti import KINDS, NAMES

Row = tuple[float, str, str, str]
_EN = Tr("en")


def mti_name(mti: str, tr: Tr) -> str:
    """'0400' -> 'reversal' / '冲正'; 'QR_PAY' -> 'wallet pay (scanned code)' / '付款码支付'.

    The MTI names of ``protocol.mti`` and the wallet kinds' names of ``protocol.wallet`` are
    catalogue entries.
    """
    if mti in NAMES:
        return tr(NAMES[mti])
    return tr(wallet.NAMES[mti]) if mti in wallet.NAMES else mti


def is_wallet(e: ev.Event) -> bool:
    """Whether the event belongs to the wallet gateway's lifeline: its own events, and wallet
    frames arriving at or leaving the acquirer's side (which hands them to the gateway)."""
    if isinstance(e, ev.WalletEvent):
        return True
    return isinstance(e, ev.MsgSent | ev.MsgReceived) and e.side == "host" and e.mti in wallet.KINDS


def _msg(e: ev.MsgSent | ev.MsgReceived, tr: Tr) -> str:
    if e.mti in wallet.KINDS:  # a wallet frame: its key is the merchant order number
        return tr("{mti} {name} order {order}", mti=e.mti, name=mti_name(e.mti, tr), order=e.stan or "-")
    rrn = tr(" rrn {rrn}", rrn=e.rrn) if e.rrn else ""
    return tr("{mti} {name} stan {stan}", mti=e.mti, name=mti_name(e.mti, tr), stan=e.stan or "-") + rrn


def screen(display: str, tr: Tr) -> str:
    """What the cashier's screen said, in the reader's language (codes and host words kept)."""
    for prefix, msgid, key in (("DECLINED (", "DECLINED ({rc})", "rc"), ("FAILED (host: ", "FAILED (host: {status})",
                                                                       "status"),
                               ("FAILED (wallet: ", "FAILED (wallet: {status})", "status")):
        if display.startswith(prefix) and display.endswith(")"):
            inner = display[len(prefix):-1]
            return tr(msgid, **{key: tr(inner) if key == "status" else inner})
    return tr(display)


def line_name(name: str, tr: Tr) -> str:
    """A host line's name for the reader: as the scenario writes it in English, 主线路 / 备用线路 in Chinese."""
    return name if tr.lang == "en" or name not in LINE_NAMES else tr(LINE_NAMES[name])


def trade_state(state: str | None, tr: Tr) -> str:
    """A wallet trade state (WeChat's names, SUCCESS, USERPAYING...) in plain words."""
    return tr(TRADE_STATES[state]) if state and state in TRADE_STATES else state or "-"


#: The wallet's trade states in plain words (catalogue entries).
TRADE_STATES = {"SUCCESS": N_("paid"), "USERPAYING": N_("customer still paying"), "NOTPAY": N_("not paid"),
                "CLOSED": N_("closed"), "REVOKED": N_("cancelled and refunded"), "PAYERROR": N_("pay error")}
#: Why a terminal left a host line (catalogue entries).
LINE_REASONS = {"timeouts": N_("timeouts in a row"), "connect_failure": N_("cannot connect")}
#: The host lines the shipped scenarios name (``[terminal] hosts``; catalogue entries). Other names stay as written.
LINE_NAMES = {"primary": N_("primary line"), "backup": N_("backup line")}
#: The wallet providers by name (catalogue entries).
PROVIDERS = {"alipay": N_("Alipay"), "wechat": N_("WeChat Pay")}
#: Why the wallet closed an unpaid order, or refunded a paid one (catalogue entries).
WALLET_REASONS = {"cancelled": N_("cancelled by the terminal"), "auto_close": N_("closed by itself after a while"),
                  "cancel_before_pay": N_("cancelled before the customer paid"),
                  "query_not_found": N_("queried, never paid: closed"), "cancel": N_("cancel (撤销) after payment"),
                  "refund": N_("refund")}
#: What the gateway's answer to a cancel did (catalogue entries).
CANCEL_ACTIONS = {"close": N_("the unpaid order is closed"), "refund": N_("the payment goes back to the wallet"),
                  "none": N_("nothing to undo")}


def _terminal(e: ev.Event, tr: Tr) -> str | None:
    match e:
        case ev.PaymentRequested():
            return tr("customer pays {amount} ({kind}, txn {txn})", amount=tr.money(e.amount), kind=tr(e.kind),
                      txn=e.txn)
        case ev.CustomerRetries():
            return tr("told it failed, the customer pays AGAIN (txn {txn})", txn=e.retry_txn)
        case ev.MsgSent():
            return f"-> {_msg(e, tr)}"
        case ev.MsgReceived():
            return f"<- {_msg(e, tr)}"
        case ev.TimerFired():
            return tr("TIMEOUT: no answer in time")
        case ev.TxnOutcome():
            return tr("screen: {display} (journal: {status})", display=screen(e.display, tr), status=tr(e.status))
        case ev.ReversalAcknowledged():
            return tr("reversal of txn {txn} acknowledged", txn=e.txn)
        case ev.LateResponse():
            return tr("late answer {mti} rc {rc} for txn {txn}: logged, ignored", mti=e.mti, rc=e.rc, txn=e.txn)
        case ev.DuplicateResponse():
            return tr("duplicate answer {mti} rc {rc} for txn {txn}: logged, ignored", mti=e.mti, rc=e.rc, txn=e.txn)
        case ev.ReversalRetryScheduled():
            return tr("reversal retry at {at}s ({reason})", at=f"{e.at:.1f}", reason=_reason(e.reason, tr))
        case ev.ReversalParked():
            return tr("reversal gave up after {attempts} tries: stays pending", attempts=e.attempts)
        case ev.ReversalBeforeNextTransaction():
            return tr("pending reversal goes out before the next sale")
        case ev.TerminalPowerLost():
            return tr("POWER LOST: memory gone, journal kept")
        case ev.TerminalDownDrop():
            return tr("{mti} arrives at a dead terminal: LOST", mti=e.mti)
        case ev.LineSwitched():
            return tr("host line {before} given up ({reason}): now sending over {after}",
                      before=line_name(e.before, tr), after=line_name(e.after, tr),
                      reason=tr(LINE_REASONS.get(e.reason, e.reason)))
        case ev.LineDownDrop():
            return tr("{mti} sent over the cut line {line}: LOST", mti=e.mti or "-", line=line_name(e.line, tr))
        case ev.TerminalRestored():
            return tr("power back: {records} journal record(s) reloaded", records=e.records)
        case ev.MalformedFrame():
            return tr("malformed frame")
        case ev.UnmatchedMessage():
            return tr("unmatched message")
        case ev.ResponseRejected():
            return tr("{mti} rejected (MAC missing or wrong): treated as no answer", mti=e.mti)
        case ev.ResponseMismatch():
            return tr("{mti} answers another request ({reason}): ignored, still waiting", mti=e.mti,
                      reason=e.reason)
        case ev.ReversalEscalated():
            return tr("REVERSAL FAILED after {attempts} tries: handed to the acquirer", attempts=e.attempts)
        case ev.DuplicateTransmission():
            return tr("{mti} answered 94 (duplicate transmission): still waiting", mti=e.mti)
        case ev.TerminalSignedOn():
            return (tr("signed on as life {life}, replacing an earlier life of this terminal", life=e.life)
                    if e.earlier else tr("signed on as life {life}", life=e.life))
        case ev.TerminalRefusedToSell():
            return tr("REFUSES TO SELL: {reason}", reason=e.reason)
        case ev.SignOnAgain():
            return tr("{mti} says sign on again (77): nothing booked, the terminal signs on afresh", mti=e.mti)
        case ev.WorkingKeysInstalled():
            return tr("working keys installed (MAK check value {check}), batch {batch}", check=e.mak_check,
                      batch=e.batch)
        case ev.SignOnFailed():
            return tr("SIGN-ON FAILED: {reason}", reason=e.reason)
    return _settlement(e, tr) or _wallet_terminal(e, tr)


def _settlement(e: ev.Event, tr: Tr) -> str | None:
    """End of day (结算): the batch totals, the host's answer, the batch upload."""
    match e:
        case ev.SettlementSent():
            return tr("settlement: batch of {count} sale(s), {amount}", count=e.debit_count,
                      amount=tr.money(e.debit_amount))
        case ev.SettlementAnswered() if e.balanced:
            return tr("settlement balanced: the batch is closed")
        case ev.SettlementAnswered() if e.final:
            return tr("settlement still out of balance after the upload")
        case ev.SettlementAnswered():
            return tr("out of balance: uploading {n} sale(s) (0320)", n=e.uploads)
        case ev.SettlementFailed():
            return tr("settlement {mti} failed: the batch stays open", mti=e.mti)
        case ev.BatchClosed():
            return tr("batch {closed} closed: sales now go into batch {opened}", closed=e.closed, opened=e.opened)
    return None


def _wallet_terminal(e: ev.Event, tr: Tr) -> str | None:
    """The QR terminal's rows: the scan, its screen, its timeouts and its cancels (撤销)."""
    match e:
        case ev.WalletPaymentRequested():
            return tr("customer's payment code scanned: {amount} by {provider} (txn {txn})",
                      amount=tr.money(e.amount), provider=tr(PROVIDERS.get(e.provider, e.provider)), txn=e.txn)
        case ev.WalletOutcome():
            return tr("screen: {display} (journal: {status}, wallet: {state})", display=screen(e.display, tr),
                      status=tr(e.status), state=trade_state(e.trade_state, tr))
        case ev.WalletAnswerTimeout():
            return tr("TIMEOUT: no answer to {mti}", mti=e.mti)
        case ev.WalletCancelScheduled():
            return tr("cancel (撤销) at {at}s ({reason})", at=f"{e.at:.1f}", reason=_reason(e.reason, tr))
        case ev.WalletCancelAcknowledged():
            return tr("cancel acknowledged: {action}", action=tr(CANCEL_ACTIONS.get(e.action, e.action)))
        case ev.WalletLateAnswer():
            return tr("late answer {mti} ({state}): logged, ignored", mti=e.mti, state=trade_state(e.trade_state, tr))
        case ev.WalletSystemErrorAnswered():
            return tr("{mti}: system error {error}, the outcome is unknown (not a failure)", mti=e.mti, error=e.error)
        case ev.WalletRefundInstead():
            return tr("cancel (撤销) refused as too late ({sub_code}): refund the order instead", sub_code=e.sub_code)
        case ev.CustomerPaysAgain():
            return tr("told it failed, the customer pays AGAIN by {instrument} (txn {txn})",
                      instrument=tr(e.instrument), txn=e.retry_txn)
    return None


def _reason(reason: str, tr: Tr) -> str:
    """'timeout' or 'answered 05' (the host's refusal code)."""
    if reason.startswith("answered "):
        return tr("answered {rc}", rc=reason.removeprefix("answered "))
    return tr(reason)


_WALLET_NOTE = re.compile(r"wallet bill \((?P<provider>\w+) trade no\. (?P<trade_no>\S+)\) charged the customer and "
                          r"the terminal shows (?P<status>[^:]+): (?P<remedy>.+)")


def note(text: str, tr: Tr) -> str:
    """A reconciliation note in the reader's language (the one with a status in it is a pattern)."""
    prefix = "host settles a debit the terminal shows as "
    wallet_bill = _WALLET_NOTE.fullmatch(text)
    if wallet_bill:
        return tr("wallet bill ({provider} trade no. {trade_no}) charged the customer and the terminal shows "
                  "{status}: {remedy}", provider=tr(PROVIDERS.get(wallet_bill["provider"], wallet_bill["provider"])),
                  trade_no=wallet_bill["trade_no"], status=tr(wallet_bill["status"]), remedy=tr(wallet_bill["remedy"]))
    if text.startswith(prefix):
        status, _, remedy = text.removeprefix(prefix).partition(": ")
        said = tr("host settles a debit the terminal shows as {status}", status=tr(status))
        return tr("{what}: {remedy}", what=said, remedy=tr(remedy)) if remedy else said
    return tr(text)


def _network(e: ev.Event, tr: Tr) -> str | None:
    match e:
        case ev.NetDropped():
            return tr("X {mti} LOST ({reason})", mti=e.mti, reason=tr(e.reason.replace("_", " ")))
        case ev.NetDelayed():
            return tr("~ {mti} delayed (arrives after {delays})", mti=e.mti, delays=_delays(e))
        case ev.NetDuplicated():
            return tr("~ {mti} duplicated (arrives after {delays})", mti=e.mti, delays=_delays(e))
        case ev.NetReordered():
            return tr("~ {mti} reordered (arrives after {delays})", mti=e.mti, delays=_delays(e))
        case ev.ForgeryInjected():
            return tr("! forged {kind} {mti} injected ({mac})", kind=tr(e.kind), mti=e.mti,
                      mac=tr(FORGED_MACS.get(e.mac, e.mac)))
        case ev.ForgeryMissed():
            return tr("! forged {kind}: nothing to aim at yet", kind=tr(e.kind))
    return None


#: How a forgery is signed (catalogue entries).
FORGED_MACS = {"none": N_("no MAC"), "wrong": N_("wrong MAC"), "off": N_("the run uses no MACs")}


def _delays(e: ev.NetTampered) -> str:
    return ", ".join(f"{d:.2f}s" for d in e.delays)


def _host(e: ev.Event, tr: Tr) -> str | None:
    match e:
        case ev.MsgReceived():
            return f"<- {_msg(e, tr)}"
        case ev.MsgSent():
            return f"-> {_msg(e, tr)}"
        case ev.LedgerDebit():
            return tr("ledger: debit {amount}", amount=tr.money(e.amount))
        case ev.LedgerHold():
            return tr("ledger: hold {amount}", amount=tr.money(e.amount))
        case ev.LedgerCapture():
            return tr("ledger: capture {amount}", amount=tr.money(e.amount))
        case ev.LedgerDeclined():
            return tr("ledger: declined ({rc})", rc=e.rc)
        case ev.LedgerReversalCredited():
            return tr("ledger: reversal credited")
        case ev.LedgerReversalReleased():
            return tr("ledger: reversal released the hold")
        case ev.LedgerReversalNothingToReverse():
            return tr("ledger: reversal, nothing to reverse")
        case ev.LedgerReversalBeforeOriginal():
            return tr("ledger: reversal before its original")
        case ev.HostCrashed():
            return tr("CRASH after commit, no reply")
        case ev.HostRestarted():
            return tr("host back up")
        case ev.HostDownDrop():
            return tr("X {mti} LOST: the host is down", mti=e.mti)
        case ev.DuplicateOriginal():
            return tr("duplicate: first answer again")
        case ev.DuplicateReversal():
            return tr("repeat reversal: already done")
        case ev.LateOriginalRefused():
            return tr("late original refused")
        case ev.StatusAnswered():
            return tr("status: {status}", status=tr(e.status.replace("_", " ").lower()))
        case ev.AdviceRejected():
            return tr("advice rejected {rc}", rc=e.rc)
        case ev.DuplicateAdvice():
            return tr("repeat advice: already captured")
        case ev.ReversalRefused():
            return tr("reversal refused ({rc})", rc=e.rc)
    return _host_checks(e, tr) or _wallet_gateway(e, tr)


def _host_checks(e: ev.Event, tr: Tr) -> str | None:
    """What the host refused and why (MAC, identity, fields), and the issuer's part (CUP profile)."""
    match e:
        case ev.SecurityViolation():
            return (tr("MAC missing or wrong: answered {rc}, nothing changed", rc=e.rc) if e.answered
                    else tr("MAC missing or wrong: nobody to answer, nothing changed"))
        case ev.IdentityMismatch():
            return tr("{mti} from {sender} claims terminal {tid}: dropped, nothing changed", mti=e.mti,
                      sender=e.sender, tid=e.tid)
        case ev.FormatErrorAnswered():
            return tr("format error: answered {rc}, nothing changed", rc=e.rc)
        case ev.SignOnAnswered():
            return (tr("sign-on: life {life} replaces life {previous}", life=e.life, previous=e.previous)
                    if e.previous else tr("sign-on: life {life} is current", life=e.life))
        case ev.LifeRefused():
            return (tr("no sign-on, not the current life {current}: answered {rc}, nothing booked",
                       current=e.current, rc=e.rc) if e.life is None
                    else tr("life {life} is not the current life {current}: answered {rc}, nothing booked",
                            life=e.life, current=e.current, rc=e.rc))
        case ev.AnswerWithheld():
            return tr("answer for life {life} withheld: life {current} is current, not delivered", life=e.life,
                      current=e.current)
        case ev.DuplicateKeyConflict():
            return tr("key already used by a sale of {original}, this one is {amount}: answered {rc}, nothing booked",
                      original=tr.money(e.original_amount), amount=tr.money(e.amount), rc=e.rc)
        case ev.RequestDropped():
            return tr("{mti} from an unknown sender: dropped, nothing changed", mti=e.mti)
        case ev.ReversalAmountMismatch():
            return tr("reversal of {amount} for a sale of {original}: answered {rc}, nothing credited",
                      amount=tr.money(e.amount), original=tr.money(e.original_amount), rc=e.rc)
        case ev.IssuerRequested():
            return tr("sent on to the issuer: nothing debited until it answers")
        case ev.IssuerReversed():
            return tr("issuer: {reason}; answered {rc}, no money moved", reason=tr(e.reason), rc=e.rc)
        case ev.UnexpectedMessage():
            return tr("unexpected {mti}: ignored", mti=e.mti)
        case ev.SettlementChecked():
            return tr("batch totals {terminal} against the ledger's {host}: {verdict}",
                      terminal=tr.money(e.terminal_amount), host=tr.money(e.host_amount),
                      verdict=tr("balanced") if e.balanced else tr("out of balance"))
        case ev.BatchUploadReceived():
            return tr("batch upload of STAN {stan}, {amount}: {outcome}", stan=e.orig_stan,
                      amount=tr.money(e.amount), outcome=tr(UPLOAD_OUTCOMES.get(e.outcome, e.outcome)))
        case ev.BatchEndReceived():
            return tr("batch end of batch {batch} ({uploaded} uploaded): {settled} sale(s) settled", batch=e.batch,
                      uploaded=int(e.uploaded) if e.uploaded.isdigit() else e.uploaded, settled=e.settled)
    return None


#: What the host made of one uploaded sale (catalogue entries).
UPLOAD_OUTCOMES = {"captured": N_("captured now (never got online)"), "matched": N_("already in the ledger"),
                   "unknown": N_("unknown to the ledger")}


def _wallet_gateway(e: ev.Event, tr: Tr) -> str | None:
    """The wallet gateway's rows: the order, the customer's phone, the money (drawn on the wallet lifeline)."""
    match e:
        case ev.WalletTradeOpened():
            return tr("wallet: order of {amount} opened, {state}", amount=tr.money(e.amount),
                      state=trade_state(e.state, tr))
        case ev.WalletCustomerConfirmed():
            return tr("wallet: the customer confirms on the phone")
        case ev.WalletConfirmRefused():
            return tr("wallet: confirmed too late, the order is {state}: nothing charged",
                      state=trade_state(e.state, tr))
        case ev.WalletCharged():
            return tr("wallet: customer charged {amount}", amount=tr.money(e.amount))
        case ev.WalletRefunded():
            return tr("wallet: {amount} back to the customer ({reason})", amount=tr.money(e.amount),
                      reason=tr(WALLET_REASONS.get(e.reason, e.reason)))
        case ev.WalletTradeClosed():
            return tr("wallet: order closed ({reason})", reason=tr(WALLET_REASONS.get(e.reason, e.reason)))
        case ev.WalletDuplicatePay():
            return tr("wallet: repeated pay answered {state}, never charged twice", state=trade_state(e.state, tr))
        case ev.WalletPayRefused():
            return tr("wallet: pay refused, the order is {state}", state=trade_state(e.state, tr))
        case ev.WalletSystemError():
            return (tr("wallet: did the work, then answered system error {error}", error=e.error) if e.done
                    else tr("wallet: did nothing, answered system error {error}", error=e.error))
        case ev.WalletCancelExpired():
            return tr("wallet: cancel (撤销) refused, past the cancel window ({sub_code}): nothing changed",
                      sub_code=e.sub_code)
        case ev.WalletAnswered() if e.code == "20000":
            return None
        case ev.WalletAnswered() if e.mti == "QR_REFUND_RESP" and e.state == "REVOKED":
            return tr("wallet answers: refunded")
        case ev.WalletAnswered():
            return tr("wallet answers: {state}", state=trade_state(e.state, tr))
    return None


def lost_at_host(records: Sequence[ev.Stamped]) -> set[int]:
    """Indices of host arrivals that the next host event says were dropped because the host was down."""
    lost = set()
    for i, stamped in enumerate(records[:-1]):
        e, following = stamped.event, records[i + 1].event
        if (isinstance(e, ev.MsgReceived) and e.side == "host" and isinstance(following, ev.HostDownDrop)
                and following.mti == e.mti):
            lost.add(i)
    return lost


def refund_acknowledged(e: ev.Event, refunding: set[str]) -> bool:
    """Whether ``e`` acknowledges a refund (退款) rather than a cancel (撤销): the gateway refused this
    order's cancel as too late (``WalletRefundInstead``, noted in ``refunding`` as the trace is read in
    order) and the terminal refunded it instead, so the acknowledgement that follows is the refund's."""
    if isinstance(e, ev.WalletRefundInstead):
        refunding.add(e.order)
    return isinstance(e, ev.WalletCancelAcknowledged) and e.order in refunding


def row(stamped: ev.Stamped, tr: Tr = _EN, refund: bool = False) -> Row | None:
    """The timeline row of one trace entry, or None when the event is not worth a row.

    ``refund``: the entry acknowledges a refund that replaced a cancel (:func:`refund_acknowledged`)."""
    e = stamped.event
    if refund and isinstance(e, ev.WalletCancelAcknowledged):
        return (stamped.t, tr("refund (退款) acknowledged: {action}",
                              action=tr(CANCEL_ACTIONS.get(e.action, e.action))), "", "")
    where = ev.lane(e)
    if where == "host":
        cell = _host(e, tr) or kind_row(e, tr)
        return (stamped.t, "", "", cell) if cell else None
    if where == "network":
        cell = _network(e, tr) or kind_row(e, tr)
        return (stamped.t, "", cell, "") if cell else None
    cell = _terminal(e, tr) or kind_row(e, tr)
    return (stamped.t, cell, "", "") if cell else None


def kind_row(e: ev.Event, tr: Tr) -> str | None:
    """The label a registered message kind gives ``e`` (its event list), with the event's fields
    filled in; the event's name and MTI when the kind gives no words; None for other events."""
    label = KINDS.event_label(e.NAME)
    if label is None:
        return None
    values = {f.name: getattr(e, f.name) for f in fields(e)}
    if not label:
        return f"{e.NAME} {values.get('mti') or ''}".rstrip()
    return tr(label, **values)


def rows(records: Iterable[ev.Stamped], tr: Tr = _EN) -> list[Row]:
    entries = list(records)
    hidden = lost_at_host(entries)
    refunding: set[str] = set()
    out = []
    for i, stamped in enumerate(entries):
        refund = refund_acknowledged(stamped.event, refunding)
        if i not in hidden and (r := row(stamped, tr, refund)) is not None:
            out.append(r)
    return out


#: One moment at the counter of a wallet payment: run time, what the till shows, what the customer's phone shows.
CounterRow = tuple[float, str, str]


def counter(records: Iterable[ev.Stamped], tr: Tr = _EN) -> list[CounterRow]:
    """The counter as the cashier and the customer live a wallet payment: at each moment either
    screen changes, what the till shows and what the customer's phone shows (the other lane
    keeps its last words). The two disagree exactly when money is at risk: the phone says paid
    while the till says failed, or the reverse."""
    till: dict[str, str] = {}
    phone: dict[str, str] = {}
    refunding: set[str] = set()
    out: list[CounterRow] = []
    for stamped in records:
        e = stamped.event
        order, now_till, now_phone = _counter_change(e, tr, refund_acknowledged(e, refunding))
        if order is None:
            continue
        if now_till is not None:
            till[order] = now_till
        if now_phone is not None:
            phone[order] = now_phone
        if order in till or order in phone:
            out.append((stamped.t, till.get(order, "-"), phone.get(order, "-")))
    return out


def _counter_change(e: ev.Event, tr: Tr, refunding: bool = False) -> tuple[str | None, str | None, str | None]:
    """(order, the till's new words or None, the phone's new words or None) for one event.

    ``refunding``: the gateway refused this order's cancel as too late and the terminal refunds it
    instead, so the gateway's acknowledgement is the refund's (退款), not a cancel's."""
    match e:
        case ev.WalletPaymentRequested():
            return e.order, tr("scanned {amount}: waiting for the wallet", amount=tr.money(e.amount)), None
        case ev.WalletTradeOpened() if e.state == "USERPAYING":
            return e.order, None, tr("asks for the password (pay {amount}?)", amount=tr.money(e.amount))
        case ev.WalletCharged():
            return e.order, None, tr("PAID {amount}", amount=tr.money(e.amount))
        case ev.WalletConfirmRefused():
            return e.order, None, tr("payment failed: the order is {state}", state=trade_state(e.state, tr))
        case ev.WalletRefunded():
            return e.order, None, tr("refund of {amount} on its way to the wallet", amount=tr.money(e.amount))
        case ev.WalletTradeClosed() if e.reason in ("cancelled", "auto_close"):
            return e.order, None, tr("order closed: nothing paid")
        case ev.WalletOutcome():
            return e.order, screen(e.display, tr), None
        case ev.WalletRefundInstead():
            return e.order, tr("cancel (撤销) too late: refunding the order"), None
        case ev.WalletCancelAcknowledged() if refunding:
            return e.order, tr("refund (退款) done: {action}", action=tr(CANCEL_ACTIONS.get(e.action, e.action))), None
        case ev.WalletCancelAcknowledged():
            return e.order, tr("cancel (撤销) done: {action}", action=tr(CANCEL_ACTIONS.get(e.action, e.action))), None
    return None, None, None
