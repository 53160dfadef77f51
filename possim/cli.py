"""The ``possim`` command line. Bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console

from pos_sim.config import POLICIES
from possim import console as show
from possim.expect import failed_expectations
from possim.reconcile import Reconciliation
from possim.scenario import Scenario, ScenarioError, check_policy, from_dict, load
from possim.simulation import RunResult, simulate
from protocol.mqtt import BrokerAddress
from protocol.transports import Endpoint, TransportError, open_wire


def _console() -> Console:
    """Colour on a terminal; plain, wide text when piped into a file or another program."""
    return Console() if sys.stdout.isatty() else Console(width=140, no_color=True)


class InputError(Exception):
    """Bad input from the user: becomes one line and exit code 2."""


@click.group()
@click.version_option(package_name="possim")
def cli() -> None:
    """possim: reproduce POS timeouts, orphaned debits and their recovery."""


@cli.command()
@click.argument("scenario")
@click.option("--policy", help=f"Recovery policy: {', '.join(POLICIES)} (default: the scenario's).")
@click.option("--seed", type=int, help="RNG seed (default: the scenario's).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), help="Write the JSON-lines trace here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--check-determinism", is_flag=True, help="Run twice and compare the traces.")
@click.option("--timeline/--no-timeline", default=True, help="Print the event timeline.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Keep the host ledger in this SQLite file.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False), help="Keep the terminal journal in this SQLite file.")
@click.option("--transport", default="memory",
              help="memory (virtual time), mqtt (real broker) or tcp (loopback socket, ISO 8583 framing).")
@click.option("--broker", help="MQTT broker URL, mqtt://HOST:PORT (default: start a private Mosquitto).")
@click.option("--qos", default="1", help="MQTT QoS for every message: 0 or 1.")
@click.option("--time-scale", default=1.0, type=float, help="Multiply every duration of the scenario (real transports).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report (sequence chart, ledger, verdict).")
@click.option("--mermaid", "mermaid_path", type=click.Path(dir_okay=False), help="Write a Mermaid sequenceDiagram.")
@click.option("--force-redelivery", default=0, type=click.IntRange(0, 100),
              help="MQTT: the host withholds its PUBACK for the first N requests and reconnects, so the broker "
                   "redelivers them (QoS 1 duplicates).")
def run(scenario: str, policy: str | None, seed: int | None, trace_path: str | None, as_json: bool,
        check_determinism: bool, timeline: bool, ledger_path: str | None, journal_path: str | None,
        transport: str, broker: str | None, qos: str, time_scale: float, report_path: str | None,
        mermaid_path: str | None, force_redelivery: int) -> None:
    """Run SCENARIO and judge it: in virtual time in memory, or in real time over MQTT."""
    sc = _load(scenario, policy)
    for p in (ledger_path, journal_path):
        if p and Path(p).exists():
            raise InputError(f"{p}: already exists; possim will not write into an existing ledger or journal")
    _writable(trace_path, report_path, mermaid_path, ledger_path, journal_path)
    if transport not in ("memory", "mqtt", "tcp"):
        raise InputError(f"unknown transport {transport!r} (choose from memory, mqtt, tcp)")
    if check_determinism:
        sys.exit(_determinism(sc, policy, seed))
    if transport == "tcp":
        from possim.realtime import run_tcp

        result = asyncio.run(run_tcp(sc, policy or sc.model.policy, sc.model.seed if seed is None else seed,
                                     _scale(time_scale), ledger_path, journal_path))
    elif transport == "mqtt":
        result = _run_mqtt(sc, policy, seed, broker, _qos(qos), _scale(time_scale), ledger_path, journal_path,
                           force_redelivery)
    else:
        result = simulate(sc, policy, seed, ledger_path=ledger_path, journal_path=journal_path)
    if trace_path:
        result.trace.write(trace_path)
    _write_views(result, report_path, mermaid_path)
    failures = failed_expectations(sc.model.expect, result.policy, result.verdict.summary())
    if as_json:
        click.echo(json.dumps({**result.summary(), "expectations_failed": failures}, sort_keys=True))
    else:
        con = _console()
        con.print(f"[bold]{sc.model.title}[/]\n{sc.model.description.strip()}\n")
        if timeline:
            show.timeline(con, result)
        show.verdict(con, result, failures)
    sys.exit(0 if result.quiescent and not failures else 1)


@cli.command()
@click.argument("scenario")
@click.option("--policies", default=",".join(POLICIES), show_default=True, help="Comma-separated policies.")
@click.option("--seed", type=int, help="RNG seed (default: the scenario's).")
@click.option("--timelines/--no-timelines", default=True, help="Print each policy's timeline first.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write all policies into one HTML report.")
def compare(scenario: str, policies: str, seed: int | None, timelines: bool, report_path: str | None) -> None:
    """Run SCENARIO under each policy with the same faults and show the outcomes side by side."""
    _writable(report_path)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    for name in names:
        _policy(name)
    sc = _load(scenario, None)
    results: list[RunResult] = [simulate(sc, p, seed) for p in names]
    con = _console()
    con.print(f"[bold]{sc.model.title}[/]\n{sc.model.description.strip()}\n")
    if timelines:
        for r in results:
            show.timeline(con, r, limit=60)
    show.compare(con, results)
    if report_path:
        from possim.html_report import render

        Path(report_path).write_text(render(results, f"{sc.model.title}: policies compared"), encoding="utf-8")
        con.print(f"report written to {report_path}")


@cli.command("fuzz")
@click.option("--policy", default="none", show_default=True, help=f"Policy under test: {', '.join(POLICIES)}.")
@click.option("--examples", default=500, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Generated schedules to try.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the generator.")
@click.option("--out", default="found.toml", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the shrunk failing schedule.")
@click.option("--max-transactions", default=5, show_default=True, type=click.IntRange(1, 50))
def fuzz_command(policy: str, examples: int, seed: int, out: str, max_transactions: int) -> None:
    """Throw generated fault schedules at a policy; shrink the first violation into a scenario."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from possim.fuzz import fuzz, scenario_document, to_toml, violations

    _policy(policy)
    _writable(out)
    con = _console()
    with Progress(TextColumn(f"fuzzing policy {policy}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("fuzz", total=examples)
        found = fuzz(policy, examples, seed, lambda n: bar.update(task, completed=n), max_transactions)
    show.coverage(con, found.coverage, found.examples)
    if found.schedule is None or found.result is None:
        con.print(f"no violation in {found.examples} generated schedules under policy {policy}")
        sys.exit(0)
    document = scenario_document(found.schedule, found.result)
    Path(out).write_text(to_toml(document), encoding="utf-8")
    con.print(f"[bold red]violation:[/] {', '.join(violations(found.result))} after {found.examples} schedules; "
              f"shrunk and written to {out}")
    con.print(document["description"])
    con.print(f"replay: possim run {out} --policy {policy}")
    sys.exit(1)


def _writable(*paths: str | None) -> None:
    """Refuse output paths that cannot be written before any work starts."""
    for p in paths:
        if p is None:
            continue
        parent = Path(p).resolve().parent
        if not parent.is_dir():
            raise InputError(f"{p}: folder {parent} does not exist")
        if Path(p).is_dir():
            raise InputError(f"{p}: is a folder, not a file")


def _check_db(path: str, table: str, what: str) -> None:
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
        conn.close()
    except sqlite3.Error as exc:
        raise InputError(f"{path}: not a possim {what}: {exc}") from None


def _write_views(result: RunResult, report_path: str | None, mermaid_path: str | None) -> None:
    if report_path:
        from possim.html_report import render

        Path(report_path).write_text(render([result], result.scenario.model.title), encoding="utf-8")
    if mermaid_path:
        from possim.mermaid import to_mermaid

        title = f"{result.scenario.model.title} (policy {result.policy})"
        Path(mermaid_path).write_text(to_mermaid(result.trace.records, title), encoding="utf-8")


def _qos(text: str) -> int:
    if text not in ("0", "1"):
        raise InputError(f"unsupported QoS {text!r} (choose 0 or 1)")
    return int(text)


def _scale(factor: float) -> float:
    if not 0 < factor <= 100:
        raise InputError(f"--time-scale must be in (0, 100], got {factor:g}")
    return factor


def _address(url: str) -> BrokerAddress:
    try:
        return BrokerAddress.parse(url)
    except TransportError as exc:
        raise InputError(str(exc)) from None


def _run_mqtt(sc: Scenario, policy: str | None, seed: int | None, broker: str | None, qos: int, time_scale: float,
              ledger_path: str | None, journal_path: str | None, force_redelivery: int = 0) -> RunResult:
    from possim.broker import Broker, BrokerError
    from possim.realtime import run_mqtt

    private = None
    if broker is None:
        try:
            private = Broker().start()
        except BrokerError as exc:
            raise InputError(str(exc)) from None
        broker = private.url
    address = _address(broker)
    try:
        return asyncio.run(run_mqtt(sc, policy or sc.model.policy, sc.model.seed if seed is None else seed, address,
                                    qos, time_scale, ledger_path, journal_path, force_redelivery=force_redelivery))
    except TransportError as exc:
        raise InputError(str(exc)) from None
    finally:
        if private:
            private.close()


@cli.command()
@click.option("--port", default=1883, show_default=True, type=click.IntRange(1, 65535))
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where Mosquitto keeps its config and sessions.")
def broker(port: int, state_dir: str | None) -> None:
    """Run Mosquitto on 127.0.0.1:PORT with possim's configuration until stopped (Ctrl-C)."""
    from possim.broker import Broker, BrokerError

    try:
        b = Broker(port, Path(state_dir) if state_dir else None).start()
    except BrokerError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"mosquitto listening on {b.url} (config {b.config}); Ctrl-C to stop", err=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        assert b.proc is not None
        b.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()


@cli.command()
@click.option("--broker", "broker_url", required=True, help="mqtt://HOST:PORT")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False), help="SQLite ledger file (kept across runs).")
@click.option("--scenario", "scenario_path", help="Take host behaviour ([host]) from this scenario.")
@click.option("--time-scale", default=1.0, type=float, help="Scale the scenario's host durations.")
@click.option("--qos", default="1", help="0 or 1.")
@click.option("--client-id", default="possim-acquirer", show_default=True,
              help="MQTT client id; a restarted acquirer with the same id resumes its session.")
