"""End-of-day reconciliation, both ways a merchant meets it.

:func:`check_statement` is the merchant's own: the acquirer's T+1 statement
(:mod:`possim.money.statement`) against the merchant's records (the terminal's journal or a CSV of
sales slips), matched by terminal, RRN, authorization code and amount, every difference
said in plain words with what to do about it.

:func:`reconcile` is the lab's view: the terminal's batch against the host's settlement, with fees.
Like the checker it reads recorded facts only: the terminal journal (what the terminal
will claim in its batch: approved sales) and the host ledger (what actually settles: net
debits and captures per transaction key, reversals, holds), summed by the checker's
:func:`possim.judging.checker.ledger_money`, the one place the money of a key is computed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from possim.i18n import N_
from possim.judging.checker import QR, Key, ledger_money, wallet_money
from possim.money.fees import FeeSchedule, Said
from possim.money.statement import (
    DEFAULT_EPOCH,
    TIME_FORMAT,
    WALLET_NAMES,
    ZERO,
    StatementError,
    StatementLine,
    line_error,
    moment,
    parse_money,
    read_rows,
)


def _money(minor: int) -> Decimal:
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Line:
    """One settled transaction and its fee."""

    stan: str
    txn: int | None
    instrument: str
    amount: Decimal
    fee: Decimal
    rule: str
    tid: str = ""


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str  # orphaned_debit | phantom_approval | amount_differs | reversal_without_original | hold_never_completed
    stan: str
    txn: int | None
    terminal_amount: Decimal
    host_amount: Decimal
    note: str
    tid: str = ""


@dataclass
class Reconciliation:
    batch_count: int
    batch_total: Decimal
    settled_count: int
    settled_total: Decimal
    fees_total: Decimal
    lines: list[Line] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    customer_charged_without_sale: Decimal = Decimal("0.00")
    merchant_goods_given_away: Decimal = Decimal("0.00")
    fees_on_orphaned_debits: Decimal = Decimal("0.00")
    cards: bool = False  # card payments took part (keys by STAN, the bank settles them)
    wallets: bool = False  # wallet payments (QR) took part (keys by order number, the wallet settles them)

    @property
    def channel(self) -> str:
        """Who settles what the view shows: "card" (the bank), "wallet" or "both"; names its words."""
        return "both" if self.cards and self.wallets else "wallet" if self.wallets else "card"

    @property
    def balanced(self) -> bool:
        """Money agrees; a reversal without original is listed but moves no money."""
        return not [m for m in self.mismatches if m.kind != "reversal_without_original"]

    @property
    def merchant_net(self) -> Decimal:
        return self.settled_total - self.fees_total

    def as_dict(self) -> dict[str, Any]:
        s = str
        return {
            "balanced": self.balanced,
            "terminal_batch": {"count": self.batch_count, "total": s(self.batch_total)},
            "host_settlement": {"count": self.settled_count, "total": s(self.settled_total)},
            "difference": s(self.settled_total - self.batch_total),
            "fees_total": s(self.fees_total),
            "merchant_net": s(self.merchant_net),
            "timeout_cost": {"customer_charged_without_sale": s(self.customer_charged_without_sale),
                             "merchant_goods_given_away": s(self.merchant_goods_given_away),
                             "fees_on_orphaned_debits": s(self.fees_on_orphaned_debits)},
            "mismatches": [{"kind": m.kind, "tid": m.tid, "stan": m.stan, "txn": m.txn,
                            "terminal": s(m.terminal_amount), "host": s(m.host_amount), "note": m.note}
                           for m in self.mismatches],
            "lines": [{"tid": line.tid, "stan": line.stan, "txn": line.txn, "instrument": line.instrument,
                       "amount": s(line.amount), "fee": s(line.fee), "rule": line.rule} for line in self.lines],
        }


def reconcile(journal: sqlite3.Connection, ledger: sqlite3.Connection, fees: FeeSchedule,
              tids: Collection[str] | None = None) -> Reconciliation:
    """The batch against the settlement; ``tids``: only these terminals (a fleet's group on one host shard)."""
    terminal = {(tid, stan, tx): (txn, status, kind, amount, completion, instrument)
                for tid, stan, tx, txn, status, kind, amount, completion, instrument in journal.execute(
                    "SELECT tid, stan, transmission, txn_id, status, kind, amount, completion_amount, instrument "
                    "FROM journal ORDER BY txn_id")}
    host = ledger_money(ledger)
    _add_wallet(terminal, host, journal, ledger)
    if tids is not None:
        wanted = set(tids)
        terminal = {k: v for k, v in terminal.items() if k[0] in wanted}
        host = {k: v for k, v in host.items() if k[0] in wanted}
    keys = set(terminal) | set(host)
    claimed = {k: (v[4] if v[2] == "auth" else v[3]) for k, v in terminal.items() if v[1] == "approved"}
    settled = {k: net for k, (net, _) in host.items() if net > 0}
    rec = Reconciliation(len(claimed), _money(sum(claimed.values())), len(settled), _money(sum(settled.values())),
                         Decimal("0.00"), cards=any(k[2] != QR for k in keys), wallets=any(k[2] == QR for k in keys))
    # A day's sales repeat few amounts, instruments and terminals: each line shares their objects
    # (the fee is a pure function of amount and instrument) instead of holding its own copies.
    priced: dict[tuple[int, str], tuple[Decimal, Decimal, str]] = {}
    same: dict[str, str] = {}
    for key in sorted(settled, key=lambda k: k[1]):
        txn = terminal.get(key)
        instrument = same.setdefault(txn[5], txn[5]) if txn else "credit"
        price = priced.get((settled[key], instrument))
        if price is None:
            amount = _money(settled[key])
            price = priced[(settled[key], instrument)] = (amount, *fees.fee(amount, instrument))
        amount, fee, rule = price
        rec.lines.append(Line(key[1], txn[0] if txn else None, instrument, amount, fee, rule,
                              same.setdefault(key[0], key[0])))
        rec.fees_total += fee
        if key not in claimed:
            rec.fees_on_orphaned_debits += fee
    _mismatches(rec, terminal, claimed, settled, host, ledger, tids)
    return rec


def combine(parts: Sequence[Reconciliation]) -> Reconciliation:
    """Several reconciliations (a fleet's groups and host shards) as one: totals summed, lists joined."""
    out = Reconciliation(sum(p.batch_count for p in parts), sum((p.batch_total for p in parts), ZERO),
                         sum(p.settled_count for p in parts), sum((p.settled_total for p in parts), ZERO),
                         sum((p.fees_total for p in parts), ZERO), cards=any(p.cards for p in parts),
                         wallets=any(p.wallets for p in parts))
    for p in parts:
        out.lines.extend(p.lines)
        out.mismatches.extend(p.mismatches)
        out.customer_charged_without_sale += p.customer_charged_without_sale
        out.merchant_goods_given_away += p.merchant_goods_given_away
        out.fees_on_orphaned_debits += p.fees_on_orphaned_debits
    return out


def _mismatches(rec: Reconciliation, terminal: dict[Key, Any], claimed: dict[Key, int], settled: dict[Key, int],
                host: dict[Key, tuple[int, int]], ledger: sqlite3.Connection, tids: Collection[str] | None) -> None:
    for key in sorted(set(claimed) | set(settled), key=lambda k: k[1]):
        txn = terminal[key][0] if key in terminal else None
        mine, theirs = claimed.get(key, 0), settled.get(key, 0)
        if mine and not theirs:
            held = host.get(key, (0, 0))[1]
            if held:
                continue  # reported below as a hold never completed
            rec.merchant_goods_given_away += _money(mine)
            rec.mismatches.append(Mismatch("phantom_approval", key[1], txn, _money(mine), Decimal("0.00"),
                                           "terminal approved, host settles nothing: goods given away", key[0]))
        elif theirs and not mine:
            status = terminal[key][1] if key in terminal else "never journaled"
            rec.customer_charged_without_sale += _money(theirs)
            note = (_wallet_note(ledger, key, status) if key[2] == QR else
                    f"host settles a debit the terminal shows as {status}: void or refund "
                    "it through the acquirer (error handling), the fee comes back with it")
            rec.mismatches.append(Mismatch("orphaned_debit", key[1], txn, Decimal("0.00"), _money(theirs), note,
                                           key[0]))
        elif mine != theirs:
            rec.mismatches.append(Mismatch("amount_differs", key[1], txn, _money(mine), _money(theirs),
                                           "terminal and host disagree on the amount", key[0]))
    for key, (_, held) in sorted(host.items(), key=lambda kv: kv[0][1]):
        if held:
            txn = terminal[key][0] if key in terminal else None
            rec.mismatches.append(Mismatch("hold_never_completed", key[1], txn,
                                           _money(claimed.get(key, 0)), _money(held),
                                           "authorization hold still open: never captured nor released", key[0]))
    for tid, stan, tx in ledger.execute(
            "SELECT tid, stan, transmission FROM reversals WHERE outcome = 'before_original' ORDER BY received_at"):
        if tids is not None and tid not in tids:
            continue
        original = ledger.execute("SELECT state FROM originals WHERE tid=? AND stan=? AND transmission=?",
                                  (tid, stan, tx)).fetchone()
        txn = terminal.get((tid, stan, tx), (None,))[0]
        note = ("reversal arrived before its original, which was then refused" if original
                else "reversal for an original the host never received")
        rec.mismatches.append(Mismatch("reversal_without_original", stan, txn, Decimal("0.00"), Decimal("0.00"),
                                       note, tid))


def _wallet_note(ledger: sqlite3.Connection, key: Key, status: str) -> str:
    """An orphaned wallet charge, named as the wallet's bill names it (provider and trade number)."""
    row = ledger.execute("SELECT provider, COALESCE(trade_no, '-') FROM wallet_trades WHERE tid = ? AND "
                         "out_trade_no = ?", (key[0], key[1])).fetchone()
    provider, trade_no = row if row else ("wallet", "-")
    return (f"{WALLET_NOTE_PREFIX}{provider} trade no. {trade_no}) charged the customer and the terminal shows "
            f"{status}: {WALLET_REMEDY}")


#: How an orphaned wallet charge's note starts and ends (:func:`possim.views.timeline.note` translates it).
WALLET_NOTE_PREFIX = "wallet bill ("
WALLET_REMEDY = ("look the order up in the merchant app; cancel (撤销) or refund it by its order number, "
                 "the fee comes back with it")


# -- the merchant's records against the acquirer's statement ----------------------------------

@dataclass(frozen=True, slots=True)
class MerchantRecord:
    """One sale as the merchant knows it: a journal row or a sales slip."""

    tid: str
    rrn: str
    auth_code: str
    amount: Decimal
    at: datetime | None
    status: str = "approved"  # a slip is an approved sale; a journal row may be anything
    stan: str = ""  # a wallet payment's: its order number
    returned: str = ""  # a wallet payment the terminal cancelled (撤销) or refunded, acknowledged: "cancel" | "refund"
    returned_at: datetime | None = None  # when the wallet acknowledged that cancel or refund
    batch: str = ""  # a slip's batch number (批次号), when it gives one


#: Words to translate: a message id and its values; a value that is itself a ``Words`` is translated too.
Words = tuple[str, dict[str, Any]]


def say(words: Words, tr: Callable[..., str] | None = None) -> str:
    """``words`` in the reader's language (``tr``, an :class:`possim.i18n.Tr`), English without one."""
    text, values = words
    values = {k: say(v, tr) if isinstance(v, tuple) else v for k, v in values.items()}
    return tr(text, **values) if tr is not None else text.format(**values)


@dataclass(frozen=True, slots=True)
class Difference:
    """A disagreement between statement and records, in plain words, with the remedy."""

    kind: str  # charged_without_sale | refund_under_way | missing_from_statement | amount_differs | auth_code_differs
    tid: str
    rrn: str
    statement_amount: Decimal
    merchant_amount: Decimal
    what_words: Words
    remedy_words: Words

    @property
    def what(self) -> str:
        return say(self.what_words)

    @property
    def remedy(self) -> str:
        return say(self.remedy_words)


@dataclass
class StatementCheck:
    """The result of comparing one statement with the merchant's records."""

    days: list[date]
    matched: int = 0
    differences: list[Difference] = field(default_factory=list)
    adjustment_words: list[Words] = field(default_factory=list)
    #: Wallet charges the terminal already gave back after the statement's cut-off (kind ``refund_under_way``):
    #: expected, explained by the records, taken back on a later statement; listed, never a difference.
    under_way: list[Difference] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """No unexplained difference: a refund under way is expected and does not count."""
        return not self.differences

    @property
    def adjustments(self) -> list[str]:
        return [say(a) for a in self.adjustment_words]

    def text(self, tr: Callable[..., str] | None = None) -> list[str]:
        """The check for people, in ``tr``'s language (English without one)."""
        days = ", ".join(str(d) for d in self.days) or say((N_("no date"), {}), tr)
        out = [say((N_("statement of {days} against your records: {agree}, {differ}"), {
            "days": days, "agree": _count(self.matched, N_("{n} sale agrees"), N_("{n} sales agree")),
            "differ": _count(len(self.differences), N_("{n} difference"), N_("{n} differences"))}), tr)]
        for number, d in enumerate(self.differences, start=1):
            out += [f"{number}. {say(d.what_words, tr)}",
                    "   " + say((N_("what to do: {remedy}"), {"remedy": d.remedy_words}), tr)]
        if self.under_way:
            out.append(say(_count(len(self.under_way), N_("expected, not a difference: {n} refund under way"),
                                  N_("expected, not a difference: {n} refunds under way")), tr))
        for d in self.under_way:
            out += [f"- {say(d.what_words, tr)}",
                    "   " + say((N_("what to do: {remedy}"), {"remedy": d.remedy_words}), tr)]
        out += [say((N_("adjustment: {what}"), {"what": a}), tr) for a in self.adjustment_words]
        out.append(say((N_("statement and records agree") if self.agrees
                        else N_("statement and records DISAGREE"), {}), tr))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"agrees": self.agrees, "days": [str(d) for d in self.days], "matched": self.matched,
                "adjustments": self.adjustments, "differences": [_difference(d) for d in self.differences],
                "refunds_under_way": [_difference(d) for d in self.under_way]}


