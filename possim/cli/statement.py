"""The merchant's side of the money: ``statement``, ``acquirer-errors`` and ``reconcile --statement``.

- ``possim statement SOURCE`` writes the acquirer's T+1 statement (CSV) of a ledger file or
  of a scenario run (whose ledger and journal it can keep with ``--ledger-out``/``--journal-out``);
- ``possim acquirer-errors --ledger L`` is the acquirer's error-handling run (差错处理): the
  cases named (``--key``, ``--rrn``, a journal's escalated rows) and those already in the
  ledger are refunded, and the statement of the run's day shows the refunds;
- ``possim reconcile RECORDS --statement FILE`` compares a statement with the merchant's
  records (a terminal journal, or sales slips as CSV) and says what to do about each difference.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path

import click

from possim.acquirer_sim import errors_handling as eh
from possim.acquirer_sim.ledger import Key, Ledger, read_ledger
from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.i18n import N_, Tr
from possim.judging.reconcile import MerchantRecord, check_statement, journal_records, slip_records
from possim.money import statement as st
from possim.money.fees import FeeSchedule, Said
from possim.pos_sim.journal import read_journal
from possim.protocol.storage import StoreError
from possim.scenario import Scenario, ScenarioError
from possim.simulation import simulate

#: When the acquirer's error-handling run books its refunds, unless told otherwise.
RUN_AT = time(9, 0)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(Said(N_("{text}: a date is YYYY-MM-DD"), text=repr(text))) from None


def _merchant(sc: Scenario | None) -> tuple[FeeSchedule, dict[str, str]]:
    """The merchant's fees and which test card is which type, from a scenario (standard and credit without)."""
    if sc is None:
        return FeeSchedule(), {}
    return sc.fee_schedule(), {t.pan: t.card_type for t in sc.model.transactions}


@click.command("statement")
@click.argument("source")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Business day of the statement (default: the latest "
              "day the ledger booked money).")
@click.option("--scenario", "scenario_name", help="For a ledger file: the scenario whose merchant (fee category, "
              "card types) the statement prices (default: a standard merchant, credit cards).")
@opt.policy("For a scenario: the recovery policy (default: the scenario's).")
@opt.seed("For a scenario: the RNG seed (default: the scenario's).")
@click.option("--ledger-out", type=click.Path(dir_okay=False), help="For a scenario: keep the run's ledger here.")
@click.option("--journal-out", type=click.Path(dir_okay=False), help="For a scenario: keep the run's journal here.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the CSV here (default: standard output).")
@opt.as_json("Print the statement (day, totals, every line) as one JSON object instead of the CSV.")
@opt.lang()
def statement_command(source: str, day: str | None, scenario_name: str | None, policy: str | None,
                      seed: int | None, ledger_out: str | None, journal_out: str | None, out: str | None,
                      as_json: bool, lang: str) -> None:
    """The acquirer's T+1 statement (CSV) of a ledger file or of a scenario run (a name or a .toml).

    With --lang zh the CSV's header and descriptions are Chinese (reconcile --statement reads
    either); --json keeps the English column names. The CSV goes to --out, else to standard
    output; with --json standard output carries the statement as JSON (and --out, when given, still gets the CSV)."""
    wanted = _day(day)
    inputs.writable(out, ledger_out, journal_out)
    is_ledger = Path(source).is_file() and not source.endswith(".toml")
    sc = inputs.scenario(scenario_name or source).in_market(lang) if (scenario_name or not is_ledger) else None
    if is_ledger:
        inputs.database(source, "entries", "ledger")
        statement = _build(source, wanted, sc)
    else:
        assert sc is not None
        inputs.fresh(ledger_out, journal_out)
        with tempfile.TemporaryDirectory(prefix="possim-statement-") as scratch:
            ledger_path = ledger_out or str(Path(scratch) / "ledger.db")
            with as_input_error(ScenarioError):  # a fleet scenario is refused in one line
                simulate(sc, policy, seed, ledger_path=ledger_path, journal_path=journal_out)
            statement = _build(ledger_path, wanted, sc)
    tr = Tr(lang, sc.model.terminal.currency if sc else "156" if lang == "zh" else "978")
    if out:
        Path(out).write_text(statement.csv(tr), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(statement.as_dict(), sort_keys=True, ensure_ascii=False))
        return
    if not out:
        click.echo(statement.csv(tr), nl=False)
    click.echo(statement.summary(tr), err=True)


def _build(ledger_path: str, wanted: date | None, sc: Scenario | None) -> st.Statement:
    fees, cards = _merchant(sc)
    with as_input_error(StoreError):
        conn = read_ledger(ledger_path)
    epoch = sc.model.start if sc is not None else st.DEFAULT_EPOCH  # the run's t = 0 (scenario key start)
    try:
        days = st.business_days(conn, epoch)
        if wanted is None and not days:
            raise InputError(Said(N_("{path}: the ledger booked no money: no statement to write"), path=ledger_path))
        return st.build(conn, wanted or days[-1], fees, cards, epoch)
    finally:
        conn.close()


@click.command("acquirer-errors")
@opt.ledger("The acquirer's SQLite ledger (changed: refunds are booked in it).", required=True)
@click.option("--key", "keys", multiple=True, metavar="TID,STAN,F7",
              help="A sale to hand to error handling: terminal id, STAN and field 7 of the original. Repeatable.")
@click.option("--rrn", "rrns", multiple=True, metavar="RRN",
              help="A sale to hand to error handling by its RRN, as on the statement. Repeatable.")
@opt.journal("A terminal journal: its escalated reversals (reversal failed for good) become cases.")
@click.option("--on", "on_day", metavar="YYYY-MM-DD",
              help="Day of the run, refunds booked at 09:00 (default: the day after the ledger's latest day).")
