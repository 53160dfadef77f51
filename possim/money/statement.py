"""The merchant's T+1 statement: what the acquirer settled for the merchant on one business day.

The acquirer writes it from its ledger's ``entries`` (the book of record) and nothing else:
the merchant's own records are compared with it afterwards (:func:`possim.judging.reconcile.check_statement`).
One line per settled sale, priced with the merchant's fees (:mod:`possim.money.fees`), and one line
per adjustment booked that day on a sale of an earlier day: a reversal that arrived after
the cut-off, or a refund of the acquirer's error handling (差错处理). A sale and its reversal
on the same day cancel out and are not listed, as on a real statement.

Columns (CSV): ``date_time, terminal, batch, voucher, rrn, auth_code, card, amount, fee, net,
adjustments, description``; ``batch`` (批次号) and ``voucher`` (凭证号, the sale's STAN) are what
the slip prints, so a merchant finds the slip of a line. The batch is the one the sale was in (CUP
field 60.2): the batch its batch end settled it in (ledger ``settled``), else the batch its own
message named; an ISO sale, which names none, is in ``000001``. Under ``--lang zh`` the header and the
descriptions are in Chinese (:meth:`Statement.csv` with a translator); :func:`read` reads both.
For a sale, ``amount`` is the settled amount, ``fee`` the merchant discount fee
and ``net = amount - fee``. For an adjustment, ``amount`` is 0.00, ``adjustments`` the money
taken back from the merchant (negative) and ``fee`` the part of the sale's fee given back
(negative): the merchant's remedy for a charge without a sale returns the fee with the money.
``net = amount - fee + adjustments`` on every line.

Business days run from midnight to midnight in the acquirer's local time. Ledger times are
seconds since the run's epoch (the host's field 7 and RRN clock): the scenario's ``start`` for
simulated runs (default 2026-11-25 10:00:00, ``HostConfig.epoch``; ``possim statement`` of a
scenario, or of a ledger with ``--scenario``, uses it); a ledger of real processes needs its own epoch.
The acquirer knows a card's type from its BIN; possim's test cards have none, so the caller
says which card is which (``card_types``, from the scenario), credit by default.

Wallet payments (QR, 付款码) settle through the same acquirer and appear on the same statement
as the wallet's bill (the providers' 对账单): one line per order the wallet charged that day,
from ``wallet_entries`` (the gateway's book), priced at the QR rate (``qr_wallet``, 0.38%).
On a wallet line ``rrn`` is the merchant order number (what the merchant's records know the
payment by), ``auth_code`` the wallet's trade number (支付宝交易号 / 微信支付订单号) and ``card``
the wallet (``alipay`` / ``wechat``; 支付宝 / 微信支付 under ``--lang zh``, which :func:`read` takes
back). A charge cancelled (撤销) or refunded the same day nets
to nothing and is not listed; one refunded on a later day is an adjustment of that day.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from possim.acquirer_sim.config import HostConfig
from possim.i18n import N_, Tr
from possim.money.fees import FeeSchedule, Said, say
from possim.protocol import codec
from possim.protocol.errors import ProtocolError

#: The clock of simulated runs: ledger time 0 is this moment.
DEFAULT_EPOCH: datetime = HostConfig().epoch
COLUMNS = ("date_time", "terminal", "batch", "voucher", "rrn", "auth_code", "card", "amount", "fee", "net",
           "adjustments", "description")
#: The column names a Chinese statement prints (the catalogue's words for them).
LABELS = {"date_time": N_("date and time"), "terminal": N_("terminal id"), "batch": N_("batch no."),
          "voucher": N_("voucher no."), "rrn": N_("reference no."), "auth_code": N_("authorization code"),
          "card": N_("card number"), "amount": N_("amount"), "fee": N_("fee"), "net": N_("net"),
          "adjustments": N_("adjustments"), "description": N_("description")}
#: The wallets a wallet line's ``card`` column names, as people call them (catalogue entries).
WALLET_NAMES = {"alipay": N_("Alipay"), "wechat": N_("WeChat Pay")}
#: The console's line of totals, singular and plural by the number of sales (``Tr.plural``: ngettext).
SUMMARY = (N_("statement of {day} (issued {issued}): {sales} sale {amount}, fees {fees}, adjustments "
              "{adjustments}, net {net}"),
           N_("statement of {day} (issued {issued}): {sales} sales {amount}, fees {fees}, adjustments "
              "{adjustments}, net {net}"))
#: The batch number (批次号) of a sale whose batch the ledger does not know: an ISO sale (no batch on
#: the wire; a run is one business day, the terminal's first batch).
BATCH = "000001"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ZERO = Decimal("0.00")
_SIGN = {"debit": 1, "capture": 1, "credit": -1}  # a sale's own money; refunds are listed apart


class StatementError(ValueError):
    """A statement or slips file that cannot be read: one line for the user."""


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of the statement: a settled sale or an adjustment."""

    at: datetime
    tid: str
    rrn: str
    auth_code: str
    card: str
    amount: Decimal
    fee: Decimal
    net: Decimal
    adjustments: Decimal
    description: str
    voucher: str = ""
    batch: str = ""

    @property
    def is_sale(self) -> bool:
        return self.adjustments == ZERO

    def row(self, tr: Callable[..., str] | None = None) -> list[str]:
        """The CSV row; ``tr`` says the description in its language (English as written without it)."""
        card = tr(WALLET_NAMES[self.card]) if tr is not None and self.card in WALLET_NAMES else self.card
        return [self.at.strftime(TIME_FORMAT), self.tid, self.batch, self.voucher, self.rrn, self.auth_code,
                card, str(self.amount), str(self.fee), str(self.net), str(self.adjustments),
                say(self.description, tr) if tr is not None else self.description]