def _difference(d: Difference) -> dict[str, str]:
    return {"kind": d.kind, "terminal": d.tid, "rrn": d.rrn, "statement": str(d.statement_amount),
            "merchant": str(d.merchant_amount), "what": d.what, "remedy": d.remedy}


def journal_records(journal: sqlite3.Connection, epoch: datetime = DEFAULT_EPOCH) -> list[MerchantRecord]:
    """Every journaled sale, with what the terminal showed (an authorization counts by its completion)."""
    rows = journal.execute("SELECT tid, rrn, auth_code, kind, amount, completion_amount, started_at, status, stan "
                           "FROM journal ORDER BY txn_id")
    records = [MerchantRecord(tid, rrn or "", auth or "", _money(completion if kind == "auth" else amount),
                              moment(started, epoch), status, stan)
               for tid, rrn, auth, kind, amount, completion, started, status, stan in rows]
    return records + _wallet_records(journal, epoch)


def _wallet_records(journal: sqlite3.Connection, epoch: datetime) -> list[MerchantRecord]:
    """The QR terminal's payments, known by their merchant order number: the statement's wallet
    lines carry it in the RRN column (:func:`possim.money.statement.wallet_lines`)."""
    found = journal.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wallet_journal'")
    if found.fetchone() is None:
        return []
    rows = journal.execute("SELECT tid, out_trade_no, amount, started_at, status, cancel, cancel_action, finished_at "
                           "FROM wallet_journal ORDER BY txn_id")
    return [MerchantRecord(tid, order, "", _money(amount), moment(started, epoch), status, order,
                           *_returned(status, cancel, action, finished, epoch))
            for tid, order, amount, started, status, cancel, action, finished in rows]


