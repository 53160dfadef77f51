"""The checker: judges a finished run from recorded facts only.

It reads SQLite databases, the terminal journals and the host ledger, and nothing else:
no terminal object, no host object, no recovery code. Money is judged from the ledger's
``entries`` (the book of record), what the customer was told from the journals.

Many terminals may share one ledger. The checker judges the terminals whose journals it
is given (the terminal ids in their rows and in their ``terminals`` table) and only the
ledger keys of those terminals; keys of other terminals are not its business unless it
is asked to judge the whole ledger, and then they are listed apart
(:attr:`Verdict.unjournaled`), never counted as damage of the judged terminals. A ledger
that holds one run's money only (a one-process simulation's, ``own_ledger``) has no other
terminals: money under a terminal id no journal names (a forged terminal's, say) is judged
as an orphaned debit, since no screen said approved for it.

Definitions (per transaction key = terminal id, STAN, transmission time):
- orphaned debit: the host holds money (net debit or capture) but the terminal did not
  approve; also ledger money for a key of a judged terminal that no journaled sale owns.
- double debit: one purchase intent (the basket the customer pays for, kept across a
  customer's retry) charged under more than one key, or one key charged more than once.
- phantom approval: the terminal approved, the host holds neither money nor a hold for
  that sale. This includes an approval whose key the ledger booked for a different sale
  (another card or amount; the time is field 7, part of the key) or for a sale another
  journal row already owns: a terminal that repeated a key was answered from the ledger's
  memory of someone else's sale.
- pending reversal: a reversal the terminal still owes the host.
- escalated (CUP profile): a reversal whose tries ran out and that the terminal handed to the
  acquirer ("reversal failed, contact the acquirer"). Its own measure, not damage the terminal
  hid: the money stays with the acquirer until its error handling refunds it, so it is neither
  an orphaned debit nor a pending reversal (the customer's loss still shows until the refund).
- open hold: an authorization hold neither captured nor released (or a wallet order the
  customer may still pay). Its money is money at risk: ``money_on_hold`` sums it.
- recovered by settlement: sales the host got only in a settlement's batch upload (0320), e.g.
  a completion advice lost every time online and captured then. Shown only when above zero.
- customer loss: per intent, what was charged beyond what the customer agreed to pay.
- merchant loss: goods handed over on phantom approvals.
- money on hold: what open holds keep blocked on customers' cards (and open wallet orders may
  still take): neither a loss nor settled.

Each journal is one life of a terminal: a terminal restarted on a fresh journal, or a scenario
run twice under one terminal id, numbers its baskets from 1 again. Baskets (intents) are
therefore judged within the journal that names them, never across journals; ledger money
goes to the life whose request it answers, by its key (STAN and field 7) and the booked card
and amount.

A life whose journal is lost: a terminal restarted without its journal signs on with a new life
(``docs/architecture.md``, "Terminal lives"); the ledger knows which life booked each key
(``key_lives``) and whether the key's answer was handed to the transport (``deliveries``).
Ledger money of a judged terminal under a key of a life none of the given journals holds is
named apart (:attr:`Verdict.lost_journal`): answer delivered, the till saw the approval and the
sale was completed there, only its journal is gone (not at risk, no damage); answer never handed
over (no route to the terminal, lost, or the host fell before answering), the customer was charged
while the till never knew: really at risk, an orphaned debit and customer loss as before.

The money of a key belongs to one journal row: the first whose card and amount match the
sale the ledger booked under that key (the first row with the key when the ledger has no
booking). Every other row with that key is judged as if the host held nothing for it.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from possim.money.money import format_amount
from possim.protocol.storage import SIDECARS, StoreError, open_for_reading

Key = tuple[str, str, str]

#: Counts of damage: any of them above zero is a finding.
DAMAGE = ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds")
#: Every measure of the summary, in the order views show them.
MEASURES = ("transactions", "approved", "declined", "failed", "unknown", "reversed", *DAMAGE, "late_responses",
            "customer_loss", "merchant_loss")
#: Measures a summary holds only when they happened (CUP profile): runs without them keep the
#: summaries they always had, and an ``[expect]`` of one that is absent reads 0.
OPTIONAL = ("escalated", "recovered_by_settlement", "money_on_hold")
#: Measures that are money (decimal strings in a summary).
MONEY = ("customer_loss", "merchant_loss", "money_on_hold")


def shown_measures(summary: dict[str, Any]) -> tuple[str, ...]:
    """The measures a view lists for ``summary``: every fixed one, then the optional ones it holds."""
    return (*MEASURES[:-2], *(k for k in OPTIONAL if k in summary), *MEASURES[-2:])


def harmful(measure: str, value: object) -> bool:
    """Whether a summary value means someone was hurt: any damage count, any money lost."""
    if measure in MONEY:
        return value != "0.00"
    return measure in DAMAGE and bool(value)


@dataclass(frozen=True, slots=True)
class Finding:
    finding: str
    txn: int | None
    key: Key
    amount: int

    def as_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "txn": self.txn, "tid": self.key[0], "stan": self.key[1],
                "amount": format_amount(self.amount)}


@dataclass(frozen=True, slots=True)
class LostSale:
    """Ledger money of a terminal's life whose journal was not given: ``delivered`` says whether the
    host handed the sale's answer to the transport (the till saw it) or not (really at risk)."""

    key: Key
    life: str
    amount: int
    delivered: bool

    @property
    def judgement(self) -> str:
        return "completed" if self.delivered else "at_risk"

    def as_dict(self) -> dict[str, Any]:
        return {"tid": self.key[0], "stan": self.key[1], "transmission": self.key[2], "life": self.life,
                "amount": format_amount(self.amount), "delivered": self.delivered, "judgement": self.judgement}