@dataclass
class Statement:
    """The statement of one business day (issued the next day: T+1)."""

    day: date
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def sales(self) -> list[StatementLine]:
        return [line for line in self.lines if line.is_sale]

    def total(self, column: str) -> Decimal:
        return sum((getattr(line, column) for line in self.lines), ZERO)

    def csv(self, tr: Tr | None = None) -> str:
        """The CSV; with a Chinese ``tr`` its header and descriptions are Chinese (column codes in English)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        chinese = tr is not None and tr.lang != "en"
        writer.writerow([tr(LABELS[c]) for c in COLUMNS] if chinese and tr is not None else COLUMNS)
        writer.writerows(line.row(tr if chinese else None) for line in self.lines)
        return out.getvalue()

    def summary(self, tr: Callable[..., str] | None = None) -> str:
        """One line of totals for the console, in ``tr``'s language (an ``i18n.Tr``; English without one)."""
        one, many = SUMMARY
        money: Callable[[Decimal], object] = tr.money if isinstance(tr, Tr) else (lambda x: x)
        values = {"day": self.day, "issued": self.day + timedelta(days=1), "sales": len(self.sales),
                  "amount": money(self.total("amount")), "fees": money(self.total("fee")),
                  "adjustments": money(self.total("adjustments")), "net": money(self.total("net"))}
        if isinstance(tr, Tr):
            return tr.plural(one, many, len(self.sales), **values)
        text = one if len(self.sales) == 1 else many  # English: "1 sale", "0 sales", "2 sales"
        return tr(text, **values) if tr is not None else text.format(**values)

    def as_dict(self) -> dict[str, Any]:
        """The statement as data: its day, the day it is issued, the totals and every line by column."""
        return {"day": str(self.day), "issued": str(self.day + timedelta(days=1)), "sales": len(self.sales),
                "totals": {c: str(self.total(c)) for c in ("amount", "fee", "net", "adjustments")},
                "lines": [dict(zip(COLUMNS, line.row(), strict=True)) for line in self.lines]}


def seconds(day: date, epoch: datetime = DEFAULT_EPOCH) -> tuple[float, float]:
    """Ledger time of the start and the end of a business day."""
    start = datetime.combine(day, time()) - epoch
    return start.total_seconds(), (start + timedelta(days=1)).total_seconds()


def moment(at: float, epoch: datetime = DEFAULT_EPOCH) -> datetime:
    """The local date and time of a ledger (or journal) time, to the second."""
    return (epoch + timedelta(seconds=at)).replace(microsecond=0)