def _returned(status: str, cancel: str, action: str | None, finished: float | None,
              epoch: datetime) -> tuple[str, datetime | None]:
    """Whether the journal shows the paid order given back: its cancel (or the refund that replaced
    it) acknowledged, the money on its way back to the customer's wallet; and when."""
    if status != "reversed" or cancel != "acked" or action not in ("cancel", "refund"):
        return "", None
    return action, moment(finished, epoch) if finished is not None else None


#: A slip's columns by other names: the voucher number (凭证号) is the sale's STAN, its trace number.
SLIP_ALIASES = {"stan": "voucher", "trace": "voucher"}


def slip_records(path: str | Path) -> list[MerchantRecord]:
    """Sales slips as CSV, one slip a row: columns terminal, amount and rrn or voucher (stan, trace);
    auth_code, batch and date_time optional. Headers in English or as the Chinese statement names them
    (终端号, 金额, 参考号, 凭证号, 批次号, 授权码, 交易时间)."""
    rows = [{SLIP_ALIASES.get(k, k): v for k, v in row.items()} for row in read_rows(path, ("terminal", "amount"))]
    if rows and not ({"rrn", "voucher"} & rows[0].keys()):
        raise StatementError(Said(N_("{path}: a slip is found by its rrn or its voucher number: give one of "
                                     "these columns"), path=str(path)))
    records = []
    for number, row in enumerate(rows, start=2):
        try:
            at = datetime.strptime(row["date_time"], TIME_FORMAT) if row.get("date_time") else None
            amount = parse_money(row["amount"])
            records.append(MerchantRecord(row["terminal"], row.get("rrn", ""), row.get("auth_code", ""), amount, at,
                                          stan=row.get("voucher", ""), batch=row.get("batch", "")))
        except ValueError as exc:
            raise StatementError(line_error(path, number, exc)) from None
    return records


