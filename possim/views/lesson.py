"""The point of a run, in plain words: who lost how much and why, the money, what to do.

Every view (console, HTML report, Mermaid, demo) opens with this, because the audience is
merchants and support staff: the sequence chart explains, but the verdict comes first. The
remedy follows the merchant FAQ of card acquirers (CUP practice): check the slip against
the bank statement, contact the acquirer with what the slip and the statement print (terminal
id, batch number 批次号, voucher number 凭证号, reference number 参考号 and the date and time
of the sale), and expect the automatic reversal or the refund through the acquirer's error
handling (差错处理), on the acquirer's timetable: possim does not invent a number of days.

Reads the checker's verdict, the reconciliation and the trace only: it never changes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from possim.i18n import N_, Tr, scenario_text
from possim.protocol import events as ev
from possim.running.rig import RunResult
from possim.scenario import Scenario
from possim.views.timeline import CounterRow, counter, screen

#: Days after which an issuer releases an authorization hold never completed: checkout.com's
#: "issuer auto-release" of an authorization not cleared (docs/glossary.md, "Hold").
HOLD_RELEASE_DAYS = 7
#: The batch number (批次号, CUP field 60.2) of a run's sales: a possim run is one business day
#: and one settlement batch, the terminal's first.
BATCH = "000001"


def when(result: RunResult, t: float) -> str:
    """Run time ``t`` as the slip and the statement print it: ``2026-11-25 10:00:00`` (the run's business
    day starts at the host's epoch, ``HostConfig.epoch``; the statement's dates come from the same clock)."""
    epoch: datetime = result.scenario.host_config().epoch
    return (epoch + timedelta(seconds=t)).replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S")


def clock(result: RunResult, t: float) -> str:
    """Run time ``t`` as the wall clock at the counter shows it: ``23:59:40`` (the business day's clock, as
    :func:`when`; the cashier and the customer live clock time, never run seconds)."""
    epoch: datetime = result.scenario.host_config().epoch
    return (epoch + timedelta(seconds=t)).strftime("%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Case:
    """One transaction that went wrong, with what the acquirer needs to find it."""

    finding: str
    txn: int | None
    tid: str
    stan: str
    rrn: str
    t: float
    amount: int
    screen: str
    #: Date and time of the booking as the slip and the statement show it.
    at: str = ""


@dataclass
class Point:
    headline: str
    good: bool
    money: list[tuple[str, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    #: Wallet payments: at each moment, what the till shows and what the customer's phone shows.
    counter: list[CounterRow] = field(default_factory=list)


def tr_for(result: RunResult, lang: str | None = None) -> Tr:
    """The translator of a run: the language asked for, the currency of the scenario's terminal."""
    from possim.i18n import resolve

    return Tr(resolve(lang), result.scenario.model.terminal.currency)


#: Findings about a wallet payment (QR): the key's second part is the merchant order number.
WALLET_FINDINGS = frozenset({"orphaned_wallet_charge", "phantom_wallet_approval", "double_wallet_charge",
                             "pending_cancel", "wallet_order_open"})


def story(scenario: Scenario, lang: str) -> tuple[str, str]:
    """The scenario's title and description in the reader's language (English when not translated)."""
    model = scenario.model
    return scenario_text(scenario.name, model.title, model.description.strip(), lang)


def cases(result: RunResult, tr: Tr) -> list[Case]:
    """The damaged transactions, worst (largest amount) first."""
    found = []
    for f in result.verdict.findings:
        wallet = f.finding in WALLET_FINDINGS
        rrn, t = _charge(result.trace.records, f.key[1]) if wallet else _booking(result.trace.records, f.key[1])
        found.append(Case(f.finding, f.txn, f.key[0], f.key[1], rrn, t, f.amount,
                          _screen(result.trace.records, f.txn, tr, wallet), when(result, t)))
    return sorted(found, key=lambda c: (-c.amount, c.t))


def escalated(result: RunResult) -> int:
    """Reversals the terminal handed to the acquirer (CUP profile): the money waits for its error handling."""
    return int(result.verdict.counts.get("escalated", 0))


def point(result: RunResult, tr: Tr) -> Point:
    found = cases(result, tr)
    p = Point(_headline(result, tr, found), result.verdict.settled and not escalated(result), cases=found)
    p.money = _money(result, tr)
    p.actions = _actions(result, tr, found)
    p.counter = counter(result.trace.records, tr)
    return p


