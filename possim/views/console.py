"""Console rendering with rich: the point of a run, timelines, verdicts, policies side by side.

Every view opens with the point (:mod:`possim.views.lesson`): who lost how much and why, the
money, what the merchant should do; the timeline explains it below. Worded in the reader's
language (:class:`possim.i18n.Tr`). Plain when piped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from possim.i18n import N_, Tr
from possim.judging.checker import DAMAGE, Finding, harmful, shown_measures
from possim.money.fees import say
from possim.protocol import events as ev
from possim.simulation import RunResult
from possim.views.lesson import WALLET_FINDINGS, clock, point
from possim.views.timeline import note, rows

_EN = Tr("en")
MEASURE_NAMES = {"transactions": N_("transactions"), "approved": N_("approved"), "declined": N_("declined"),
                 "failed": N_("failed"), "unknown": N_("unknown"), "reversed": N_("reversed"),
                 "orphaned_debits": N_("orphaned debits"), "double_debits": N_("double debits"),
                 "phantom_approvals": N_("phantom approvals"), "pending_reversals": N_("pending reversals"),
                 "open_holds": N_("open holds"), "late_responses": N_("late responses"),
                 "customer_loss": N_("customer loss"), "merchant_loss": N_("merchant loss"),
                 "escalated": N_("escalated to the acquirer"),
                 "recovered_by_settlement": N_("recovered by settlement")}


#: How a settled payment was paid, where the code is not a word (catalogue entries).
INSTRUMENTS = {"qr_wallet": N_("wallet QR payment")}


def instrument(code: str, tr: Tr) -> str:
    """'credit', 'debit', 'qr_wallet'... in the reader's words."""
    return tr(INSTRUMENTS.get(code, code))


def alarm(key: str, value: object) -> bool:
    """Shown in red: harm (``checker.harmful``), and an escalation, which is money still owed to a customer."""
    return harmful(key, value) or (key == "escalated" and bool(value))


#: A run of wallet payments only: its reversals are cancels (撤销), never card reversals (冲正).
#: Its customer (顾客) pays from a wallet, no cardholder (持卡人).
WALLET_MEASURE_NAMES = {"reversed": N_("cancelled (撤销) and refunded"),
                        "pending_reversals": N_("pending cancels (撤销)"),
                        "customer_loss": N_("customer loss (wallet payments)")}


def measure(key: str, tr: Tr, wallet_only: bool = False) -> str:
    names = {**MEASURE_NAMES, **WALLET_MEASURE_NAMES} if wallet_only else MEASURE_NAMES
    return tr(names.get(key, key.replace("_", " ")))


def wallet_only(result: RunResult) -> bool:
    """Whether every payment of the run was a wallet payment (QR): then a reversal is a cancel (撤销)."""
    events = [r.event for r in result.trace.records]
    return (any(isinstance(e, ev.WalletPaymentRequested) for e in events)
            and not any(isinstance(e, ev.PaymentRequested) for e in events))


def lesson(console: Console, result: RunResult, tr: Tr = _EN, actions: bool = True) -> None:
    """The headline, the money and what the merchant should do."""
    p = point(result, tr)
    colour = "green" if p.good else "red"
    console.print(f"[bold {colour}]{escape(p.headline)}[/]")
    money = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    money.add_column(no_wrap=False)
    money.add_column(justify="right", no_wrap=True)
    for label, value in p.money:
        money.add_row(escape(label), f"[bold]{escape(value)}[/]")
    console.print(money)
    counter_table(console, p.counter, tr, lambda t: clock(result, t))
    if actions:
        console.print(f"[bold]{escape(tr('What the merchant should do'))}[/]")
        console.print(numbered(p.actions))
    console.print()