def check_statement(lines: list[StatementLine], records: list[MerchantRecord],
                    days: list[date] | None = None) -> StatementCheck:
    """Compare the statement's sales with the merchant's approved sales of the same days.

    Sales are matched by terminal and RRN, a record without RRN by terminal, auth code and
    amount. Adjustments are listed apart: they settle an earlier day's difference.
    """
    days = sorted(days if days is not None else {line.at.date() for line in lines})
    check = StatementCheck(days)
    mine = [r for r in records if r.status == "approved" and (not days or r.at is None or r.at.date() in days)]
    others = [r for r in records if r.status != "approved"]
    unmatched = list(mine)
    for line in (line for line in lines if line.is_sale):
        record = _match(line, unmatched)
        if record is None:
            found = _charged_without_sale(line, others)
            (check.under_way if found.kind == "refund_under_way" else check.differences).append(found)
            continue
        unmatched.remove(record)
        difference = _compare(line, record)
        if difference is None:
            check.matched += 1
        else:
            check.differences.append(difference)
    check.differences.extend(_missing(record) for record in unmatched)
    check.adjustment_words.extend(
        (N_("{at} terminal {tid} order no. {rrn}: {amount} ({description}; fee {fee})") if line.card in WALLETS
         else N_("{at} terminal {tid} RRN {rrn}: {amount} ({description}; fee {fee})"),
         {"at": f"{line.at:%Y-%m-%d %H:%M}", "tid": line.tid, "rrn": line.rrn, "amount": line.adjustments,
          "description": line.description, "fee": line.fee}) for line in lines if not line.is_sale)
    return check