def _headline(result: RunResult, tr: Tr, found: list[Case]) -> str:
    c = result.verdict.counts
    orphans = [x for x in found if x.finding in ("orphaned_debit", "orphaned_wallet_charge")]
    if c["double_debits"]:
        return tr("The customer paid twice: charged {amount} more than the purchase, because the terminal said "
                  "the first payment failed.", amount=tr.money(result.verdict.customer_loss))
    if len(orphans) == 1 and orphans[0].finding == "orphaned_wallet_charge":
        return tr("The customer's wallet was charged {amount} and the cashier's screen said {screen}.",
                  amount=tr.money(orphans[0].amount), screen=orphans[0].screen)
    if len(orphans) == 1:
        return tr("The customer was charged {amount} and the terminal said {screen}.",
                  amount=tr.money(orphans[0].amount), screen=orphans[0].screen)
    if orphans:
        return tr("{n} customers were charged {amount} in all for sales the terminal reported as failed.",
                  n=len(orphans), amount=tr.money(sum(x.amount for x in orphans)))
    if escalated(result):
        return _escalated_headline(result, tr, found)
    if c["phantom_approvals"]:
        return tr("The terminal said APPROVED but the bank holds no money: the merchant gave away goods worth "
                  "{amount}.", amount=tr.money(result.verdict.merchant_loss))
    if c["open_holds"]:
        held = sum(x.amount for x in found if x.finding == "open_hold")
        return tr("A hold of {amount} on the customer's card was never completed: the merchant is not paid and "
                  "the customer's money stays blocked.", amount=tr.money(held))
    if c["pending_reversals"]:
        return tr("A reversal is still owed to the bank: the customer's money is not back yet.")
    limited = limit_refusals(result)
    if limited:
        return tr("The card's own limit refused {n} sale(s) (61: amount limit, 65: number of sales): nothing was "
                  "charged and there is nothing to reverse.", n=limited)
    timeouts = sum(1 for r in result.trace.records if isinstance(r.event, ev.TimerFired))
    if timeouts:
        return tr(money_words(result)["agree_despite"], n=timeouts)
    return tr(money_words(result)["agree"])


def _escalated_headline(result: RunResult, tr: Tr, found: list[Case]) -> str:
    """CUP profile: the reversal's tries ran out and the case went to the acquirer."""
    tries = next((r.event.attempts for r in result.trace.records if isinstance(r.event, ev.ReversalEscalated)), 3)
    amount = sum(x.amount for x in found if x.finding == "escalated")
    return tr("The reversal failed {tries} times; the terminal asked the merchant to contact the acquirer; the "
              "acquirer's error handling (差错处理) refunds the customer's {amount} on a later statement.",
              tries=tries, amount=tr.money(amount))


#: The money rows' words by who settles (``Reconciliation.channel``): a card's customer is a cardholder and
#: the bank settles; a wallet's customer (顾客) is no cardholder and the wallet settles (钱包结算); a run
#: with both says both.
MONEY_WORDS = {
    "card": {"customer": N_("customer charged without a sale"), "settlement": N_("bank settlement"),
             "agree": N_("Nobody lost money: the terminal and the bank agree on every sale."),
             "agree_despite": N_("Nobody lost money: despite {n} timeout(s), the terminal and the bank agree on "
                                 "every sale."),
             "nothing": N_("Nothing to do: the slips, the terminal's list and the bank statement agree."),
             "check": N_("Check the slip and the terminal's transaction list against the bank statement "
                         "(reconciliation).")},
    "wallet": {"customer": N_("customer's wallet charged without a sale"), "settlement": N_("wallet settlement"),
               "agree": N_("Nobody lost money: the terminal and the wallet agree on every payment."),
               "agree_despite": N_("Nobody lost money: despite {n} timeout(s), the terminal and the wallet agree "
                                   "on every payment."),
               "nothing": N_("Nothing to do: the terminal's list and the wallet's bill agree."),
               "check": N_("Check the terminal's transaction list against the wallet's bill (reconciliation).")},
}
MONEY_WORDS["both"] = {**MONEY_WORDS["card"], "customer": N_("customers (card or wallet) charged without a sale"),
                       "settlement": N_("bank and wallet settlement")}


def channel(result: RunResult) -> str:
    """Who settles the run's payments: "card" (the bank), "wallet" or "both"; from the reconciliation
    when there is one, else from the trace's payments (a run with no wallet payment is a card run)."""
    if result.reconciliation is not None:
        return result.reconciliation.channel
    events = [r.event for r in result.trace.records]
    wallets = any(isinstance(e, ev.WalletPaymentRequested) for e in events)
    cards = any(isinstance(e, ev.PaymentRequested) for e in events)
    return "both" if cards and wallets else "wallet" if wallets else "card"