def acquirer(broker_url: str, ledger_path: str | None, scenario_path: str | None, time_scale: float, qos: str,
             client_id: str) -> None:
    """Serve as the acquirer host until SIGINT/SIGTERM; log every event as a JSON line on stderr."""
    import random

    from acquirer_sim.config import HostConfig
    from acquirer_sim.host import AcquirerHost
    from acquirer_sim.ledger import Ledger
    from possim.realtime import serve_acquirer

    address, level = _address(broker_url), _qos(qos)
    config = _load(scenario_path, None).scaled(_scale(time_scale)).host_config() if scenario_path else HostConfig()
    _writable(ledger_path)
    if ledger_path and Path(ledger_path).exists() and Path(ledger_path).stat().st_size:
        _check_db(ledger_path, "entries", "ledger")
    ledger = Ledger(ledger_path or ":memory:", default_balance=config.default_balance)
    host = AcquirerHost(config, ledger, random.Random())
    log = _live_logger("acquirer")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        wire = open_wire("mqtt", Endpoint(f"mqtt://{address.host}:{address.port}", level, client_id=client_id))
        await serve_acquirer(wire, host, log, stop)

    try:
        asyncio.run(main())
    except TransportError as exc:
        raise InputError(str(exc)) from None
    finally:
        ledger.close()
    click.echo("acquirer stopped", err=True)