def business_days(ledger: sqlite3.Connection, epoch: datetime = DEFAULT_EPOCH) -> list[date]:
    """The days on which the ledger booked money (debits, captures, credits, refunds), oldest first."""
    rows = ledger.execute("SELECT at FROM entries WHERE kind IN ('debit', 'capture', 'credit', 'refund')")
    days = {moment(at, epoch).date() for (at,) in rows}
    if _has_wallet(ledger):
        days |= {moment(at, epoch).date() for (at,) in ledger.execute("SELECT at FROM wallet_entries")}
    return sorted(days)


def _has_wallet(ledger: sqlite3.Connection) -> bool:
    """Whether the ledger database holds the wallet gateway's tables (a card-only ledger does not)."""
    return ledger.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wallet_entries'"
                          ).fetchone() is not None


def mask(pan: str) -> str:
    """The card number as slips and statements print it: first 6, last 4."""
    return pan[:6] + "*" * max(len(pan) - 10, 0) + pan[-4:] if len(pan) > 10 else pan


def build(ledger: sqlite3.Connection, day: date, fees: FeeSchedule, card_types: Mapping[str, str] | None = None,
          epoch: datetime = DEFAULT_EPOCH, tids: Iterable[str] | None = None) -> Statement:
    """The statement of ``day`` from the ledger: sales settled that day and adjustments booked that day."""
    start, end = seconds(day, epoch)
    wanted = set(tids) if tids is not None else None
    prior: dict[tuple[str, str, str], int] = {}
    first: dict[tuple[str, str, str], float] = {}
    today: dict[tuple[str, str, str], list[tuple[float, str, int]]] = {}
    facts: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for at, tid, stan, tx, pan, kind, amount, rrn, auth in ledger.execute(
            "SELECT e.at, e.tid, e.stan, e.transmission, e.pan, e.kind, e.amount, COALESCE(e.rrn, o.rrn, ''), "
            "COALESCE(o.auth_code, '') FROM entries e LEFT JOIN originals o "
            "ON o.tid = e.tid AND o.stan = e.stan AND o.transmission = e.transmission "
            "WHERE e.at < ? ORDER BY e.id", (end,)):
        key = (tid, stan, tx)
        if wanted is not None and tid not in wanted:
            continue
        facts[key] = (pan, rrn, auth)
        if kind in _SIGN:
            first.setdefault(key, at)
        if at < start:
            prior[key] = prior.get(key, 0) + _SIGN.get(kind, -1 if kind == "refund" else 0) * amount
        else:
            today.setdefault(key, []).append((at, kind, amount))
    types = card_types or {}
    batches = settled_batches(ledger)
    statement = Statement(day)
    for key, moves in today.items():
        pan, rrn, auth = facts[key]
        pricing = _Pricing(fees, types.get(pan, "credit"), prior.get(key, 0))
        sale_date = moment(first.get(key, moves[0][0]), epoch).date()
        lines = pricing.lines(moves, key[0], rrn, auth, mask(pan), sale_date, epoch)
        batch = batches.get(key) or _batch_of(ledger, key)
        statement.lines.extend(replace(line, voucher=key[1], batch=batch) for line in lines)
    if _has_wallet(ledger):
        statement.lines.extend(wallet_lines(ledger, day, fees, epoch, wanted))
    statement.lines.sort(key=lambda line: (line.at, line.tid, line.rrn))
    return statement


def settled_batches(ledger: sqlite3.Connection) -> dict[tuple[str, str, str], str]:
    """The batch (CUP 60.2) each sale was settled in, by key: what the batch ends closed (ledger
    ``settled``; a ledger from before batch ends has none)."""
    if ledger.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settled'").fetchone() is None:
        return {}
    return {(tid, stan, tx): batch for tid, stan, tx, batch in
            ledger.execute("SELECT tid, stan, transmission, batch FROM settled") if batch}


