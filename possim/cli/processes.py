"""Commands that run one side of a payment as its own process: ``broker``, ``acquirer``, ``terminal``,
and ``check``, which judges such a split run from its journal and ledger files."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from possim.cli import inputs, keyfile
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.i18n import N_
from possim.processes.keys import HOST_USERNAME, KeyRing
from possim.protocol.mac import ALGORITHMS as MAC_ALGORITHMS
from possim.protocol.mac import DEFAULT_ALGORITHM as DEFAULT_MAC

if TYPE_CHECKING:
    from possim.i18n import Tr
    from possim.judging.checker import LostSale, Verdict
    from possim.protocol.events import Stamped
from possim.protocol import transports
from possim.protocol.transports import Endpoint, TransportError, Wire

F = TypeVar("F", bound=Callable[..., Any])

#: What ``possim terminal`` prints: the counts a second process can act on.
TERMINAL_SUMMARY = ("transactions", "approved", "declined", "failed", "unknown", "reversed", "pending_reversals")


#: The exit code of a terminal that refused to sell (a lost journal, a refused sign-on).
REFUSED_TO_SELL = 3

#: A full card number wherever it appears in a log line: 13 to 19 digits (an RRN has 12).
_CARD = re.compile(r"\d{13,19}")


def _masked(value: Any) -> Any:
    """``value`` with every card number in it (as a value, a key, nested) masked."""
    from possim.acquirer_sim.host import mask_pan

    if isinstance(value, str):
        return mask_pan(value) if _CARD.fullmatch(value) else value
    if isinstance(value, dict):
        return {_masked(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def mask_cards(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """structlog processor: card numbers (``pan``, ``card``, the scenario's cards) show first six and last four."""
    return {k: _masked(v) for k, v in event.items()}


def live_logger(component: str) -> Callable[..., None]:
    """structlog JSON lines on stderr for long-running processes; card numbers masked."""
    import structlog

    logger = structlog.wrap_logger(structlog.PrintLogger(sys.stderr), processors=[
        mask_cards, structlog.processors.TimeStamper(fmt="iso"), structlog.processors.JSONRenderer(sort_keys=True)])
    bound = logger.bind(component=component)

    def emit(event: str, **fields: object) -> None:
        bound.info(event, **fields)

    return emit


@click.command("keys")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The key file to write (JSON, mode 0600).")
@click.option("--terminal", "tids", multiple=True, metavar="TID",
              help="A terminal id (8 letters, digits, '-' or '_'); repeat for each terminal.")
@click.option("--terminals", "count", type=click.IntRange(1, 99_999),
              help="Or N terminals named POS00001 ... POS{N:05d}.")
@click.option("--algorithm", type=click.Choice(sorted(MAC_ALGORITHMS)), default=DEFAULT_MAC, show_default=True,
              help="MAC algorithm: AES-CMAC (recommended), the X9.19 retail MAC, or cup-ecb (CUP POS terminals).")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@click.option("--add", is_flag=True, help="Add these terminals to an existing key file, keeping its keys.")
@opt.as_json("Print the key file written and each terminal's key check value as one JSON object.")
@opt.lang()
def keys_command(out_path: str, tids: tuple[str, ...], count: int | None, algorithm: str, force: bool, add: bool,
                 as_json: bool, lang: str) -> None:
    """Create a key file: a MAC key and a broker password per terminal, and the host's account.

    Prints each terminal's key check value (never a secret): two sides holding the same key
    print the same check value.
    """
    from possim.processes import keys

    if bool(tids) == (count is not None):
        raise InputError("give terminal ids with --terminal TID (repeated) or a count with --terminals N")
    names = list(tids) if tids else keys.default_tids(count or 0)
    if add and force:
        raise InputError("--add keeps the key file's keys and --force replaces them: give one")
    with as_input_error(keys.KeyFileError):
        ring = (keys.add_terminals(Path(out_path), names) if add
                else keys.create_key_file(Path(out_path), names, algorithm, force=force))
    _print_keys(ring, out_path, as_json, lang)


def _print_keys(ring: KeyRing, out_path: str, as_json: bool, lang: str) -> None:
    """What ``possim keys`` wrote: never a secret, only the key check values two sides can compare."""
    from possim.i18n import Tr
    from possim.processes.keys import check_value

    values = {tid: check_value(t.mac_key) for tid, t in sorted(ring.terminals.items())}
    if as_json:
        click.echo(json.dumps({"file": out_path, "host_username": ring.host_username, "algorithm": ring.algorithm,
                               "key_check_values": values}, sort_keys=True))
        return
    tr = Tr(lang)
    click.echo(tr("wrote {path} (mode 0600): keep it secret, whoever reads it can forge any terminal", path=out_path))
    click.echo(tr("host account {user}, MAC algorithm {algorithm}", user=ring.host_username,
                  algorithm=ring.algorithm))
    for tid, value in values.items():
        click.echo(tr("terminal {tid}: key check value {value}", tid=tid, value=value))


def _load_keys(path: str | None, tids: Sequence[str] = ()) -> KeyRing | None:
    """The key file named by ``--keys``, else the default one (``possim.cli.keyfile``), or ``None`` under
    ``--insecure``; a bad one is one line and exit 2."""
    return keyfile.resolve(path, tids)


def _keys_option(text: str) -> Callable[[F], F]:
    return keyfile.keys_options(text)


@click.command()
@click.option("--port", default=1883, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port on 127.0.0.1 to listen on.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where Mosquitto keeps its config and sessions.")
@_keys_option("Secure the broker with this key file's accounts: anonymous clients refused, each terminal "
              "limited to its own topics by an ACL.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="TLS: the broker's certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="TLS: the broker's private key (PEM).")
@click.option("--tls-ca", type=click.Path(dir_okay=False),
              help="TLS: a CA file; clients must then present a certificate it signed.")
def broker(port: int, state_dir: str | None, keys_path: str | None, tls_cert: str | None, tls_key: str | None,
           tls_ca: str | None) -> None:
    """Run Mosquitto on 127.0.0.1:PORT with possim's configuration until stopped (Ctrl-C)."""
    from possim.processes.broker import Broker, BrokerError, TlsFiles

    ring = _load_keys(keys_path)
    if (tls_cert is None) != (tls_key is None) or (tls_ca is not None and tls_cert is None):
        raise InputError("TLS needs both --tls-cert and --tls-key (and --tls-ca only with them)")
    tls = TlsFiles(Path(tls_cert), Path(tls_key), Path(tls_ca) if tls_ca else None) if tls_cert and tls_key else None
    with as_input_error(BrokerError):
        accounts = ring.accounts() if ring else None
        b = Broker(port, Path(state_dir) if state_dir else None, accounts=accounts,
                   host_username=ring.host_username if ring else HOST_USERNAME, tls=tls)
        try:
            b.start()
        except BrokerError:
            b.close()  # the state folder it made for nothing
            raise
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # before the banner: it is the readiness line
    click.echo(f"mosquitto listening on {b.url} (config {b.config}); Ctrl-C to stop", err=True)
    if ring is None:
        click.echo("warning: --insecure: anonymous clients may read every message and forge any terminal", err=True)
    try:
        assert b.proc is not None
        code = b.proc.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        b.stop()
    if code > 0:  # Mosquitto stopped on its own (a signal it got from us or Ctrl-C is negative or 0)
        click.echo(f"possim: error: mosquitto exited with {code}: {b.log_tail()}", err=True)
        sys.exit(1)


def process_transports() -> tuple[str, ...]:
    """The transports whose host and terminals can be separate processes, asked when the option parses."""
    return tuple(t.name for t in transports.REGISTRY.values() if t.processes)


def _tls_ca_option() -> Callable[[F], F]:
    return click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True),
                        help="MQTT over TLS: trust the broker's certificate signed by this CA file.")


def _wire(transport: str, broker_url: str | None, tcp_url: str | None, qos: int, client_id: str,
          ring: KeyRing | None, username: str | None, tls_ca: str | None, shard: int = 0, shards: int = 1,
          port_offset: int = 0, profile: str = "iso") -> Wire:
    """``inputs.wire`` plus the broker account of ``username`` from the key file, and TLS; host shards as
    in :func:`possim.cli.inputs.wire`; the profile's wire dialect (``cup``: CUP frames over TCP)."""
    from possim.protocol.profiles import get_profile

    dialect = get_profile(profile).dialect
    wire = inputs.wire(transport, broker_url, tcp_url, qos, client_id, shard, shards, port_offset, dialect)
    if (ring is None and tls_ca is None) or not transports.get(transport).broker:
        return wire
    password = ring.password_of(username or "") if ring is not None else None
    endpoint = Endpoint(broker_url, qos, client_id=client_id, username=username if ring else None,
                        password=password, tls_ca=tls_ca, shard=shard, shards=shards, dialect=dialect)
    with as_input_error(TransportError):
        return transports.open_wire(transport, endpoint)


def _process_transport() -> Callable[[F], F]:
    return click.option("--transport", type=opt.LiveChoice(process_transports), default=process_transports()[0],
                        show_default=True,
                        help="How terminals and the acquirer meet: an MQTT broker or ISO 8583 over TCP.")


@click.command()
@_process_transport()
@opt.broker("The MQTT broker to serve on (with --transport mqtt).")
@click.option("--listen", "listen_url", metavar="tcp://HOST:PORT",
              help=f"Where to listen for terminals with --transport tcp (default {inputs.default_addresses()}). "
                   "Under the iso profile a frame is a 2-byte length, then ISO 8583 with its bitmap as "
                   "hex or as raw bytes (read from each frame, answered alike).")
@opt.ledger("SQLite ledger file (kept across runs; reopened and recovered after a crash).")
@click.option("--scenario", "scenario_path", help="Take host behaviour ([host]) from this scenario.")
@opt.profile("Host profile: iso, or cup (the debit waits for the issuer, 94 for duplicates, issuer "
             "timeouts); default: the scenario's, else iso.")
@opt.time_scale("Scale the scenario's host durations.")
@opt.qos()
@click.option("--client-id", default="possim-acquirer", show_default=True,
              help="MQTT client id; a restarted acquirer with the same id resumes its session. A broker "
                   "secured by a key file names each client by its account instead.")
@click.option("--stats-every", default=10.0, show_default=True, type=opt.FiniteFloatRange(0.1, 3600),
              help="Seconds between log lines counting the requests handled and failed.")
@_keys_option("Verify and add MACs with this key file's keys (a request with a missing or wrong MAC is "
              "answered 63) and log in to the broker with its host account.")
@_tls_ca_option()
@click.option("--shard", "shard_text", metavar="k/K",
              help="Host shard k of K: serve only the terminal ids that map to k (MQTT: the shard's topic; "
                   "TCP: the listen port + k). Give each shard its own --ledger and --client-id.")
@click.option("--magic", is_flag=True,
              help="Magic amounts: the cents of a sale's amount pick the host's behaviour (see --magic-table).")
@click.option("--magic-table", is_flag=True, help="Print the magic amounts table and exit.")
@opt.lang()
def acquirer(transport: str, broker_url: str | None, listen_url: str | None, ledger_path: str | None,
             scenario_path: str | None, profile: str | None, time_scale: float, qos: int, client_id: str,
             stats_every: float, keys_path: str | None, tls_ca: str | None, shard_text: str | None,
             magic: bool, magic_table: bool, lang: str) -> None:
    """Serve as the acquirer host until SIGINT/SIGTERM; log every event as a JSON line on stderr.

    Wallet (QR) payments go to the wallet gateway over the same ledger file; with --scenario its
    customers behave as the scenario's wallet payments say (how long they take to confirm).
    """
    import random
    from datetime import datetime

    from possim.acquirer_sim.config import HostConfig
    from possim.acquirer_sim.host import AcquirerHost
    from possim.acquirer_sim.ledger import Ledger
    from possim.acquirer_sim.magic import MagicHost

    if magic_table:
        print_magic_table(lang)
        return
    from possim.protocol.storage import StoreError
    from possim.running.realtime import serve_acquirer
    from possim.running.wallet_rig import acquirer_gateway

    shard, shards = inputs.shard(shard_text)
    ring = _load_keys(keys_path)
    sc = (inputs.scaled(inputs.scenario(scenario_path).with_profile(profile).in_market(lang), time_scale)
          if scenario_path else None)  # the market of --lang, as possim run: zh serves yuan and UnionPay cards
    config = sc.host_config() if sc else HostConfig(profile=profile or "iso")
    from possim.processes.keys import host_account

    wire = _wire(transport, broker_url, listen_url, qos, client_id, ring,
                 host_account(ring.host_username, shard, shards) if ring else None, tls_ca, shard, shards, shard,
                 config.profile)
    inputs.writable(ledger_path)
    log = live_logger("acquirer")
    if ring is None:  # logs insecure_mode, a stable event name to alert on: this host verifies nobody
        wire = keyfile.WarnInsecure(wire, log)
    with as_input_error(StoreError):  # a ledger left by a killed acquirer is recovered on open
        ledger = Ledger(ledger_path or ":memory:", default_balance=config.default_balance,
                        on_wait=lambda w: log("ledger_wait", operation=w.operation, seconds=round(w.seconds, 3),
                                              attempts=w.attempts))
    keys = ring.mac_keys() if ring else None
    host = (MagicHost(config, ledger, random.Random(), keys, magic=magic,
                      on_behaviour=lambda name, tid, stan: log("magic_behaviour", behaviour=name, tid=tid, stan=stan))
            if magic or config.behaviours else AcquirerHost(config, ledger, random.Random(), keys))
    gateway = acquirer_gateway(sc, ledger.conn, config.default_balance, datetime.now().replace(microsecond=0),
                               random.Random(), ring.mac_keys() if ring else None)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_acquirer(wire, host, log, stop, stats_every, gateway)

    try:
        with as_input_error(TransportError):
            asyncio.run(serve())
    finally:
        ledger.close()
    click.echo("acquirer stopped", err=True)


def print_magic_table(lang: str) -> None:
    """The magic amounts table (``acquirer_sim.magic.TABLE``) for people, in ``lang``."""
    from rich.console import Console
    from rich.table import Table

    from possim.acquirer_sim.magic import table_rows
    from possim.i18n import Tr

    tr = Tr(lang)
    table = Table(title=tr("possim acquirer --magic: the cents of the amount pick the host's behaviour"))
    for column in (tr("cents"), tr("behaviour"), tr("what the host does")):
        table.add_column(column)
    for row in table_rows(tr):
        table.add_row(*row)
    console = Console(width=max(Console().width, 100))
    console.print(table)
    console.print(tr("Any other amount is answered normally."))


def _terminal_process_options(journal_help: str, keys_help: str) -> Callable[[F], F]:
    """The arguments and options of a terminal process (``terminal`` and ``settle``), declared once."""
    decorators = [
        click.argument("scenario"),
        _process_transport(),
        opt.broker("The MQTT broker the acquirer serves on (with --transport mqtt)."),
        click.option("--connect", "connect_url", metavar="tcp://HOST:PORT", multiple=True,
                     help=f"The acquirer's TCP address with --transport tcp (default {inputs.default_addresses()}); "
                          "repeat it for backup lines, primary first: the terminal switches to the next after "
                          "[terminal] failover_after timeouts in a row or when it cannot connect."),
        click.option("--tid", required=True, help="Terminal id (field 41, 8 characters)."),
        opt.policy(), opt.profile(), opt.seed(), opt.journal(journal_help), opt.trace(), opt.time_scale(),
        opt.qos(), click.option("--log/--no-log", default=True, help="Log every event as a JSON line on stderr."),
        _keys_option(keys_help), _tls_ca_option(),
        click.option("--shards", default=1, show_default=True, type=click.IntRange(1, 64),
                     help="How many host shards serve the terminals: this terminal talks to the one its id "
                          "maps to."),
        click.option("--json/--text", "as_json", default=True, show_default=True,
                     help="Print the summary as one JSON line (for another process to read) or as text for people."),
        opt.lang(),
    ]

    def apply(command: F) -> F:
        for decorate in reversed(decorators):
            command = decorate(command)
        return command

    return apply


def _replacement_option(what: str) -> Callable[[F], F]:
    """``--replacement`` of ``terminal`` and ``settle``: a terminal on a new journal for an id the acquirer knows."""
    return click.option("--replacement", is_flag=True,
                        help=f"This terminal replaces one whose journal is lost: {what} on a new journal although "
                             "the acquirer knows the terminal id from an earlier life.")


@click.command()
@_terminal_process_options(
    "The terminal's SQLite journal; an existing one is resumed (recovery first, STAN carried on).",
    "MAC every request with this terminal's key from the key file, refuse answers without the right MAC, "
    "and log in to the broker with the terminal's account.")
@_replacement_option("sell")
def terminal(scenario: str, transport: str, broker_url: str | None, connect_url: tuple[str, ...], tid: str,
             policy: str | None, profile: str | None, seed: int | None, journal_path: str | None,
             trace_path: str | None, time_scale: float, qos: int, log: bool, keys_path: str | None,
             tls_ca: str | None, shards: int, as_json: bool, lang: str, replacement: bool) -> None:
    """Drive one terminal through SCENARIO against an acquirer; print its summary.

    On an existing journal the terminal resumes where it stopped: a sale that was in flight
    gets its recovery first, and sales already journaled are not paid again. It signs on first
    with its life number (kept in the journal); on a new journal, for a terminal id the acquirer
    knows from an earlier life, it refuses to sell (one line, exit 3) unless --replacement. Answered
    77 ("sign on again": another life of its id signed on since), it signs on afresh and shows the
    sale as not charged, for the operator to ring up again.
    """
    _drive(scenario, transport, broker_url, connect_url, tid, policy, profile, seed, journal_path, trace_path,
           time_scale, qos, log, keys_path, tls_ca, shards, end_of_day=False, printed=(as_json, lang),
           replacement=replacement)


def _drive(scenario: str, transport: str, broker_url: str | None, connect_url: tuple[str, ...], tid: str,
           policy: str | None, profile: str | None, seed: int | None, journal_path: str | None,
           trace_path: str | None, time_scale: float, qos: int, log: bool, keys_path: str | None,
           tls_ca: str | None, shards: int, *, end_of_day: bool, printed: tuple[bool, str] = (True, "en"),
           replacement: bool = False) -> None:
    """``possim terminal`` and ``possim settle``: one terminal process against an acquirer; ``printed``: whether
    the summary is one JSON line, and the language of the text otherwise."""
    from possim.running.realtime import drive_terminal

    if len(connect_url) > 1 and not transports.get(transport).failover:
        able = " or ".join(f"--transport {t.name}" for t in transports.REGISTRY.values() if t.failover)
        raise InputError(f"several --connect addresses (backup lines) need {able}")
    sc = inputs.scenario(scenario).with_profile(profile).in_market(printed[1])  # --lang's market, as possim run
    inputs.tid(tid)
    inputs.writable(journal_path, trace_path)
    if journal_path and Path(journal_path).exists():
        from possim.pos_sim.journal import read_journal
        from possim.protocol.storage import StoreError

        with as_input_error(StoreError):  # refuse a file that is not a journal before any work starts
            read_journal(journal_path).close()
    inputs.scaled(sc, time_scale)
    from possim.protocol.shards import shard_of

    ring = _load_keys(keys_path, [tid.strip()])
    mac_key = keyfile.terminal_key(ring, tid, keys_path) if ring is not None else None
    wires = [_wire(transport, broker_url, url, qos, f"possim-terminal-{tid.strip()}", ring, tid, tls_ca,
                   shards=shards, port_offset=shard_of(tid, shards), profile=sc.profile)
             for url in (connect_url or (None,))]
    wire = wires[0]
    with as_input_error(TransportError):
        result = asyncio.run(drive_terminal(sc, policy or sc.model.policy, sc.model.seed if seed is None else seed,
                                            wire, tid, time_scale, journal_path,
                                            live=live_logger("terminal") if log else None, mac_key=mac_key,
                                            end_of_day=end_of_day, replacement=replacement,
                                            backups=wires[1:], addresses=connect_url))
    if trace_path:
        result.trace.write(trace_path)
    if result.refused is not None:
        click.echo(f"possim: refused: {result.refused}", err=True)
        sys.exit(REFUSED_TO_SELL)
    out: dict[str, object] = {k: result.outcomes[k] for k in TERMINAL_SUMMARY}
    out["quiescent"] = result.quiescent
    if end_of_day:
        out["settlement"] = _settlement_outcome(result.trace.records)
        closed = _closed_batch(result.trace.records)
        if closed is not None:  # CUP: the batch number (field 60.2) the settlement closed
            out["batch"] = closed
    _print_summary(out, *printed)
    sys.exit(0 if result.quiescent else 1)


def _print_summary(out: dict[str, Any], as_json: bool, lang: str) -> None:
    if as_json:
        click.echo(json.dumps(out))
        return
    from possim.i18n import Tr
    from possim.views.console import measure

    tr = Tr(lang)
    for key, value in out.items():
        shown = tr(value) if isinstance(value, str) else tr("yes") if value is True else \
            tr("no") if value is False else value
        click.echo(f"{measure(key, tr):>20}: {shown}")


def _closed_batch(records: Sequence[Stamped]) -> int | None:
    """The number of the batch a CUP settlement closed (field 60.2), or None (no batch closed)."""
    from possim.protocol import events as ev

    closed = [s.event.closed for s in records if isinstance(s.event, ev.BatchClosed)]
    return int(closed[-1]) if closed else None


def _settlement_outcome(records: Sequence[Stamped]) -> str:
    """What the terminal's settlement came to: balanced, balanced after upload, out of balance, failed.

    Out of balance under ISO means the second 0500 said so after the upload; a CUP terminal sends
    no second 0500, so its out-of-balance batch is settled by the answered batch-end 0320 (or not,
    when an upload went unanswered or was refused)."""
    from possim.protocol import events as ev

    answers = [s.event for s in records if isinstance(s.event, ev.SettlementAnswered)]
    failed = any(isinstance(s.event, ev.SettlementFailed) and s.event.mti == "0500" for s in records)
    if failed or not answers:
        return "failed"
    if answers[-1].balanced:
        return "balanced after batch upload" if answers[-1].final else "balanced"
    if answers[-1].final:  # ISO: uploaded, then the second 0500 was answered out of balance too
        return "out of balance after batch upload"
    # CUP sends no second 0500: the batch upload ends with the batch-end 0320, whose answer settles it
    uploads_failed = any(isinstance(s.event, ev.SettlementFailed) and s.event.mti == "0320" for s in records)
    return "out of balance, batch upload unanswered" if uploads_failed else "out of balance, settled by the batch end"


@click.command("settle")
@_terminal_process_options(
    "The terminal's SQLite journal: its approved sales are the day's batch.",
    "MAC every request with this terminal's key from the key file and log in to the broker with the "
    "terminal's account.")
@_replacement_option("settle")
def settle_command(scenario: str, transport: str, broker_url: str | None, connect_url: tuple[str, ...], tid: str,
                   policy: str | None, profile: str | None, seed: int | None, journal_path: str | None,
                   trace_path: str | None, time_scale: float, qos: int, log: bool, keys_path: str | None,
                   tls_ca: str | None, shards: int, as_json: bool, lang: str, replacement: bool) -> None:
    """End of day for one terminal: settle its journal's batch with a running acquirer.

    The terminal (restored from --journal, owed recovery first) signs on, then sends its batch
    totals (0500); out of balance, it uploads each approved sale (0320) and settles again. Prints
    the summary with what the settlement came to. On a new journal, for a terminal id the acquirer
    knows from an earlier life, it refuses (one line, exit 3) unless --replacement: a replacement
    signs on as a new life and settles the batch of its own journal (the lost journal's sales are
    not in it, so the acquirer, which still counts them, answers out of balance).
    """
    _drive(scenario, transport, broker_url, connect_url, tid, policy, profile, seed, journal_path, trace_path,
           time_scale, qos, log, keys_path, tls_ca, shards, end_of_day=True, printed=(as_json, lang),
           replacement=replacement)


@click.command("check")
@click.option("--journal", "journal_paths", multiple=True, required=True, metavar="FILE|FOLDER",
              help="A terminal's SQLite journal; repeat it for every terminal, or name a folder of journals.")
@click.option("--ledger", "ledger_paths", multiple=True, required=True, metavar="FILE|FOLDER",
              help="The host's SQLite ledger (shared by every terminal); with host shards repeat it for every "
                   "shard, or name a folder of ledgers: their money is read together.")
@click.option("--whole-ledger", is_flag=True,
              help="Also list the ledger's money for terminals whose journal was not given.")
@opt.as_json("Print the verdict as one JSON object.")
@opt.lang()
def check_command(journal_paths: tuple[str, ...], ledger_paths: tuple[str, ...], whole_ledger: bool,
                  as_json: bool, lang: str) -> None:
    """Judge a run split over processes: every terminal's journal against the ledger (or the shards' ledgers).

    Files left by a killed process are recovered on open. Each journal is one life of its
    terminal: baskets are judged within it. The sales of a life whose journal is missing (a
    terminal restarted with --replacement) are named from the ledger: completed at the till when
    the host delivered their answer, really at risk when it never did. Exit 0 only when the money is right and nothing
    is still owed or at risk (no pending reversal, no open hold, no escalated money the
    acquirer has yet to refund); 1 otherwise.
    """
    from possim.api import check
    from possim.protocol.storage import StoreError

    with as_input_error(StoreError):
        verdict = check(journal_paths, ledger_paths, whole_ledger=whole_ledger)
    _print_verdict(verdict, as_json, lang)
    sys.exit(0 if verdict.settled else 1)


def _print_verdict(verdict: Verdict, as_json: bool, lang: str = "en") -> None:
    summary = verdict.summary()
    if as_json:
        from possim.judging.checker import lost_journal_totals
        from possim.money.money import format_amount

        lost = {"lost_journal": {**lost_journal_totals(verdict.lost_journal),
                                 "sales": [sale.as_dict() for sale in verdict.lost_journal]}} \
            if verdict.lost_journal else {}
        click.echo(json.dumps({**summary, "money_on_hold": format_amount(verdict.on_hold), "settled": verdict.settled,
                               "unjournaled": [f.as_dict() for f in verdict.unjournaled], **lost}, sort_keys=True))
        return
    from possim.i18n import Tr
    from possim.views.console import measure

    tr = Tr(lang)
    for key, value in summary.items():
        click.echo(f"{measure(key, tr):>20}: {value}")
    from possim.views.console import sent_at

    for f in verdict.findings:
        txn = (tr("txn {txn}", txn=f.txn) if f.txn is not None
               else tr("no journal row, sent {at},", at=sent_at(f.key[2])))
        click.echo("  " + tr("finding: {finding} terminal {tid} {txn} stan {stan} amount {amount}",
                             finding=f.finding, tid=f.key[0], txn=txn, stan=f.key[1], amount=f.as_dict()["amount"]))
    for f in verdict.unjournaled:
        click.echo("  " + tr("no journal given: terminal {tid} stan {stan} amount {amount}", tid=f.key[0],
                             stan=f.key[1], amount=f.as_dict()["amount"]))
    _print_lost_journal(verdict.lost_journal, tr)


#: How ``possim check`` names a sale of a life whose journal is lost, by its judgement.
_LOST_SALE = {"completed": N_("journal lost, sale completed at the till (not at risk): "
                              "terminal {tid} life {life} stan {stan} amount {amount}"),
              "at_risk": N_("really at risk: debited, terminal never saw the answer: "
                            "terminal {tid} life {life} stan {stan} amount {amount}")}

_LOST_TOTALS = N_("lost journals: {completed} sales completed at the till ({completed_amount}), "
                  "{at_risk} really at risk ({at_risk_amount})")


def _print_lost_journal(sales: list[LostSale], tr: Tr) -> None:
    """The sales of lives whose journal was not given, each judged by whether its answer was delivered."""
    if not sales:
        return
    from possim.judging.checker import lost_journal_totals

    for sale in sales:
        row = sale.as_dict()
        click.echo("  " + tr(_LOST_SALE[sale.judgement], tid=row["tid"], life=row["life"], stan=row["stan"],
                             amount=row["amount"]))
    totals = lost_journal_totals(sales)
    done, risky = totals["completed"], totals["at_risk"]
    click.echo("  " + tr(_LOST_TOTALS, completed=done["sales"], completed_amount=done["amount"],
                         at_risk=risky["sales"], at_risk_amount=risky["amount"]))
