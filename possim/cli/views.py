"""Commands that show and re-read results (list, demo, replay, reconcile), and the view files of a run."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape

from possim import i18n
from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.cli.screen import console, heading
from possim.judging.reconcile import Reconciliation
from possim.scenario import ScenarioError, from_dict, load
from possim.simulation import RunResult, simulate
from possim.views import console as show

F = TypeVar("F", bound=Callable[..., Any])
_SCENARIO_DIR_HELP = "Folder with the scenarios (default: the ones shipped with possim)."


#: ``--lang zh|en``, declared with the other shared options.
lang_option = opt.lang


def write_views(result: RunResult, report_path: str | None, mermaid_path: str | None, lang: str | None = None) -> None:
    """The HTML report and the Mermaid chart of one run, where asked for; each file written is named on stderr."""
    from possim.views.lesson import story, tr_for

    tr = tr_for(result, lang)
    if report_path:
        from possim.views.html_report import render

        Path(report_path).write_text(render([result], result.scenario.model.title, tr.lang), encoding="utf-8")
        click.echo(tr("report written to {path}", path=report_path), err=True)
    if mermaid_path:
        from possim.views.mermaid import to_mermaid

        title = tr("{title} (policy {policy})", title=story(result.scenario, tr.lang)[0],
                   policy=tr.policy(result.policy, show.wallet_only(result)))
        Path(mermaid_path).write_text(to_mermaid(result.trace.records, title, tr), encoding="utf-8")
        click.echo(tr("Mermaid chart written to {path}", path=mermaid_path), err=True)


def print_run(result: RunResult, failures: list[str], timeline: bool, lang: str | None = None) -> None:
    """A run on the console: the point first (headline, money, remedy), then the timeline and the verdict."""
    from possim.views.lesson import tr_for

    tr = tr_for(result, lang)
    con = console()
    heading(con, result.scenario, tr.lang)
    show.lesson(con, result, tr)
    if timeline:
        show.timeline(con, result, tr=tr)
    show.verdict(con, result, failures, tr)


def _folder(scenario_dir: str | None) -> Path:
    return Path(scenario_dir) if scenario_dir else inputs.shipped_folder()


@click.command("list")
@click.option("--scenarios", "scenario_dir", type=click.Path(file_okay=False), help=_SCENARIO_DIR_HELP)
@opt.as_json("Print the scenarios as one JSON object: name -> title, description, fleet (or the error).")
@lang_option()
def list_command(scenario_dir: str | None, as_json: bool, lang: str) -> None:
    """The shipped scenarios, by name, with what each teaches."""
    folder = _folder(scenario_dir)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise InputError(f"{folder}: no scenario files here")
    listed: dict[str, dict[str, Any]] = {}
    for path in files:
        try:
            sc = load(path)
        except ScenarioError as exc:
            listed[path.stem] = {"error": str(exc)}
            continue
        title, description = i18n.scenario_text(path.stem, sc.model.title, sc.model.description.strip(), lang)
        listed[path.stem] = {"title": title, "description": description, "fleet": sc.is_fleet}
    if as_json:
        click.echo(json.dumps(listed, sort_keys=True, ensure_ascii=False))
        return
    tr = i18n.Tr(lang)
    for name, entry in listed.items():
        title = entry.get("title") or tr("(invalid: {error})", error=entry["error"])
        click.echo(f"{name:<30} {title}")


@click.command()
@click.option("--pace", default=0.8, show_default=True, type=opt.FiniteFloatRange(0, 10),
              help="Seconds per event, so a trainer can talk over it.")
@click.option("--scenarios", "scenario_dir", type=click.Path(file_okay=False), help=_SCENARIO_DIR_HELP)
@lang_option()
def demo(pace: float, scenario_dir: str | None, lang: str) -> None:
    """A narrated walk through the key failure modes: lost response, slow host, lost reversal, customer retries,
    a QR payment given up while the customer was still paying. Ctrl-C ends it with the acts played (exit 130)."""
    from possim.cli.errors import ABORTED
    from possim.views.demo import run_demo

    folder = _folder(scenario_dir)
    if not (folder / "response-lost.toml").is_file():
        raise InputError(f"{folder}: no shipped scenarios here (use --scenarios DIR)")
    try:
        with as_input_error(ScenarioError):
            run_demo(console(), folder, pace, lang=lang)
    except KeyboardInterrupt:
        sys.exit(ABORTED)


@click.command("glossary")
@lang_option()
@opt.as_json("Print the terms as one JSON object: a list of english, chinese and meaning (in --lang).")
def glossary_command(lang: str, as_json: bool) -> None:
    """The payment terms in English and Chinese (单边账, 冲正, 查询...), with what each means."""
    from rich.table import Table

    from possim.views.glossary import rows

    if as_json:
        click.echo(json.dumps({"terms": [{"english": e, "chinese": c, "meaning": m} for e, c, m in rows(lang)]},
                              ensure_ascii=False))
        return
    tr = i18n.Tr(lang)
    table = Table(title=tr("Glossary: payment terms in English and Chinese"))
    for heading_ in ("English", "中文", tr("What it means here")):
        table.add_column(heading_)
    for english, chinese, meaning in rows(lang):
        table.add_row(escape(english), chinese, escape(meaning))
    console().print(table)


@click.command("replay")
@click.argument("trace_file", type=click.Path(dir_okay=False))
@opt.as_json("Print the replayed summary as one JSON object.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write the trace's message sequence chart and the verdict as an HTML page.")
@lang_option()
def replay_command(trace_file: str, as_json: bool, report_path: str | None, lang: str) -> None:
    """Re-execute a trace recorded over MQTT or TCP in virtual time and compare the verdicts;
    a trace of ``possim proxy`` is judged again from its events (the verdict from the wire)."""
    from possim.processes.proxy import is_proxy_trace
    from possim.running.replay import ReplayError, load_trace, replay

    inputs.writable(report_path)
    with as_input_error(ReplayError):
        records = load_trace(trace_file)
    if is_proxy_trace(records):
        from possim.cli.proxy import replay_proxy_trace

        sys.exit(replay_proxy_trace(records, trace_file, as_json, lang, report_path))
    with as_input_error(ReplayError):
        verdict, recorded = replay(trace_file)
    if report_path:
        from possim.views.html_report import render_trace

        tr_ = i18n.Tr(lang)
        rows = [(show.measure(k, tr_), str(v)) for k, v in verdict.summary().items()]
        Path(report_path).write_text(render_trace(records, trace_file, rows, lang), encoding="utf-8")
        click.echo(tr_("report written to {path}", path=report_path), err=True)
    summary = verdict.summary()
    keys = [k for k in summary if recorded is not None and k in recorded]
    same = recorded is not None and all(summary[k] == recorded[k] for k in keys)
    if as_json:
        click.echo(json.dumps({**summary, "matches_recording": same}, sort_keys=True))
    else:
        tr = i18n.Tr(lang)
        for key, value in summary.items():
            was = tr("   (recorded: {value})", value=recorded.get(key)) \
                if recorded and recorded.get(key) != value else ""
            click.echo(f"{show.measure(key, tr):>20}: {value}{was}")
        click.echo(tr("replay verdict matches the recording") if same else
                   tr("replay verdict DIFFERS from the recording"))
    sys.exit(0 if same else 1)


@click.command("reconcile")
@click.argument("source")
@opt.policy("For a scenario: the recovery policy (default: the scenario's).")
@opt.seed("For a scenario: the RNG seed (default: the scenario's).")
@opt.as_json("Print the reconciliation as one JSON object.")
@click.option("--statement", "statement_path", type=click.Path(dir_okay=False),
              help="The acquirer's statement (CSV): compare it with SOURCE, the merchant's records "
              "(a terminal journal, or sales slips as .csv).")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="With --statement: the business day to compare "
              "(default: the days the statement lists).")
@click.option("--scenario", "scenario_name", help="With --statement and a journal: the scenario it was run "
              "with, whose start is the journal's clock (default: 2026-11-25 10:00:00, as statement --scenario).")
@lang_option()
def reconcile_command(source: str, policy: str | None, seed: int | None, as_json: bool,
                      statement_path: str | None, day: str | None, scenario_name: str | None, lang: str) -> None:
    """End-of-day reconciliation with merchant fees, for a scenario (.toml) or a recorded trace (.jsonl);
    with --statement, the acquirer's statement against the merchant's records."""
    if statement_path:
        from possim.cli.statement import reconcile_with_statement

        reconcile_with_statement(source, statement_path, day, as_json, lang, scenario_name)
    if not source.endswith(".jsonl") and (sc := inputs.scenario(source).in_market(lang)).is_fleet:
        from possim.cli.fleet import reconcile_fleet_command

        sys.exit(reconcile_fleet_command(sc, policy, seed, as_json, lang))
    recon, title, currency = _reconciliation(source, policy, seed, lang)
    if as_json:
        click.echo(json.dumps(recon.as_dict(), sort_keys=True))
    else:
        show.reconciliation(console(), recon, title, i18n.Tr(lang, currency))
    sys.exit(0 if recon.balanced else 1)


def _reconciliation(source: str, policy: str | None, seed: int | None,
                    lang: str = "en") -> tuple[Reconciliation, str, str]:
    if not source.endswith(".jsonl"):
        sc = inputs.scenario(source).in_market(lang)
        with as_input_error(ScenarioError):  # a fleet scenario is refused in one line
            result = simulate(sc, policy, seed)
        assert result.reconciliation is not None
        return result.reconciliation, _title(sc.name, result, lang), sc.model.terminal.currency
    from possim.running.replay import REAL_TIME_HEADERS, ReplayError, read_trace, replay_full

    with as_input_error(ReplayError, ScenarioError):
        records = read_trace(source)
        if any(r.get("event") in REAL_TIME_HEADERS for r in records):
            _, _, recon = replay_full(source)
            return recon, i18n.Tr(lang)("{source} (replayed)", source=source), _currency(records)
        started = next((r for r in records if r.get("event") == "run_started" and "scenario_data" in r), None)
        if started is None:
            raise ReplayError(f"{source}: not a possim trace (no run_started event with its scenario)")
        sc = from_dict(started["scenario_data"], Path(f"{started['scenario']}.toml"))
        result = simulate(sc, started["policy"], started["seed"])
        if result.trace.lines() != Path(source).read_text(encoding="utf-8").splitlines():
            raise ReplayError(f"{source}: re-running its scenario does not reproduce this trace")
    assert result.reconciliation is not None
    return result.reconciliation, _title(source, result, lang), sc.model.terminal.currency


def _title(name: str, result: RunResult, lang: str) -> str:
    """``response-lost - policy none, seed 1`` in the reader's words."""
    tr = i18n.Tr(lang)
    return tr("{scenario} - policy {policy}, seed {seed}", scenario=name, policy=tr.policy(result.policy),
              seed=result.seed)


def _currency(records: list[dict[str, Any]]) -> str:
    """The terminal currency of the scenario a recorded trace carries (978 when it does not say)."""
    for record in records:
        terminal = (record.get("scenario_data") or {}).get("terminal") or {}
        if "currency" in terminal:
            return str(terminal["currency"])
    return "978"