def _batch_of(ledger: sqlite3.Connection, key: tuple[str, str, str]) -> str:
    """A sale not settled yet: the batch its own message named (60.2 of the answer the ledger keeps,
    which echoes the request's); ``BATCH`` when it named none (ISO) or the ledger kept no answer."""
    row = ledger.execute("SELECT response FROM originals WHERE tid = ? AND stan = ? AND transmission = ?",
                         key).fetchone()
    if row is None or not row[0]:
        return BATCH
    try:
        return codec.decode(bytes(row[0])).batch or BATCH
    except ProtocolError:
        return BATCH


@dataclass
class _Pricing:
    """The money of one key through one day: its fee follows the net amount the merchant keeps."""

    fees: FeeSchedule
    instrument: str
    base: int  # minor units settled for the key before this line

    def fee(self, minor: int) -> Decimal:
        return self.fees.fee(money(max(minor, 0)), self.instrument)[0]

    def lines(self, moves: list[tuple[float, str, int]], tid: str, rrn: str, auth: str, card: str,
              sale_date: date, epoch: datetime) -> list[StatementLine]:
        out: list[StatementLine] = []
        own = [(at, _SIGN[kind] * amount) for at, kind, amount in moves if kind in _SIGN]
        change = sum(amount for _, amount in own)
        if own and self.base == 0 and change > 0:
            fee, rule = self.fees.fee(money(change), self.instrument)
            amount = money(change)
            out.append(StatementLine(moment(own[0][0], epoch), tid, rrn, auth, card, amount, fee, amount - fee, ZERO,
                                     Said(N_("sale: {rule}"), rule=rule)))
            self.base = change
        elif own and change:
            out.append(self._adjust(own[-1][0], change, tid, rrn, auth, card, epoch,
                                    Said(N_("reversal after the cut-off of the sale of {day}, fee returned"),
                                         day=sale_date)))
        why = Said(N_("refund by error handling (差错处理) of the sale of {day}, fee returned"), day=sale_date)
        out.extend(self._adjust(at, -minor, tid, rrn, auth, card, epoch, why)
                   for at, kind, minor in moves if kind == "refund")
        return out

    def _adjust(self, at: float, change: int, tid: str, rrn: str, auth: str, card: str, epoch: datetime,
                why: str) -> StatementLine:
        fee = self.fee(self.base + change) - self.fee(self.base)
        self.base += change
        return StatementLine(moment(at, epoch), tid, rrn, auth, card, ZERO, fee, -fee + money(change),
                             money(change), why)


def wallet_lines(ledger: sqlite3.Connection, day: date, fees: FeeSchedule, epoch: datetime = DEFAULT_EPOCH,
                 tids: set[str] | None = None) -> list[StatementLine]:
    """The wallet's bill of ``day``: per order, what the wallet charged (a sale line) or gave back
    for a charge of an earlier day (an adjustment), from ``wallet_entries``."""
    start, end = seconds(day, epoch)
    prior: dict[tuple[str, str], int] = {}
    today: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    first: dict[tuple[str, str], float] = {}
    for at, tid, order, kind, amount in ledger.execute(
            "SELECT at, tid, out_trade_no, kind, amount FROM wallet_entries WHERE at < ? ORDER BY id", (end,)):
        if tids is not None and tid not in tids:
            continue
        key = (tid, order)
        first.setdefault(key, at)
        move = ("debit" if kind == "charge" else "credit", amount)
        if at < start:
            prior[key] = prior.get(key, 0) + _SIGN[move[0]] * amount
        else:
            today.setdefault(key, []).append((at, *move))
    lines: list[StatementLine] = []
    for key, moves in today.items():
        provider, trade_no = ledger.execute("SELECT provider, COALESCE(trade_no, '') FROM wallet_trades "
                                            "WHERE tid = ? AND out_trade_no = ?", key).fetchone() or ("", "")
        pricing = _Pricing(fees, "qr_wallet", prior.get(key, 0))
        name = _Name(provider, WALLET_NAMES[provider]) if provider in WALLET_NAMES else provider
        sale_date = moment(first[key], epoch).date()
        for line in pricing.lines(moves, key[0], key[1], trade_no, provider, sale_date, epoch):
            why = (Said(N_("wallet bill ({provider}): trade no. {trade_no}, {rule}"), provider=name,
                        trade_no=trade_no, rule=line.description) if line.is_sale else
                   Said(N_("wallet bill ({provider}): trade no. {trade_no}, refunded to the wallet (cancel 撤销 or "
                           "refund) after the cut-off of the sale of {day}, fee returned"), provider=name,
                        trade_no=trade_no, day=sale_date.isoformat()))
            lines.append(dataclasses.replace(line, description=why))
    return lines