@cli.command()
@click.argument("scenario")
@click.option("--broker", "broker_url", required=True, help="mqtt://HOST:PORT")
@click.option("--tid", required=True, help="Terminal id (field 41, 8 characters).")
@click.option("--policy", help="Recovery policy (default: the scenario's).")
@click.option("--seed", type=int)
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False), help="SQLite journal file.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False))
@click.option("--time-scale", default=1.0, type=float)
@click.option("--qos", default="1")
@click.option("--log/--no-log", default=True, help="Log every event as a JSON line on stderr.")
def terminal(scenario: str, broker_url: str, tid: str, policy: str | None, seed: int | None,
             journal_path: str | None, trace_path: str | None, time_scale: float, qos: str, log: bool) -> None:
    """Drive one terminal through SCENARIO against an acquirer on the broker; print its summary."""
    from possim.realtime import drive_terminal

    sc = _load(scenario, policy)
    if len(tid) != 8 or any(c in tid for c in "+#/") or not tid.isprintable():
        raise InputError(f"--tid {tid!r}: a terminal id is 8 printable characters without + # /")
    _writable(journal_path, trace_path)
    address, level = _address(broker_url), _qos(qos)
    try:
        wire = open_wire("mqtt", Endpoint(f"mqtt://{address.host}:{address.port}", level,
                                          client_id=f"possim-terminal-{tid.strip()}"))
        result = asyncio.run(drive_terminal(sc, policy or sc.model.policy, sc.model.seed if seed is None else seed,
                                            wire, tid, _scale(time_scale), journal_path,
                                            live=_live_logger("terminal") if log else None))
    except TransportError as exc:
        raise InputError(str(exc)) from None
    if trace_path:
        result.trace.write(trace_path)
    s = result.verdict.summary()
    click.echo(json.dumps({k: s[k] for k in ("transactions", "approved", "declined", "failed", "unknown",
                                              "reversed", "pending_reversals")} | {"quiescent": result.quiescent}))
    sys.exit(0 if result.quiescent else 1)