def _match(line: StatementLine, records: list[MerchantRecord]) -> MerchantRecord | None:
    by_rrn = [r for r in records if r.tid == line.tid and r.rrn and r.rrn == line.rrn]
    if by_rrn:
        return by_rrn[0]
    by_voucher = [r for r in records if r.tid == line.tid and not r.rrn and r.stan and r.stan == line.voucher
                  and (not r.batch or not line.batch or r.batch == line.batch)]
    if by_voucher:
        return by_voucher[0]
    return next((r for r in records if r.tid == line.tid and not r.rrn and r.auth_code == line.auth_code
                 and r.amount == line.amount), None)


#: A journal status as the merchant reads it (the terminal's word for the sale).
STATUS_WORDS = {"unknown": N_("unknown (timed out)"), "failed": N_("failed"), "declined": N_("declined"),
                "approved": N_("approved"), "reversed": N_("reversed")}


def _where(line: StatementLine) -> Words:
    return (N_("terminal {tid}, RRN {rrn}, auth code {auth}, card {card}, {at}"),
            {"tid": line.tid, "rrn": line.rrn, "auth": line.auth_code or "-", "card": line.card or "-",
             "at": f"{line.at:%Y-%m-%d %H:%M:%S}"})


def _charged_without_sale(line: StatementLine, others: list[MerchantRecord]) -> Difference:
    seen = next((r for r in others if r.tid == line.tid and r.amount == line.amount
                 and (r.at is None or r.at.date() == line.at.date())), None)
    if line.card in WALLETS:
        return _wallet_charged_without_sale(line, seen)
    values: dict[str, Any] = {"amount": line.amount, "where": _where(line)}
    what = N_("Charged without a sale: the statement settles {amount} ({where}) and you have no approved sale for it.")
    if seen:
        what = N_("Charged without a sale: the statement settles {amount} ({where}) and you have no approved sale "
                  "for it. Your terminal shows a sale of {seen} as {status} (voucher no. {stan}): the customer was "
                  "told it failed, but the money was taken.")
        values |= {"seen": seen.amount, "status": (STATUS_WORDS.get(seen.status, seen.status), {}), "stan": seen.stan}
    return Difference(
        "charged_without_sale", line.tid, line.rrn, line.amount, ZERO, (what, values),
        (N_("ask the acquirer for error handling (差错处理) of RRN {rrn} on terminal {tid}; do not pay the customer "
            "back yourself. The acquirer refunds the card and the statement of the day it does so (the T+2 statement "
            "when you ask today) shows the refund as an adjustment of -{amount}, with the fee {fee} given back. "
            "(In possim: possim acquirer-errors --ledger LEDGER --rrn {rrn})"),
         {"rrn": line.rrn, "tid": line.tid, "amount": line.amount, "fee": line.fee}))