def numbered(items: Sequence[str]) -> Table:
    """A numbered list whose number keeps its own column: a long item (Chinese has no spaces to
    break at) wraps under its text, never leaving "2." alone on a line."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for i, item in enumerate(items, 1):
        grid.add_row(f" {i}.", escape(item))
    return grid


def counter_table(console: Console, moments: Sequence[tuple[float, str, str]], tr: Tr = _EN,
                  at: Callable[[float], str] | None = None) -> None:
    """A wallet payment at the counter: two lanes, what the till shows and what the customer's phone shows.

    ``at`` turns run time into the clock time the cashier lives (``lesson.clock``); without it, run seconds."""
    if not moments:
        return
    table = Table(title=tr("At the counter"), show_lines=False, expand=True)
    table.add_column(tr("time") if at else tr("t (s)"), justify="right", no_wrap=True)
    table.add_column(tr("the till shows"), ratio=1)
    table.add_column(tr("the customer's phone shows"), ratio=1, style="magenta")
    for t, till, phone in moments:
        table.add_row(at(t) if at else f"{t:.2f}", escape(till), escape(phone))
    console.print(table)


def timeline(console: Console, result: RunResult, limit: int = 400, tr: Tr = _EN) -> None:
    """The run's events; the counter's two lanes are in the lesson above, not repeated here."""
    title = tr("{scenario} - policy {policy}, seed {seed}", scenario=result.scenario.name,
               policy=tr.policy(result.policy, wallet_only(result)), seed=result.seed)
    trace_table(console, result.trace.records, title, limit, tr)


def trace_table(console: Console, records: Sequence[Any], title: str, limit: int = 400, tr: Tr = _EN) -> None:
    """Trace records as the three-column timeline (terminal, network, host), at most ``limit`` rows."""
    table = Table(title=title, show_lines=False, expand=True)
    table.add_column(tr("t (s)"), justify="right", no_wrap=True)
    table.add_column(tr("terminal"), ratio=3)
    table.add_column(tr("network"), ratio=2, style="yellow")
    table.add_column(tr("host"), ratio=3, style="cyan")
    all_rows = rows(records, tr)
    for t, term, net, host in all_rows[:limit]:
        table.add_row(f"{t:.3f}", escape(term), escape(net), escape(host), style=_style(term, net, host))
    console.print(table)
    if len(all_rows) > limit:
        console.print(tr("... {n} more events (write them all with --trace FILE)", n=len(all_rows) - limit))


def _style(term: str, net: str, host: str) -> str | None:
    """Red for what went wrong: a loss (also at a host that is down), a timeout, a crash."""
    alarm = any(word in cell for cell in (term, net, host) for word in ("LOST", "TIMEOUT", "CRASH", "丢失", "超时",
                                                                        "宕机"))
    return "bold red" if alarm else None


def verdict(console: Console, result: RunResult, failures: Sequence[str] = (), tr: Tr = _EN) -> None:
    s = result.verdict.summary()
    table = Table(title=tr("checker verdict (terminal journal vs host ledger)"))
    table.add_column(tr("measure"))
    table.add_column(tr("value"), justify="right")
    wallet = wallet_only(result)
    for key in shown_measures(s):
        value = s[key]
        shown = tr.money(value) if key.endswith("_loss") else str(value)
        table.add_row(measure(key, tr, wallet), f"[bold red]{shown}[/]" if alarm(key, value) else shown)
    console.print(table)
    for f in result.verdict.findings[:20]:
        console.print("  " + finding_line(f, tr))
    for line in failures:
        console.print(f"[bold red]{escape(tr('expectation failed:'))}[/] {escape(line)}")
    if not result.quiescent:
        console.print(f"[bold red]{escape(tr('run did not reach quiescence within the horizon'))}[/]")


def finding_line(f: Finding, tr: Tr = _EN) -> str:
    """One finding in the reader's words. Money the ledger holds for no journaled sale has no
    transaction number: it is named by what the request itself carried, its STAN and the time it
    was sent (field 7). A wallet payment's finding names its merchant order number (订单号)."""
    finding, amount = tr(f.finding.replace("_", " ")), tr.money(f.amount)
    if f.finding in WALLET_FINDINGS:  # keyed by the merchant order number, never a STAN
        return tr("finding: {finding}, txn {txn}, order no. {order}, {amount}", finding=finding,
                  txn=f.txn if f.txn is not None else "-", order=f.key[1], amount=amount)
    if f.txn is not None:
        return tr("finding: {finding}, txn {txn}, stan {stan}, {amount}", finding=finding, txn=f.txn,
                  stan=f.key[1], amount=amount)
    return tr("finding: {finding}, no journal row, stan {stan} sent {sent}, {amount}", finding=finding,
              stan=f.key[1], sent=sent_at(f.key[2]), amount=amount)