class _Name(Said):
    """A code the English CSV keeps (``alipay``) that a view in another language says by its name (支付宝)."""

    def __new__(cls, code: str, name: str) -> _Name:
        self = str.__new__(cls, code)
        self.template, self.values, self.words = name, {}, frozenset()
        return self


def read(path: str | Path) -> list[StatementLine]:
    """A statement CSV as written by :meth:`Statement.csv`; :class:`StatementError` for anything else."""
    rows = read_rows(path, ("date_time", "terminal", "rrn", "amount"))
    lines = []
    for number, row in enumerate(rows, start=2):
        try:
            amount, fee = parse_money(row.get("amount", "0")), parse_money(row.get("fee") or "0")
            adjustments = parse_money(row.get("adjustments") or "0")
            net = parse_money(row["net"]) if row.get("net") else amount - fee + adjustments
            lines.append(StatementLine(datetime.strptime(row["date_time"], TIME_FORMAT), row["terminal"],
                                       row["rrn"], row.get("auth_code", ""), _card(row.get("card", "")), amount,
                                       fee, net, adjustments, row.get("description", ""), row.get("voucher", ""),
                                       row.get("batch", "")))
        except ValueError as exc:
            raise StatementError(line_error(path, number, exc)) from None
    return lines


def read_rows(path: str | Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header naming at least ``required``."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError(Said(N_("{path}: not a text file"), path=str(path))) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [_CODES.get(name.strip(), name.strip()) for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise StatementError(Said(N_("{path}: not a CSV with the columns {columns} (missing {missing})"),
                                  path=str(path), columns=_Columns(required), missing=_Columns(missing)))
    reader.fieldnames = header
    return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


class _Columns(Said):
    """Column codes as English names them (``date_time, rrn``); another language says each by its
    statement label with the code beside it (``交易时间 (date_time)、参考号 (rrn)``)."""

    codes: tuple[str, ...]

    def __new__(cls, codes: Iterable[str]) -> _Columns:
        names = tuple(codes)
        self = str.__new__(cls, ", ".join(names))
        self.template, self.values, self.words, self.codes = ", ".join(names), {}, frozenset(), names
        return self

    def say(self, tr: Callable[..., str]) -> str:
        return "、".join(f"{tr(LABELS[c])} ({c})" if c in LABELS else c for c in self.codes)


def _chinese_codes() -> dict[str, str]:
    """A Chinese statement's column names -> the column codes, so :func:`read` takes either."""
    tr = Tr("zh")
    return {tr(label): code for code, label in LABELS.items()}


_CODES = _chinese_codes()
#: A Chinese statement's wallet names -> the codes (支付宝 -> alipay), so a wallet line reads back as one.
_WALLET_CODES = {Tr("zh")(name): code for code, name in WALLET_NAMES.items()}


def _card(text: str) -> str:
    """The ``card`` column as the English CSV writes it: a wallet's Chinese name becomes its code."""
    return _WALLET_CODES.get(text, text)


def line_error(path: str | Path, number: int, exc: ValueError) -> Said:
    """``FILE: line N: what is wrong`` (the message translatable when ``exc`` carries a ``Said``)."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return Said(N_("{path}: line {number}: {error}"), path=str(path), number=number,
                error=first if isinstance(first, Said) else str(exc))


def parse_money(text: str) -> Decimal:
    """'25.00' or '-25.00' -> Decimal, to the cent; ValueError for anything else."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError(Said(N_("not an amount: {text}"), text=repr(text))) from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError(Said(N_("not an amount to the cent: {text}"), text=repr(text)))
    return value.quantize(Decimal("0.01"))


def money(minor: int) -> Decimal:
    """Minor units (cents, fen) as an amount."""
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))