def money_words(result: RunResult) -> dict[str, str]:
    """The catalogue entries naming the customer and the settlement of this run (:data:`MONEY_WORDS`)."""
    return MONEY_WORDS[channel(result)]


def _money(result: RunResult, tr: Tr) -> list[tuple[str, str]]:
    v = result.verdict
    words = money_words(result)
    rows = [(tr(words["customer"]), tr.money(v.customer_loss)),
            (tr("merchant's goods given away"), tr.money(v.merchant_loss))]
    rec = result.reconciliation
    if rec is not None:
        rows += [(tr("terminal batch (approved sales)"), tr("{count} sale(s), {amount}", count=rec.batch_count,
                                                            amount=tr.money(rec.batch_total))),
                 (tr(words["settlement"]), tr("{count} debit(s), {amount}", count=rec.settled_count,
                                              amount=tr.money(rec.settled_total))),
                 (tr("difference"), tr.money(rec.settled_total - rec.batch_total))]
    return rows


def _actions(result: RunResult, tr: Tr, found: list[Case]) -> list[str]:
    c = result.verdict.counts
    if result.verdict.settled and not escalated(result):
        card_reversed = any(isinstance(r.event, ev.ReversalAcknowledged) for r in result.trace.records)
        return [tr(money_words(result)["nothing"]),
                *([tr("The automatic reversal (冲正) gave the money back; the customer's statement may show the "
                      "charge and its reversal side by side.")] if c["reversed"] and card_reversed else []),
                *_counter_guidance(result, tr),
                *([_limit_advice(tr)] if limit_refusals(result) else []),
                *([_line_advice(tr)] if _switched(result) else [])]
    out = [tr(money_words(result)["check"])]
    if _switched(result):
        out.append(_line_advice(tr))
    out.extend(_contact(case, tr) for case in found[:3])
    if len(found) > 3:
        out.append(tr("... and {n} more transactions: see the list below.", n=len(found) - 3))
    if any(x.finding in WALLET_FINDINGS for x in found):
        out.append(tr("A wallet payment: look the order up by its order number; if the wallet was charged, cancel "
                      "(撤销) or refund it through the acquirer's QR gateway, never by charging the customer again."))
    out.extend(_counter_guidance(result, tr))
    if escalated(result):
        out.append(tr("The terminal gave up the reversal and asked for the acquirer: its error handling (差错处理) "
                      "refunds the customer; the next day's statement shows the charge, a later one the refund."))
    if any(x.finding in ("orphaned_debit", "double_debit") for x in found):
        out.append(tr("Do not refund in cash and do not charge again: the acquirer's error handling (差错处理) "
                      "returns the money to the card, within the time the acquirer's rules set: ask it when "
                      "you call."))
    if c["phantom_approvals"]:
        out.append(tr("This sale will not be paid: ask the customer to pay again only after the acquirer confirms."))
    if c["open_holds"]:
        out.append(tr("Complete the sale or release the hold; otherwise the issuer releases it by its own rule "
                      "(often after {days} days) and the merchant is never paid.", days=HOLD_RELEASE_DAYS))
    if c["pending_reversals"]:
        out.append(tr("Keep the terminal online: it sends the pending reversal before the next sale; expect the "
                      "automatic reversal the same day."))
    return out


#: When a wallet's refund (a cancel 撤销 after payment, or a refund) reaches the customer: the wallet's
#: rule, not the acquirer's. WeChat Pay's refund API: balance (零钱) refunds arrive within 20 minutes,
#: bank-card refunds are checked again after 3 working days; Alipay refunds the balance at once and a bank card
#: as the bank books it.
REFUND_ARRIVAL = {
    "wechat": N_("WeChat Pay's rule: back in the customer's balance (零钱) within 20 minutes, on a bank card "
                 "in about 3 working days"),
    "alipay": N_("Alipay's rule: back in the customer's balance at once, on a bank card when the bank books it "
                 "(usually a few working days)"),
}