def sent_at(transmission: str) -> str:
    """Field 7 (MMDDhhmmss) as ``MM-DD hh:mm:ss``; any other key part as it is."""
    t = transmission
    return f"{t[0:2]}-{t[2:4]} {t[4:6]}:{t[6:8]}:{t[8:10]}" if len(t) == 10 and t.isdigit() else t


def compare(console: Console, results: Sequence[RunResult], tr: Tr = _EN) -> None:
    """One column per policy; when they do not all fit the console's width (any number of policies
    may be registered), the policies are shown in as many tables as needed, each one whole."""
    for group in _fitting(console, results, tr):
        console.print(_compare_table(group, tr))


def _fitting(console: Console, results: Sequence[RunResult], tr: Tr) -> list[Sequence[RunResult]]:
    """``results`` cut into runs of consecutive policies whose table fits, at least one per table."""
    groups: list[Sequence[RunResult]] = []
    start = 0
    for end in range(1, len(results) + 1):
        if end - start > 1 and _natural_width(console, _compare_table(results[start:end], tr)) > console.width:
            groups.append(results[start:end - 1])
            start = end - 1
    return [*groups, results[start:]]


def _natural_width(console: Console, table: Table) -> int:
    """The width ``table`` takes when nothing squeezes it (rich measures within the console's width)."""
    return console.measure(table, options=console.options.update_width(1_000_000)).maximum


def _compare_table(results: Sequence[RunResult], tr: Tr) -> Table:
    table = Table(title=tr("{scenario}: same faults, seed {seed}, each policy", scenario=results[0].scenario.name,
                           seed=results[0].seed))
    table.add_column(tr("measure"))
    for r in results:
        table.add_column(tr.policy(r.policy), justify="right")
    summaries: list[dict[str, Any]] = [r.verdict.summary() for r in results]
    for key in shown_measures({k: v for s in summaries for k, v in s.items()}):
        cells = []
        for s in summaries:
            v = s.get(key, 0)
            shown = tr.money(v) if key.endswith("_loss") else str(v)
            cells.append(f"[bold red]{shown}[/]" if alarm(key, v) else f"[green]{shown}[/]" if key in DAMAGE
                         else shown)
        table.add_row(measure(key, tr, wallet_only(results[0])), *cells)
    return table


def coverage(console: Console, counts: Any, examples: int, groups: Any = None, tr: Tr = _EN) -> None:
    """How often each failure situation was exercised, in domain words; zeros stand out.

    ``groups``: the situation groups the batch drew from (``possim.judging.coverage.GROUPS``; all by default).
    """
    from possim.judging.coverage import GROUPS, labels

    table = Table(title=tr("fault coverage over {examples} schedules (runs that went through each situation)",
                           examples=examples))
    table.add_column(tr("situation"))
    table.add_column(tr("runs"), justify="right")
    table.add_column(tr("share"), justify="right")
    for label in labels(GROUPS if groups is None else groups):
        n = counts.get(label, 0)
        share = f"{100 * n / examples:.1f}%" if examples else "-"
        table.add_row(escape(tr(label)), str(n) if n else "[bold red]0[/]", share)
    console.print(table)


#: An end of day's words by who settles (``Reconciliation.channel``): the bank for cards, the wallet
#: for QR payments (a wallet's customer is no cardholder, its settlement no bank's), or both.
SETTLEMENT_WORDS = {
    "card": {"unbalanced": N_("NOT balanced: the bank settles {amount} more than the terminal batch."),
             "balanced": N_("Balanced: the terminal batch and the bank settlement agree."),
             "settled": N_("bank settlement (net debits)"), "key": "STAN",
             "customer": N_("customer: charged {amount} without a sale (orphaned debits)"),
             "merchant": N_("merchant: goods given away on phantom approvals {goods}; fees paid on orphaned debits "
                            "{fees} (returned when the sale is voided or refunded by the acquirer)")},
    "wallet": {"unbalanced": N_("NOT balanced: the wallet settles {amount} more than the terminal batch."),
               "balanced": N_("Balanced: the terminal batch and the wallet settlement agree."),
               "settled": N_("wallet settlement (net charges)"), "key": N_("order no."),
               "customer": N_("customer: charged {amount} without a sale (orphaned wallet charges)"),
               "merchant": N_("merchant: goods given away on phantom approvals {goods}; fees paid on orphaned "
                              "wallet charges {fees} (returned when the order is cancelled or refunded)")},
    "both": {"unbalanced": N_("NOT balanced: the bank and the wallet settle {amount} more than the terminal batch."),
             "balanced": N_("Balanced: the terminal batch and the bank and wallet settlement agree."),
             "settled": N_("bank and wallet settlement (net debits)"), "key": N_("STAN / order no."),
             "customer": N_("customers (card and wallet): charged {amount} without a sale (orphaned debits)"),
             "merchant": N_("merchant: goods given away on phantom approvals {goods}; fees paid on orphaned debits "
                            "{fees} (returned with the void or refund, or the wallet order's cancel or refund)")},
}