@cli.command("check")
@click.option("--journal", "journal_path", required=True, help="The terminal's SQLite journal.")
@click.option("--ledger", "ledger_path", required=True, help="The host's SQLite ledger.")
@click.option("--json", "as_json", is_flag=True)
def check_command(journal_path: str, ledger_path: str, as_json: bool) -> None:
    """Judge a run split over processes from its journal and ledger files."""
    import sqlite3

    from possim.checker import check

    conns = []
    for path, table, what in ((journal_path, "journal", "journal"), (ledger_path, "entries", "ledger")):
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        _check_db(path, table, what)
        conns.append(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    verdict = check(conns[0], conns[1])
    summary = verdict.summary()
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for key, value in summary.items():
            click.echo(f"{key.replace('_', ' '):>20}: {value}")
        for f in verdict.findings:
            click.echo(f"  finding: {f.finding} txn {f.txn} stan {f.key[1]} amount {f.as_dict()['amount']}")
    sys.exit(0 if verdict.clean else 1)


@cli.command("replay")
@click.argument("trace_file")
@click.option("--json", "as_json", is_flag=True)
def replay_command(trace_file: str, as_json: bool) -> None:
    """Re-execute a trace recorded over MQTT or TCP in virtual time and compare the verdicts."""
    from possim.replay import ReplayError, replay

    try:
        verdict, recorded = replay(trace_file)
    except ReplayError as exc:
        raise InputError(str(exc)) from None
    summary = verdict.summary()
    keys = [k for k in summary if recorded is not None and k in recorded]
    same = recorded is not None and all(summary[k] == recorded[k] for k in keys)
    if as_json:
        click.echo(json.dumps({**summary, "matches_recording": same}, sort_keys=True))
    else:
        for key, value in summary.items():
            was = f"   (recorded: {recorded.get(key)})" if recorded and recorded.get(key) != value else ""
            click.echo(f"{key.replace('_', ' '):>20}: {value}{was}")
        click.echo("replay verdict matches the recording" if same else "replay verdict DIFFERS from the recording")
    sys.exit(0 if same else 1)


@cli.command("list")
@click.option("--scenarios", "scenario_dir", default=None, help="Folder with the scenarios.")
def list_command(scenario_dir: str | None) -> None:
    """The shipped scenarios, by name, with what each teaches."""
    folder = Path(scenario_dir) if scenario_dir else _scenario_folder()
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise InputError(f"{folder}: no scenario files here")
    for path in files:
        try:
            title = load(path).model.title
        except ScenarioError as exc:
            title = f"(invalid: {exc})"
        click.echo(f"{path.stem:<30} {title}")


@cli.command()
@click.option("--pace", default=0.8, show_default=True, type=click.FloatRange(0, 10),
              help="Seconds per event, so a trainer can talk over it.")
@click.option("--scenarios", "scenario_dir", default=None, help="Folder with the shipped scenarios.")
def demo(pace: float, scenario_dir: str | None) -> None:
    """A narrated walk through the key failure modes: lost response, slow host, lost reversal, customer retries."""
    from possim.demo import run_demo

    folder = Path(scenario_dir) if scenario_dir else _scenario_folder()
    if not (folder / "response-lost.toml").is_file():
        raise InputError(f"{folder}: no shipped scenarios here (use --scenarios DIR)")
    run_demo(_console(), folder, pace)


def _scenario_folder() -> Path:
    here = Path.cwd() / "scenarios"
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / "scenarios"


@cli.command("reconcile")
@click.argument("source")
@click.option("--policy", help="For a scenario: the recovery policy (default: the scenario's).")
@click.option("--seed", type=int, help="For a scenario: the seed.")
@click.option("--json", "as_json", is_flag=True)
def reconcile_command(source: str, policy: str | None, seed: int | None, as_json: bool) -> None:
    """End-of-day reconciliation with merchant fees, for a scenario (.toml) or a recorded trace (.jsonl)."""
    recon, title = _reconciliation(source, policy, seed)
    if as_json:
        click.echo(json.dumps(recon.as_dict(), sort_keys=True))
    else:
        show.reconciliation(_console(), recon, title)
    sys.exit(0 if recon.balanced else 1)


def _reconciliation(source: str, policy: str | None, seed: int | None) -> tuple[Reconciliation, str]:
    if not source.endswith(".jsonl"):
        sc = _load(source, policy)
        result = simulate(sc, policy, seed)
        assert result.reconciliation is not None
        return result.reconciliation, f"{sc.name}, policy {result.policy}, seed {result.seed}"
    from possim.replay import REAL_TIME_HEADERS, ReplayError, read_trace, replay_full

    try:
        records = read_trace(source)
        if any(r.get("event") in REAL_TIME_HEADERS for r in records):
            _, _, recon = replay_full(source)
            return recon, f"{source} (replayed)"
        started = next((r for r in records if r.get("event") == "run_started" and "scenario_data" in r), None)
        if started is None:
            raise ReplayError(f"{source}: not a possim trace (no run_started event with its scenario)")
        sc = from_dict(started["scenario_data"], Path(f"{started['scenario']}.toml"))
        result = simulate(sc, started["policy"], started["seed"])
        if result.trace.lines() != Path(source).read_text(encoding="utf-8").splitlines():
            raise ReplayError(f"{source}: re-running its scenario does not reproduce this trace")
    except (ReplayError, ScenarioError) as exc:
        raise InputError(str(exc)) from None
    assert result.reconciliation is not None
    return result.reconciliation, f"{source} (policy {result.policy}, seed {result.seed})"


def _live_logger(component: str) -> Callable[..., None]:
    """structlog JSON lines on stderr for long-running processes."""
    import structlog

    logger = structlog.wrap_logger(structlog.PrintLogger(sys.stderr), processors=[
        structlog.processors.TimeStamper(fmt="iso"), structlog.processors.JSONRenderer(sort_keys=True)])
    bound = logger.bind(component=component)

    def emit(event: str, **fields: object) -> None:
        bound.info(event, **fields)

    return emit


def _determinism(sc: Scenario, policy: str | None, seed: int | None) -> int:
    first = simulate(sc, policy, seed).trace.lines()
    second = simulate(sc, policy, seed).trace.lines()
    for i, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            click.echo(f"NOT deterministic: traces differ at event {i + 1}:\n  first:  {a}\n  second: {b}")
            return 1
    if len(first) != len(second):
        click.echo(f"NOT deterministic: {len(first)} events vs {len(second)} events")
        return 1
    click.echo(f"deterministic: two runs gave {len(first)} identical trace events")
    return 0


def _policy(policy: str) -> str:
    try:
        return check_policy(policy)
    except ScenarioError as exc:
        raise InputError(str(exc)) from None


def _load(path: str, policy: str | None) -> Scenario:
    """A scenario file, or the name of a shipped one ("response-lost")."""
    if policy is not None:
        _policy(policy)
    shipped = _scenario_folder() / f"{path}.toml"
    if not Path(path).exists() and "/" not in path and not path.endswith(".toml") and shipped.is_file():
        path = str(shipped)
    try:
        return load(path)
    except ScenarioError as exc:
        raise InputError(str(exc)) from None


def main() -> None:
    """Entry point: click's own usage errors and ours become one line and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except InputError as exc:
        click.echo(f"possim: error: {exc}", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        click.echo(f"possim: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"possim: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("possim: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