def _counter_guidance(result: RunResult, tr: Tr) -> list[str]:
    """What the cashier does at the counter after a wallet payment the till did not approve or that a
    cancel (撤销) refunded: look before asking again, and say when the money comes back."""
    records = result.trace.records
    providers = {r.event.order: r.event.provider for r in records if isinstance(r.event, ev.WalletPaymentRequested)}
    refunded = [r.event for r in records if isinstance(r.event, ev.WalletRefunded)]
    refunding = [r.event for r in records if isinstance(r.event, ev.WalletRefundInstead)
                 and r.event.order not in {e.order for e in refunded}]
    given_back = {e.order for e in refunded} | {e.order for e in refunding}
    unsure = [r.event for r in records if isinstance(r.event, ev.WalletOutcome) and r.event.status != "approved"
              and r.event.order not in given_back]
    out: list[str] = []
    if unsure:
        out.append(tr("At the counter: the till said {screen}. Before asking the customer to pay again, look order "
                      "{order} up in the merchant app (or the wallet's bill): the customer's phone may say paid. "
                      "Pay again only if the app says not paid or closed.", screen=screen(unsure[0].display, tr),
                      order=unsure[0].order))
    for e in refunded[:3]:
        rule = REFUND_ARRIVAL.get(providers.get(e.order, ""), "")
        how = tr("a cancel, 撤销") if e.reason == "cancel" else tr("a refund, 退款")
        out.append(tr("The wallet gave {amount} back for order {order} ({how}): "
                      "tell the customer the refund goes back the way they paid; {rule}.",
                      amount=tr.money(e.amount), order=e.order, how=how, rule=tr(rule) if rule else "-"))
    out.extend(tr("Refund under way: the cancel (撤销) of order {order} came too late, so the terminal refunds it "
                  "(退款) by its order number; the money goes back to the customer once the wallet confirms. "
                  "Never charge the customer again for it.", order=e.order) for e in refunding[:3])
    return out

#: The host's answers to a sale past the card's limits (CUP codes): amount, number of sales.
LIMIT_CODES = frozenset({"61", "65"})


def limit_refusals(result: RunResult) -> int:
    """Sales the host refused by a per-card limit (61, 65), from its trace: such a sale books
    nothing, so under every policy there is nothing to reverse and nothing to refund."""
    return sum(1 for r in result.trace.records if isinstance(r.event, ev.LedgerDeclined) and r.event.rc in LIMIT_CODES)


def _limit_advice(tr: Tr) -> str:
    return tr("What the cashier says: the card's issuer refused it by the card's own limit, not the shop, and "
              "nothing was charged; ask for another card or a QR wallet payment. Never split the sale into "
              "smaller ones to get under the limit (acquirers forbid split sales).")


def _switched(result: RunResult) -> bool:
    """The terminal left its primary host line during the run (``line_switched`` in the trace)."""
    return any(isinstance(r.event, ev.LineSwitched) for r in result.trace.records)


def _line_advice(tr: Tr) -> str:
    return tr("The terminal switched to its backup line after the primary stopped answering: tell the acquirer "
              "the primary line is down; sales and reversals go on over the backup meanwhile.")


def _contact(case: Case, tr: Tr) -> str:
    if case.finding in WALLET_FINDINGS:
        return tr("Contact the acquirer with terminal id {tid}, order number {order}, date and time {when} "
                  "({amount}).", tid=case.tid, order=case.stan, when=case.at, amount=tr.money(case.amount))
    return tr("Contact the acquirer with terminal id {tid}, batch no. {batch}, voucher no. {voucher}, reference "
              "no. (RRN) {rrn}, date and time {when} ({amount}).", tid=case.tid, batch=BATCH, voucher=case.stan,
              rrn=case.rrn or "-", when=case.at, amount=tr.money(case.amount))


def _charge(records: list[ev.Stamped], order: str) -> tuple[str, float]:
    """The wallet's trade number and the time it charged order ``order`` (the first payment, if any)."""
    for r in records:
        if isinstance(r.event, ev.WalletCharged) and r.event.order == order:
            return r.event.trade_no or "", r.t
    return "", 0.0


def _booking(records: list[ev.Stamped], stan: str) -> tuple[str, float]:
    """The RRN and time of the host's booking for ``stan`` (what the acquirer searches by)."""
    for r in records:
        e = r.event
        if isinstance(e, ev.LedgerMovement | ev.LedgerCapture) and e.stan == stan:
            return e.rrn or "", r.t
    return "", 0.0


def _screen(records: list[ev.Stamped], txn: int | None, tr: Tr, wallet: bool = False) -> str:
    """What the cashier's screen said of ``txn`` (a card sale, or a wallet payment when ``wallet``)."""
    for r in records:
        e = r.event
        if isinstance(e, ev.WalletOutcome if wallet else ev.TxnOutcome) and e.txn == txn:
            return screen(e.display, tr)
    return tr("FAILED")