#: The ``card`` column of a wallet bill's line (:func:`possim.money.statement.wallet_lines`).
WALLETS = frozenset({"alipay", "wechat"})


#: A wallet payment the terminal gave back, as the journal records it (``MerchantRecord.returned``).
RETURNED_WORDS = {"cancel": N_("cancelled (撤销)"), "refund": N_("refunded")}


def _wallet_where(line: StatementLine) -> Words:
    """Where a wallet line is: the order number the merchant's records know, the wallet's trade number."""
    return (N_("terminal {tid}, order no. {order}, trade no. {trade_no}, {wallet}, {at}"),
            {"tid": line.tid, "order": line.rrn, "trade_no": line.auth_code or "-",
             "wallet": (WALLET_NAMES.get(line.card, line.card), {}), "at": f"{line.at:%Y-%m-%d %H:%M:%S}"})


def _wallet_charged_without_sale(line: StatementLine, seen: MerchantRecord | None) -> Difference:
    """A wallet charge the merchant's records do not have as approved: the order number finds it."""
    values: dict[str, Any] = {"amount": line.amount, "where": _wallet_where(line)}
    if seen is not None and seen.returned:
        return _refund_under_way(line, seen, values)
    what = N_("Charged without a sale: the statement settles {amount} ({where}) and you have no approved sale for it.")
    if seen is not None:
        what = N_("Charged without a sale: the statement settles {amount} ({where}) and you have no approved sale "
                  "for it. Your terminal shows a sale of {seen} as {status} (order no. {order}): the customer was "
                  "told it failed, but the money was taken.")
        values |= {"seen": seen.amount, "status": (STATUS_WORDS.get(seen.status, seen.status), {}),
                   "order": seen.stan}
    return Difference(
        "charged_without_sale", line.tid, line.rrn, line.amount, ZERO, (what, values),
        (N_("a wallet payment (QR): look order {order} up in the merchant app or the wallet's bill (trade no. "
            "{trade_no}); the customer paid. Hand over the goods if the customer is still there, else cancel "
            "(撤销) or refund the order by its order number through the QR gateway; never charge the customer "
            "again. The wallet returns the money to the customer's wallet (the provider's rule: at once to the "
            "balance, up to a few working days to a bank card), and the fee {fee} is given back."),
         {"order": line.rrn, "trade_no": line.auth_code or "-", "fee": line.fee}))