def lost_journal_totals(sales: Sequence[LostSale]) -> dict[str, dict[str, Any]]:
    """Per judgement (``completed``, ``at_risk``): how many sales of lost journals and their money."""
    return {judgement: {"sales": sum(1 for s in sales if s.judgement == judgement),
                        "amount": format_amount(sum(s.amount for s in sales if s.judgement == judgement))}
            for judgement in ("completed", "at_risk")}


@dataclass(slots=True)
class Verdict:
    counts: dict[str, int]
    customer_loss: int
    merchant_loss: int
    findings: list[Finding] = field(default_factory=list)
    #: Ledger money of terminals without a journal (only when asked to judge the whole ledger).
    unjournaled: list[Finding] = field(default_factory=list)
    #: Per terminal id: its transaction and damage counts (keys of ``MEASURES`` without the money).
    per_terminal: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per terminal id: money at risk in minor units (charged without a sale, charged twice,
    #: goods given on a phantom approval, held and never released): what ranks the worst terminals.
    at_risk: dict[str, int] = field(default_factory=dict)
    #: Money blocked by open holds (and open wallet orders), in minor units: at risk, not yet lost.
    on_hold: int = 0
    #: Ledger money of judged terminals under keys of a life whose journal was not given.
    lost_journal: list[LostSale] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No money went wrong: no orphaned or double debit, no phantom approval."""
        return not any(self.counts[k] for k in ("orphaned_debits", "double_debits", "phantom_approvals"))

    @property
    def settled(self) -> bool:
        """Clean and nothing still owed (what ``possim check`` requires): no pending reversal, no open
        hold, and no money still lost or at risk; an escalated case whose money the acquirer's error
        handling has not yet refunded still shows as customer loss, so it is not settled either."""
        return not any(self.counts[k] for k in DAMAGE) and not (self.customer_loss or self.merchant_loss
                                                                 or self.on_hold)

    def summary(self) -> dict[str, Any]:
        counts = {k: v for k, v in self.counts.items() if v or k not in OPTIONAL}
        held = {"money_on_hold": format_amount(self.on_hold)} if self.on_hold else {}
        return {**counts, **held, "customer_loss": format_amount(self.customer_loss),
                "merchant_loss": format_amount(self.merchant_loss)}


#: One journal row as the checker reads it.
_Row = tuple[str, str, str, int, str, str, int, int, str, str, int, str]
#: The value of a per-key table (money, booking).
_V = TypeVar("_V")


def check(journals: sqlite3.Connection | Sequence[sqlite3.Connection],
          ledger: sqlite3.Connection | Sequence[sqlite3.Connection], *, whole_ledger: bool = False,
          own_ledger: bool = False) -> Verdict:
    """Compare the terminal journals with the host ledger after the run reached quiescence.

    ``journals`` is one journal connection or several (one per terminal process). ``ledger``
    is one ledger or the ledgers of host shards: shards own disjoint terminal ids, so their
    keys never overlap and their money is simply read together. With ``whole_ledger`` the
    ledger keys of terminals without a journal are listed in :attr:`Verdict.unjournaled`; with
    ``own_ledger`` (the ledger holds these journals' run only) they are judged as orphaned debits.
    """
    conns = [journals] if isinstance(journals, sqlite3.Connection) else list(journals)
    ledgers = [ledger] if isinstance(ledger, sqlite3.Connection) else list(ledger)
    tids = {tid for conn in conns for tid in _terminal_ids(conn)}
    judged = set() if own_ledger else tids  # empty: every key of the ledger is judged
    money = _booked_money(ledgers)
    journaled = {life for conn in conns for life in _journal_lives(conn)}
    key_lives = _merged([_key_lives(led) for led in ledgers])
    delivered = {key for led in ledgers for key in _delivered(led)}
    tally = _Tally()
    for life, conn in enumerate(conns):  # row by row, in journal order: nothing kept per row
        for row in _journal_cursor(conn):
            key = (row[0], row[1], row[2])
            tally.judge_row(row, _claim(money.get(key), row), life)
    for key, (charged, held, _, owned) in money.items():
        lost_life = key_lives.get(key)
        if tids and key[0] in tids and not owned and charged > 0 and lost_life is not None \
                and (key[0], lost_life) not in journaled:
            tally.judge_lost(LostSale(key, lost_life, charged, key in delivered), held)
        elif not judged or key[0] in judged:
            tally.judge_key(key, charged if not owned else 0, held)
        elif whole_ledger:
            tally.unjournaled.extend(_unjournaled(key, charged, held))
    _judge_wallet(tally, [(life, row) for life, conn in enumerate(conns) for row in _wallet_rows(conn)], ledgers,
                  judged, whole_ledger)
    tally.counts["recovered_by_settlement"] = sum(_recovered_by_settlement(led, tids) for led in ledgers)
    return tally.verdict()


#: What a terminal knows of its own sales from its journal alone (``outcomes``).
OUTCOMES = ("transactions", "approved", "declined", "failed", "unknown", "reversed", "pending_reversals",
            "late_responses")


def outcomes(journal: sqlite3.Connection) -> dict[str, int]:
    """A terminal's own outcomes, from its journal alone: no ledger, so no verdict on money.

    Why: a terminal process has no ledger to judge by; judged against none, every approval
    would read as a phantom. It reports what it told the cashier and what it still owes the
    host (pending reversals and cancels); ``escalated`` only when a case was handed on.
    """
    counts = dict.fromkeys((*OUTCOMES, "escalated"), 0)
    for row in _journal_cursor(journal):
        status, reversal, late = row[8], row[9], row[10]
        _outcome(counts, status, late, pending=reversal == "pending")
        counts["escalated"] += reversal == "escalated"
    for _tid, _txn, _intent, _order, _amount, status, cancel, late in _wallet_rows(journal):
        _outcome(counts, status, late, pending=cancel == "pending")
    if not counts["escalated"]:
        del counts["escalated"]
    return counts


def _outcome(counts: dict[str, int], status: str, late: int, *, pending: bool) -> None:
    counts["transactions"] += 1
    counts[status if status in OUTCOMES[1:6] else "unknown"] += 1
    counts["late_responses"] += late
    counts["pending_reversals"] += pending


def _merged(parts: list[dict[Key, _V]]) -> dict[Key, _V]:
    """The per-key tables of several ledgers as one (shards own disjoint keys); one table as it is."""
    if len(parts) == 1:
        return parts[0]
    return {key: value for part in parts for key, value in part.items()}


def _recovered_by_settlement(ledger: sqlite3.Connection, tids: set[str]) -> int:
    """Sales the host got only in a settlement's batch upload (a completion lost online, captured then)."""
    if "batch_uploads" not in _tables(ledger):  # a ledger written before settlement existed
        return 0
    rows = ledger.execute("SELECT tid FROM batch_uploads WHERE outcome = 'captured'").fetchall()
    return sum(1 for (tid,) in rows if not tids or tid in tids)


@dataclass(slots=True)
class _Tally:
    """The counts and findings of one check, filled row by row and key by key."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("transactions", "approved", "declined", "failed", "unknown", "reversed", "orphaned_debits",
         "double_debits", "phantom_approvals", "pending_reversals", "open_holds", "late_responses", "escalated",
         "recovered_by_settlement"), 0))
    findings: list[Finding] = field(default_factory=list)
    unjournaled: list[Finding] = field(default_factory=list)
    charged_by_intent: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    agreed_by_intent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    merchant_loss: int = 0
    on_hold: int = 0
    per_terminal: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    at_risk: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    tid_of_intent: dict[str, str] = field(default_factory=dict)
    lost_journal: list[LostSale] = field(default_factory=list)

    def judge_row(self, row: _Row, money: tuple[int, int], life: int = 0) -> None:
        """One journaled transaction against the money the ledger holds for its sale; ``life``: which
        journal it came from (baskets are numbered per journal)."""
        tid, stan, tx, txn_id, intent, kind, amount, completion, status, reversal, late, _ = row
        key, (charged, held) = (tid, stan, tx), money
        due = completion if kind == "auth" else amount
        self.counts["transactions"] += 1
        self.counts[status if status in self.counts else "unknown"] += 1
        self.counts["late_responses"] += late
        mine = self.per_terminal[tid]
        mine["transactions"] += 1
        mine[status if status in self.counts else "unknown"] += 1
        mine["late_responses"] += late
        intent = _basket(life, tid, intent)
        self.tid_of_intent[intent] = tid
        self.agreed_by_intent[intent] += due if status == "approved" else 0
        if charged:
            self.charged_by_intent[intent].append(charged)
        if reversal == "pending":
            self._find("pending_reversals", Finding("pending_reversal", txn_id, key, amount))
        if reversal == "escalated":
            self._find("escalated", Finding("escalated", txn_id, key, charged))
        elif charged and status != "approved":
            self._find("orphaned_debits", Finding("orphaned_debit", txn_id, key, charged))
        if status == "approved" and not charged and not held:
            self.merchant_loss += amount
            self.at_risk[tid] += amount
            self._find("phantom_approvals", Finding("phantom_approval", txn_id, key, amount))
        if charged > due:
            self._find("double_debits", Finding("double_debit", txn_id, key, charged))

    def judge_wallet_row(self, txn_id: int, intent: str, key: Key, amount: int, status: str, cancel: str,
                         late: int, charged: int) -> None:
        """One journaled wallet payment against the net money its order took from the wallet."""
        self.counts["transactions"] += 1
        self.counts[status if status in self.counts else "unknown"] += 1
        self.counts["late_responses"] += late
        self.agreed_by_intent[intent] += amount if status == "approved" else 0
        self.tid_of_intent[intent] = key[0]
        if charged:
            self.charged_by_intent[intent].append(charged)
        if cancel == "pending":
            self._find("pending_reversals", Finding("pending_cancel", txn_id, key, amount))
        if charged and status != "approved":
            self._find("orphaned_debits", Finding("orphaned_wallet_charge", txn_id, key, charged))
        if status == "approved" and not charged:
            self.merchant_loss += amount
            self._find("phantom_approvals", Finding("phantom_wallet_approval", txn_id, key, amount))
        if charged > amount:
            self._find("double_debits", Finding("double_wallet_charge", txn_id, key, charged))

    def judge_key(self, key: Key, unowned: int, held: int) -> None:
        """One ledger key of a judged terminal: money no journaled sale owns, a hold left open."""
        if unowned:
            self.charged_by_intent[f"unjournaled:{key}"].append(unowned)
            self.tid_of_intent[f"unjournaled:{key}"] = key[0]
            self._find("orphaned_debits", Finding("orphaned_debit", None, key, unowned))
        if held:
            self.at_risk[key[0]] += held
            self.on_hold += held
            self._find("open_holds", Finding("open_hold", None, key, held))

    def judge_lost(self, sale: LostSale, held: int) -> None:
        """Money under a key of a life whose journal is lost: a sale the till completed (its answer
        was delivered) is no damage; one whose answer never left is an orphaned debit, really at risk."""
        self.lost_journal.append(sale)
        self.judge_key(sale.key, 0 if sale.delivered else sale.amount, held)

    def verdict(self) -> Verdict:
        customer_loss = 0
        for intent, charges in self.charged_by_intent.items():
            tid = self.tid_of_intent[intent]
            if len(charges) > 1:
                self.counts["double_debits"] += len(charges) - 1
                self.per_terminal[tid]["double_debits"] += len(charges) - 1
            lost = max(0, sum(charges) - self.agreed_by_intent.get(intent, 0))
            customer_loss += lost
            if lost:
                self.at_risk[tid] += lost
        per_terminal = {tid: dict(counts) for tid, counts in self.per_terminal.items()}
        return Verdict(self.counts, customer_loss, self.merchant_loss, self.findings, self.unjournaled,
                       per_terminal, dict(self.at_risk), self.on_hold, self.lost_journal)

    def _find(self, count: str, finding: Finding) -> None:
        self.counts[count] += 1
        self.per_terminal[finding.key[0]][count] += 1
        self.findings.append(finding)


#: One wallet journal row as the checker reads it: tid, txn, intent, order, amount, status, cancel, late answers.
_WalletRow = tuple[str, int, str, str, int, str, str, int]
#: A wallet order's key in findings: terminal id, merchant order number, "QR".
QR = "QR"
#: Trade states of an order that is neither paid nor closed: the customer may still pay.
_OPEN_TRADES = ("USERPAYING", "NOTPAY")


def _basket(life: int, tid: str, intent: str) -> str:
    """A basket's name across journals: one till's, in one life of it (journal), since terminals
    number their baskets alike and a terminal on a fresh journal numbers them from 1 again."""
    return f"{life}:{tid}:{intent}"


def _judge_wallet(tally: _Tally, rows: list[tuple[int, _WalletRow]], ledgers: list[sqlite3.Connection], tids: set[str],
                  whole_ledger: bool) -> None:
    """Wallet payments against the wallet ledger, by the same rules as cards.

    Charged with no approved sale: orphaned debit. Approved with nothing charged: phantom
    approval. Charged under a basket already paid (by card or QR): double debit, through the
    intent. A cancel still owed: pending reversal. An order still open at the end (the
    customer may yet confirm): money in flight, counted with the open holds.
    """
    money = {key: value for ledger in ledgers for key, value in wallet_money(ledger).items()}
    owned: set[tuple[str, str]] = set()
    for life, row in rows:
        tid, txn_id, intent, order, amount, status, cancel, late = row
        key = (tid, order)
        owned.add(key)
        tally.judge_wallet_row(txn_id, _basket(life, tid, intent), (tid, order, QR), amount, status, cancel, late,
                               money.get(key, 0))
    for key, charged in money.items():
        if key in owned or not charged:
            continue
        if not tids or key[0] in tids:
            tally.judge_key((*key, QR), charged, 0)
        elif whole_ledger:
            tally.unjournaled.extend(_unjournaled((*key, QR), charged, 0))
    for tid, order, amount in (order for ledger in ledgers for order in _open_orders(ledger)):
        if not tids or tid in tids:
            tally.counts["open_holds"] += 1
            tally.on_hold += amount
            tally.findings.append(Finding("wallet_order_open", None, (tid, order, QR), amount))


def wallet_money(ledger: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Per wallet order (terminal id, order number): charges minus refunds, from the wallet entries."""
    if "wallet_entries" not in _tables(ledger):
        return {}
    rows = ledger.execute("SELECT tid, out_trade_no, SUM(CASE kind WHEN 'charge' THEN amount "
                          "WHEN 'refund' THEN -amount ELSE 0 END) FROM wallet_entries GROUP BY tid, out_trade_no")
    return {(tid, order): int(net) for tid, order, net in rows}


def _open_orders(ledger: sqlite3.Connection) -> list[tuple[str, str, int]]:
    if "wallet_trades" not in _tables(ledger):
        return []
    return ledger.execute("SELECT tid, out_trade_no, amount FROM wallet_trades WHERE state IN (?, ?) "
                          "ORDER BY tid, out_trade_no", _OPEN_TRADES).fetchall()


def _wallet_rows(journal: sqlite3.Connection) -> list[_WalletRow]:
    if "wallet_journal" not in _tables(journal):
        return []
    return journal.execute("SELECT tid, txn_id, intent, out_trade_no, amount, status, cancel, late_answers "
                           "FROM wallet_journal ORDER BY txn_id").fetchall()


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def ledger_money(ledger: sqlite3.Connection) -> dict[Key, tuple[int, int]]:
    """Per key: (net money taken from the customer, hold still open), from ledger entries.

    A ``refund`` (the acquirer's error handling) gives money back like a reversal's ``credit``.

    The one place the money of a key is summed: the checker and reconciliation both use it.
    """
    return {(tid, stan, tx): (charged, held) for tid, stan, tx, charged, held in _ledger_money_rows(ledger)}


def _ledger_money_rows(ledger: sqlite3.Connection) -> Iterator[tuple[str, str, str, int, int]]:
    """``ledger_money``'s rows one at a time: (tid, stan, transmission, net money, open hold)."""
    rows = ledger.execute(
        "SELECT tid, stan, transmission, "
        "SUM(CASE kind WHEN 'debit' THEN amount WHEN 'capture' THEN amount WHEN 'credit' THEN -amount "
        "WHEN 'refund' THEN -amount ELSE 0 END), "
        "SUM(CASE kind WHEN 'hold' THEN amount WHEN 'release' THEN -amount ELSE 0 END) "
        "FROM entries GROUP BY tid, stan, transmission")
    return ((tid, stan, tx, int(net), int(held)) for tid, stan, tx, net, held in rows)


def open_journals(folder: str | Path) -> list[sqlite3.Connection]:
    """Query-only connections to every journal file in ``folder`` (one per terminal), recovered first.

    The folder holds journals only: SQLite's own side files are skipped, hidden files too;
    any other file that is not a journal raises :class:`protocol.storage.StoreError`.
    """
    files = sorted(f for f in Path(folder).iterdir()
                   if f.is_file() and not f.name.startswith(".") and not f.name.endswith(SIDECARS))
    conns: list[sqlite3.Connection] = []
    try:
        conns.extend(open_for_reading(file, "journal", "journal") for file in files)
    except StoreError:
        for conn in conns:
            conn.close()
        raise
    return conns


def _journal_cursor(journal: sqlite3.Connection) -> Iterator[_Row]:
    """The journal's rows one at a time, in transaction order: a long run's rows are never all in memory."""
    rows: Iterator[_Row] = journal.execute(
        "SELECT tid, stan, transmission, txn_id, intent, kind, amount, completion_amount, status, "
        "reversal, late_responses, pan FROM journal ORDER BY txn_id")
    return rows


def _terminal_ids(journal: sqlite3.Connection) -> set[str]:
    """The terminals a journal speaks for: the ids in its rows and in its ``terminals`` table."""
    tables = {name for (name,) in journal.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    query = "SELECT DISTINCT tid FROM journal"
    if "terminals" in tables:
        query += " UNION SELECT tid FROM terminals"
    return {tid for (tid,) in journal.execute(query) if tid}


def _journal_lives(journal: sqlite3.Connection) -> set[tuple[str, str]]:
    """The (terminal id, life) a journal kept: the lives whose sales it holds (none before lives existed)."""
    if "lives" not in _tables(journal):
        return set()
    return {(str(tid), str(life)) for tid, life in journal.execute("SELECT tid, life FROM lives")}


def _key_lives(ledger: sqlite3.Connection) -> dict[Key, str]:
    """Per key: the life of the signed-on terminal that booked it (keys of terminals that never signed on: none)."""
    if "key_lives" not in _tables(ledger):
        return {}
    rows = ledger.execute("SELECT tid, stan, transmission, life FROM key_lives")
    return {(tid, stan, tx): str(life) for tid, stan, tx, life in rows}


def _delivered(ledger: sqlite3.Connection) -> set[Key]:
    """The keys whose answer the host handed to the transport (a ledger from before deliveries: none)."""
    if "deliveries" not in _tables(ledger):
        return set()
    rows = ledger.execute("SELECT tid, stan, transmission FROM deliveries WHERE delivered = 1")
    return {(tid, stan, tx) for tid, stan, tx in rows}


#: Per ledger key: net money, open hold, the booked (card, amount) until a row owns it, and whether one does.
_Money = list[Any]


def _booked_money(ledgers: list[sqlite3.Connection]) -> dict[Key, _Money]:
    """Per key of the ledgers: ``[charged, held, booking, owned]``, in ``ledger_money``'s order.

    Only keys with money need an owner: a row whose key has none is judged against nothing
    whether it owns the key or not. Repeated strings (terminal ids, cards) are kept once.
    """
    money: dict[Key, _Money] = {}
    same: dict[str, str] = {}
    for led in ledgers:
        for tid, stan, tx, charged, held in _ledger_money_rows(led):
            money[(same.setdefault(tid, tid), stan, tx)] = [charged, held, None, False]
    for led in ledgers:
        for tid, stan, tx, pan, amount in led.execute("SELECT tid, stan, transmission, pan, amount FROM originals"):
            entry = money.get((tid, stan, tx))
            if entry is not None:
                entry[2] = (same.setdefault(pan, pan), int(amount))
    return money


def _claim(entry: _Money | None, row: _Row) -> tuple[int, int]:
    """The money the ledger holds for ``row``'s sale: its key's, when ``row`` is the first row with that key
    whose card and amount match the sale the ledger booked under it (any first row when nothing was
    booked); nothing for every other row with the key."""
    if entry is None or entry[3]:
        return (0, 0)
    booked = entry[2]
    if booked is not None and booked != (row[11], row[6]):
        return (0, 0)
    entry[2], entry[3] = None, True
    return (entry[0], entry[1])


def _unjournaled(key: Key, charged: int, held: int) -> list[Finding]:
    """Money of a terminal the checker has no journal for: reported, never judged."""
    return ([Finding("unjournaled_debit", None, key, charged)] if charged else []) + \
        ([Finding("unjournaled_hold", None, key, held)] if held else [])