def _words(rec: Any) -> dict[str, str]:
    return SETTLEMENT_WORDS[getattr(rec, "channel", "card")]


def settlement_words(rec: Any) -> dict[str, str]:
    """The end of day's words for who settles ``rec`` (:data:`SETTLEMENT_WORDS`; a card run without a channel)."""
    return _words(rec)


def balance_headline(console: Console, rec: Any, tr: Tr = _EN) -> None:
    """The first line of an end of day: balanced (green), or how much more the bank (or wallet) settles (red)."""
    diff = rec.settled_total - rec.batch_total
    if diff or not rec.balanced:
        text = tr(_words(rec)["unbalanced"], amount=tr.money(diff))
        console.print(f"[bold red]{escape(text)}[/]")
    else:
        console.print(f"[bold green]{escape(tr(_words(rec)['balanced']))}[/]")


def reconciliation(console: Console, rec: Any, title: str, tr: Tr = _EN) -> None:
    """The end-of-day view (对账): batch against settlement, mismatches, fees, and what timeouts cost."""
    diff = rec.settled_total - rec.batch_total
    balance_headline(console, rec, tr)
    console.print(f"[bold]{escape(tr('End-of-day reconciliation'))}[/] - {escape(title)}")
    totals = Table(show_header=True)
    totals.add_column("")
    totals.add_column(tr("count"), justify="right")
    totals.add_column(tr("total"), justify="right")
    totals.add_row(tr("terminal batch (approved sales)"), str(rec.batch_count), tr.money(rec.batch_total))
    totals.add_row(tr(_words(rec)["settled"]), str(rec.settled_count), tr.money(rec.settled_total))
    totals.add_row(tr("difference"), "", f"[bold red]{tr.money(diff)}[/]" if diff else tr.money(diff))
    console.print(totals)
    if rec.mismatches:
        mm = Table(title=tr("mismatches"))
        for col in (N_("kind"), _words(rec)["key"], N_("txn"), N_("terminal"), N_("host"), N_("note")):
            mm.add_column(tr(col))
        for m in rec.mismatches:
            mm.add_row(tr(m.kind.replace("_", " ")), m.stan, str(m.txn or "-"), tr.money(m.terminal_amount),
                       tr.money(m.host_amount), note(m.note, tr))
        console.print(mm)
    _fees(console, rec, tr)
    console.print(tr("merchant receives {net} after {fees} in fees", net=tr.money(rec.merchant_net),
                     fees=tr.money(rec.fees_total)))
    console.print(f"[bold]{escape(tr('what the timeouts cost'))}[/]")
    console.print("  " + tr(_words(rec)["customer"], amount=tr.money(rec.customer_charged_without_sale)))
    console.print("  " + tr(_words(rec)["merchant"], goods=tr.money(rec.merchant_goods_given_away),
                            fees=tr.money(rec.fees_on_orphaned_debits)))


def _fees(console: Console, rec: Any, tr: Tr) -> None:
    fees = Table(title=tr("merchant discount fees (per settled transaction, rounded half up to the cent)"))
    for col in (_words(rec)["key"], N_("txn"), N_("card type"), N_("amount"), N_("fee"), N_("rule")):
        fees.add_column(tr(col), justify="right" if col in ("amount", "fee") else "left")
    for line in rec.lines[:50]:
        fees.add_row(line.stan, str(line.txn or "-"), instrument(line.instrument, tr), tr.money(line.amount),
                     tr.money(line.fee), say(line.rule, tr))
    if len(rec.lines) > 50:
        fees.add_row("...", tr("{n} more", n=len(rec.lines) - 50), "", "", "", "")
    fees.add_row("", "", f"[bold]{escape(tr('total'))}[/]", tr.money(rec.settled_total), tr.money(rec.fees_total), "")
    console.print(fees)