@click.option("--scenario", "scenario_name", help="The scenario the ledger was run with: its start is the ledger's "
              "clock, so days are its business days (default: 2026-11-25 10:00:00, as statement --scenario).")
@opt.as_json("Print the cases handled as one JSON object.")
@opt.lang()
def acquirer_errors_command(ledger_path: str, keys: tuple[str, ...], rrns: tuple[str, ...],
                            journal_path: str | None, on_day: str | None, scenario_name: str | None, as_json: bool,
                            lang: str) -> None:
    """The acquirer's error-handling run (差错处理): refund every escalated case; the day's statement shows it."""
    day = _day(on_day)
    epoch = _epoch(scenario_name)
    inputs.database(ledger_path, "entries", "ledger")
    escalated = _escalated(journal_path) if journal_path else []
    ledger = Ledger(ledger_path)
    try:
        cases = _cases(ledger, keys, rrns) + [(k, eh.REVERSAL_FAILED, "terminal") for k in escalated]
        days = st.business_days(ledger.conn, epoch)
        run_day = day or ((days[-1] if days else epoch.date()) + timedelta(days=1))
        now = (datetime.combine(run_day, RUN_AT) - epoch).total_seconds()
        for key, reason, source in cases:
            eh.escalate(ledger, now, key, reason, source)
        results = eh.run_error_handling(ledger, now)
    finally:
        ledger.close()
    _report(results, run_day, as_json, Tr(lang))


def _epoch(scenario_name: str | None) -> datetime:
    """The clock of a ledger or journal: time 0 is the start of the scenario it was run with (key ``start``)."""
    return inputs.scenario(scenario_name).model.start if scenario_name else st.DEFAULT_EPOCH


def _cases(ledger: Ledger, keys: tuple[str, ...], rrns: tuple[str, ...]) -> list[tuple[Key, str, str]]:
    """Every named sale, checked against the ledger before anything is written."""
    cases: list[tuple[Key, str, str]] = []
    for text in keys:
        parts = tuple(p.strip() for p in text.split(","))
        if len(parts) != 3 or ledger.find((parts[0], parts[1], parts[2])) is None:
            raise InputError(Said(N_("--key {text}: no such sale in the ledger (TID,STAN,F7 of the original)"),
                                   text=repr(text)))
        cases.append(((parts[0], parts[1], parts[2]), eh.MERCHANT_REQUEST, "merchant"))
    for rrn in rrns:
        key = eh.key_for_rrn(ledger, rrn)
        if key is None:
            raise InputError(Said(N_("--rrn {rrn}: no single sale with this RRN in the ledger"), rrn=repr(rrn)))
        cases.append((key, eh.MERCHANT_REQUEST, "merchant"))
    return cases


def _escalated(journal_path: str) -> list[Key]:
    """The journal's rows whose reversal the terminal gave up on (``reversal = 'escalated'``)."""
    with as_input_error(StoreError):
        conn = read_journal(journal_path)
    try:
        rows = conn.execute("SELECT tid, stan, transmission FROM journal WHERE reversal = 'escalated'").fetchall()
    finally:
        conn.close()
    return [(tid, stan, tx) for tid, stan, tx in rows]


#: What error handling did with a case, for people.
OUTCOMES = {"refunded": N_("refunded {amount} to the card"), "released": N_("released a hold of {amount}"),
            "nothing_to_refund": N_("nothing to refund (the money was already returned or never taken)")}


def _report(results: list[eh.CaseResult], run_day: date, as_json: bool, tr: Tr) -> None:
    if as_json:
        click.echo(json.dumps({"run_on": str(run_day), "cases": [
            {"tid": r.tid, "stan": r.stan, "rrn": r.rrn, "outcome": r.outcome, "amount": str(st.money(r.amount)),
             "reason": r.reason} for r in results]}, sort_keys=True))
        return
    if not results:
        click.echo(tr("error handling on {day}: no open case", day=run_day))
    for r in results:
        click.echo(tr("error handling on {day}: terminal {tid} STAN {stan} RRN {rrn} ({reason}): {what}", day=run_day,
                      tid=r.tid, stan=r.stan, rrn=r.rrn or "-", reason=_reason(r.reason, tr),
                      what=tr(OUTCOMES[r.outcome], amount=st.money(r.amount))))
    if any(r.outcome == "refunded" for r in results):
        click.echo(tr("the statement of {day} shows the refunds as adjustments", day=run_day), err=True)


def _reason(reason: str, tr: Tr) -> str:
    """``reversal_failed`` or ``reversal_failed:98`` (with the last field 39) in the reader's words."""
    code, colon, detail = reason.partition(":")
    return tr(code) + colon + detail


def reconcile_with_statement(records_source: str, statement_path: str, day: str | None, as_json: bool,
                             lang: str = "en", scenario_name: str | None = None) -> None:
    """``possim reconcile RECORDS --statement FILE``: exit 0 when they agree, 1 when they differ.

    A journal's times count from the start of the scenario it was run with (``scenario_name``)."""
    wanted = _day(day)
    epoch = _epoch(scenario_name)
    with as_input_error(st.StatementError, StoreError):
        lines = st.read(statement_path)
        records = _records(records_source, epoch)
    check = check_statement(lines, records, [wanted] if wanted else None)
    if as_json:
        click.echo(json.dumps(check.as_dict(), sort_keys=True, ensure_ascii=False))
    else:
        for line in check.text(Tr(lang)):
            click.echo(line)
    sys.exit(0 if check.agrees else 1)


def _records(source: str, epoch: datetime) -> list[MerchantRecord]:
    if source.endswith(".csv"):
        return slip_records(source)
    conn = read_journal(source)
    try:
        return journal_records(conn, epoch)
    finally:
        conn.close()