def _refund_under_way(line: StatementLine, seen: MerchantRecord, values: dict[str, Any]) -> Difference:
    """A wallet charge the terminal already gave back after the statement's cut-off (a cancel that
    crossed midnight): the wallet's bill of the day it did so takes the money back as an adjustment."""
    day = line.at.date() + timedelta(days=1)
    if seen.returned_at is not None and seen.returned_at.date() > day:
        day = seen.returned_at.date()
    values |= {"seen": seen.amount, "status": (RETURNED_WORDS[seen.returned], {}), "order": seen.stan}
    return Difference(
        "refund_under_way", line.tid, line.rrn, line.amount, ZERO,
        (N_("Refund under way: the statement settles {amount} ({where}); your terminal shows order {order} of "
            "{seen} as {status} after this statement's cut-off, so the money is already on its way back to the "
            "customer's wallet."), values),
        (N_("nothing to do. The statement of {day} shows the refund as an adjustment of -{amount}, with the fee "
            "{fee} given back."), {"day": day.isoformat(), "amount": line.amount, "fee": line.fee}))


def _missing(record: MerchantRecord) -> Difference:
    when = f", {record.at:%Y-%m-%d %H:%M:%S}" if record.at else ""
    return Difference(
        "missing_from_statement", record.tid, record.rrn, ZERO, record.amount,
        (N_("Sale missing from the statement: your records show {amount} approved (terminal {tid}, RRN {rrn}, auth "
            "code {auth}{when}) and the statement has no such sale."),
         {"amount": record.amount, "tid": record.tid, "rrn": record.rrn or "-", "auth": record.auth_code or "-",
          "when": when}),
        (N_("check the slip (approved, right day, right terminal). The acquirer may not have received the sale: a "
            "completion advice (0220) or the settlement batch upload (0320) may still bring it, on a later "
            "statement; if it does not, ask the acquirer with the slip: you handed over goods for money not "
            "settled."), {}))


def _compare(line: StatementLine, record: MerchantRecord) -> Difference | None:
    if line.amount != record.amount:
        return Difference(
            "amount_differs", line.tid, line.rrn, line.amount, record.amount,
            (N_("Amount differs: the statement settles {amount} and your slip says {slip} ({where})."),
             {"amount": line.amount, "slip": record.amount, "where": _where(line)}),
            (N_("check the slip; if it is right, ask the acquirer for error handling (差错处理) with the slip: the "
                "difference of {difference} is adjusted on a later statement."),
             {"difference": line.amount - record.amount}))
    if record.auth_code and line.auth_code != record.auth_code:
        return Difference(
            "auth_code_differs", line.tid, line.rrn, line.amount, record.amount,
            (N_("Authorization code differs: the statement has {statement} and your slip {slip} ({where})."),
             {"statement": line.auth_code or "-", "slip": record.auth_code, "where": _where(line)}),
            (N_("check the slip against the terminal's journal; if both say so, ask the acquirer which sale the RRN "
                "is."), {}))
    return None


def _count(n: int, one: str, many: str) -> Words:
    return (one if n == 1 else many, {"n": n})


def _add_wallet(terminal: dict[Key, Any], host: dict[Key, tuple[int, int]], journal: sqlite3.Connection,
                ledger: sqlite3.Connection) -> None:
    """Wallet payments join the batch and the settlement: the terminal's approved QR sales, the
    wallet's net charges per order, keyed (terminal id, order number, "QR"), priced at the QR rate."""
    tables = {name for (name,) in journal.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "wallet_journal" in tables:
        for tid, order, txn, status, amount in journal.execute(
                "SELECT tid, out_trade_no, txn_id, status, amount FROM wallet_journal ORDER BY txn_id"):
            terminal[(tid, order, QR)] = (txn, status, "purchase", amount, amount, "qr_wallet")
    for (tid, order), net in wallet_money(ledger).items():
        host[(tid, order, QR)] = (net, 0)
