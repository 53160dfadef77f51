"""Real-time figures: possim over MQTT and TCP against raw baselines, at 1 and at 50 in flight.

Every baseline runs in the same bench run, in turns with possim's attempts, with the same
request/response sizes as possim's 0200/0210. MQTT: every attempt, possim's or the echo's, gets
a fresh Mosquitto (``possim.processes.broker.Broker``: possim's configuration, a free loopback port, ready
before the attempt, killed after); five turns each, medians. The echo is raw aiomqtt with its
default protocol and session settings, pipelined (no publish waits for its acknowledgement before
the next message is read) and with as many connections as possim opens for the same load. At 1
in flight possim is ``run_live`` (one terminal, one host, one process); at 50 in flight it is
``possim load``'s fleet (``possim.fleets.load.run_load``): 50 terminals, each with one purchase in flight
and the next one queued behind it, against one host in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiomqtt
from common import ROOT, Row, purchases
from inmemory import exchanged_frames

from possim.processes.broker import Broker
from possim.protocol import events as ev
from possim.protocol.framing import Deframer, frame
from possim.protocol.mqtt import NODELAY, BrokerAddress
from possim.running.realtime import run_mqtt, run_tcp

T = TypeVar("T")
#: Requests in flight for the concurrent rows: terminals in possim's fleet, outstanding requests in the baselines.
MANY = 50


def _bounded(work: Coroutine[Any, Any, T], seconds: float) -> T | None:
    """Run ``work`` to its end, or give up after ``seconds`` (then ``None``): a lost QoS 0 message
    would otherwise leave a request/response loop waiting for ever."""
    try:
        return asyncio.run(asyncio.wait_for(work, seconds))
    except TimeoutError:
        print(f"    (an attempt timed out after {seconds:g} s and is not counted)", flush=True)
        return None


def _rate(result: Any, count: int) -> float:
    """Purchases per second from the first request sent to the last outcome (connect and settle excluded)."""
    records = result.trace.records
    first = next(s.t for s in records if isinstance(s.event, ev.MsgSent))
    last = max(s.t for s in records if isinstance(s.event, ev.TxnOutcome))
    approved = sum(1 for s in records if isinstance(s.event, ev.TxnOutcome) and s.event.status == "approved")
    if approved != count:
        print(f"    ({approved} of {count} purchases approved in this attempt)", flush=True)
    return approved / (last - first)


def _load_rate(transport: str, count: int, in_flight: int, broker_url: str | None = None, qos: int = 1
               ) -> float | None:
    """possim's many-terminal path (``possim load``): ``in_flight`` terminals share ``count`` purchases,
    all queued at the start, so each terminal always has one in flight. Purchases per second from the
    start of the sales to the last outcome (connecting, settling and judging excluded); ``None`` if
    the attempt timed out."""
    from possim.fleets.load import LoadPlan, run_load

    rate = 1e6  # every sale is due at once; each terminal pays its share back to back
    plan = LoadPlan(terminals=in_flight, rate=rate, duration=count / rate, transport=transport,
                    broker_url=broker_url, qos=qos)
    report = _bounded(run_load(plan), 120)
    if report is None:
        return None
    if report.completed != count or not report.ok:
        print(f"    ({report.completed} of {count} purchases completed; settled={report.settled})", flush=True)
    return report.completed / report.sale_seconds


async def mqtt_echo(port: int, qos: int, count: int, in_flight: int, sizes: tuple[int, int],
                    connections: int = 1) -> float:
    """Raw aiomqtt request/response, pipelined: ``in_flight`` request slots, each answered at once.

    The clients are aiomqtt's defaults (MQTT 3.1.1, clean session, paho's window of 20 QoS 1
    messages in flight) with TCP_NODELAY, as possim's are. ``connections`` responders and as many
    requesters, as possim opens for the same load (run_live: one and one; possim load: 4 and 4 per
    host). Nothing waits for a PUBACK before reading the next message: every publish is handed to
    paho and the loop goes on reading (the path possim's own endpoint takes: ``protocol/mqtt.py``),
    and each client reads its arrivals from aiomqtt's ``messages``. Slot ``j`` has its own request
    and response topics, as each of possim's terminals has. Messages per second from the first
    request to the last response."""
    request, response = b"q" * sizes[0], b"r" * sizes[1]
    run = uuid.uuid4().hex[:8]
    responders = [_echo_client(port, f"bench-host-{i}-{run}") for i in range(connections)]
    requesters = [_echo_client(port, f"bench-term-{i}-{run}") for i in range(connections)]
    slots = min(in_flight, count)
    async with contextlib.AsyncExitStack() as stack:
        for client in (*responders, *requesters):
            await stack.enter_async_context(client)
        await responders[0].subscribe(f"bench-{run}/req/+", qos=qos)
        for j in range(slots):
            await requesters[j % connections].subscribe(f"bench-{run}/resp/{j}", qos=qos)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = {"to_send": count, "to_get": count}

        def send(j: int) -> None:
            left["to_send"] -= 1
            requesters[j % connections]._client.publish(f"bench-{run}/req/{j}", request, qos)

        async def serve() -> None:
            served = 0
            async for message in responders[0].messages:
                j = message.topic.value.rsplit("/", 1)[1]
                responders[served % connections]._client.publish(f"bench-{run}/resp/{j}", response, qos)
                served += 1
                if served == count:
                    return

        async def read(client: aiomqtt.Client) -> None:
            async for message in client.messages:
                left["to_get"] -= 1
                if left["to_get"] == 0:
                    done.set_result(loop.time())
                    return
                if left["to_send"] > 0:
                    send(int(message.topic.value.rsplit("/", 1)[1]))

        tasks = [asyncio.create_task(serve()), *(asyncio.create_task(read(c)) for c in requesters)]
        start = loop.time()
        for j in range(slots):
            send(j)
        try:
            end = await done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return count / (end - start)


async def tcp_echo(count: int, in_flight: int, sizes: tuple[int, int]) -> float:
    """Raw asyncio TCP request/response with the same 2-byte length framing and frame sizes."""
    response = frame(b"r" * sizes[1])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deframer = Deframer()
        try:
            while chunk := await reader.read(65536):
                writer.write(response * len(deframer.feed(chunk)))
        except (asyncio.CancelledError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = frame(b"q" * sizes[0])
    loop = asyncio.get_running_loop()
    start = loop.time()
    writer.write(request * min(in_flight, count))
    sent, got, deframer = min(in_flight, count), 0, Deframer()
    while got < count:
        n = len(deframer.feed(await reader.read(65536)))
        got += n
        more = min(n, count - sent)
        if more:
            writer.write(request * more)
            sent += more
    elapsed = loop.time() - start
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return count / elapsed


def iso8583sim(count: int, in_flight: int) -> dict[str, Any] | None:
    """iso8583sim's own host and load client in their own process; ``None`` if not installed."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "iso8583sim_load.py"), str(count), str(in_flight)],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode == 3:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"iso8583sim load failed: {done.stderr[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _echo_client(port: int, identifier: str) -> aiomqtt.Client:
    """An aiomqtt client with its defaults (MQTT 3.1.1, clean session) and TCP_NODELAY."""
    client = aiomqtt.Client("127.0.0.1", port, identifier=identifier, socket_options=NODELAY)
    client.pending_calls_threshold = 10**9  # no "pending publish calls" warnings: nothing is pending here
    return client


def _best_of(attempts: int, runs: dict[str, Callable[[], float | None]]) -> dict[str, list[float]]:
    """Each run ``attempts`` times in turns (A B A B), so machine noise hits all alike; timed-out attempts dropped."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(attempts):
        for name, run in runs.items():
            figure = run()
            if figure is not None:
                got[name].append(figure)
    return got


def _fresh_broker(run: Callable[[Broker], float | None]) -> Callable[[], float | None]:
    """``run`` against a Mosquitto of its own: started on a free loopback port, ready (it answers a
    connection) before ``run`` starts, killed after, so no run inherits another's sessions or queues."""
    def attempt() -> float | None:
        broker = Broker(persistent=False).start()
        try:
            return run(broker)
        finally:
            broker.close()
    return attempt


def _mqtt_row(goal: str, got: dict[str, list[float]], baseline_name: str, reps: int) -> Row:
    if not got["possim"] or not got["echo"]:
        missing = " and ".join(name for name in ("possim", "echo") if not got[name])
        return Row(goal, None, "purchases/s", note=f"every {missing} attempt timed out")
    mine, base = statistics.median(got["possim"]), statistics.median(got["echo"])
    note = (f"median of {len(got['possim'])} possim and {len(got['echo'])} echo runs of {reps}, in turns, each on a "
            f"fresh broker; possim {_spread(got['possim'])}, echo {_spread(got['echo'])}")
    return Row(goal, mine, "purchases/s", base, baseline_name, ">= 0.8 x raw aiomqtt echo", mine / base >= 0.8, note,
               {"possim_runs": got["possim"], "echo_runs": got["echo"]})


def _spread(figures: list[float]) -> str:
    return f"{min(figures):,.0f}..{max(figures):,.0f}/s"


def run_mqtt_rows(rows: list[Row], quick: bool) -> None:
    """1 and 50 in flight, QoS 0 and 1: possim against the pipelined raw echo, five turns each, medians."""
    from possim.fleets.load import CONNECTIONS

    reps = 2 if quick else 5
    one, many = (200, 600) if quick else (500, 2000)
    request, response = exchanged_frames()
    sizes = (len(request), len(response))
    scenario = purchases(one, every=0.0)
    for in_flight, count in ((1, one), (MANY, many)):
        for qos in (0, 1):
            if in_flight == 1:
                what = "run_live, one process: 1 host and 1 terminal connection"

                def mine(b: Broker, q: int = qos) -> float | None:
                    return _live_rate(run_mqtt(scenario, "reversal", 1, BrokerAddress("127.0.0.1", b.port), qos=q),
                                      one)
                connections = 1
            else:
                what = f"possim load: {MANY} terminals, {CONNECTIONS} host and {CONNECTIONS} terminal connections"

                def mine(b: Broker, q: int = qos) -> float | None:
                    return _load_rate("mqtt", many, MANY, b.url, qos=q)
                connections = CONNECTIONS

            def echo(b: Broker, q: int = qos, n: int = count, f: int = in_flight, c: int = connections
                     ) -> float | None:
                return _bounded(mqtt_echo(b.port, q, n, f, sizes, c), 60)

            got = _best_of(reps, {"possim": _fresh_broker(mine), "echo": _fresh_broker(echo)})
            rows.append(_mqtt_row(f"MQTT QoS {qos}, {in_flight} in flight, {count:,} purchases ({what})", got,
                                  f"raw aiomqtt echo, pipelined, {in_flight} in flight, {connections}+{connections} "
                                  f"connections, {sizes[0]}/{sizes[1]}-byte payloads", reps))


def _live_rate(work: Coroutine[Any, Any, Any], count: int) -> float | None:
    result = _bounded(work, 120)
    return None if result is None else _rate(result, count)


def run_tcp_rows(rows: list[Row], quick: bool) -> None:
    count = 300 if quick else 1000
    sizes = tuple(len(f) for f in exchanged_frames())
    scenario = purchases(count, every=0.0)
    have_sim = iso8583sim(10, 1) is not None

    def baseline(n: int, in_flight: int) -> float | None:
        if have_sim:
            got = iso8583sim(n, in_flight)
            return None if got is None else float(got["per_s"])
        return asyncio.run(tcp_echo(n, in_flight, sizes))  # type: ignore[arg-type]

    if have_sim:
        name, note = "iso8583sim's own MockHost and run_load", "best of 2 interleaved runs each; " \
            "iso8583sim's sample 0100 request"
    else:
        name, note = "raw asyncio TCP echo of the same frames", "iso8583sim is not installed: raw echo baseline"
    got = _best_of(2, {"possim": lambda: _live_rate(run_tcp(scenario, "reversal", 1), count),
                       "base": lambda: baseline(count, 1)})
    mine = max(got["possim"])
    rows.append(Row(f"TCP, 1 in flight, {count:,} purchases (run_live, one process)", mine, "purchases/s",
                    max(got["base"]), f"{name}, 1 in flight", ">= iso8583sim", mine >= max(got["base"]), note))
    echo = asyncio.run(tcp_echo(count, 1, sizes))  # type: ignore[arg-type]
    rows.append(Row("TCP, 1 in flight: raw asyncio echo of the same frames (a second, lower-level baseline)", mine,
                    "purchases/s", echo, "raw asyncio TCP echo, 2-byte framing", note="informative"))
    many = count * 3
    got = _best_of(2, {"possim": lambda: _load_rate("tcp", many, MANY), "base": lambda: baseline(many, MANY)})
    if not got["possim"]:
        rows.append(Row(f"TCP, {MANY} in flight", None, "purchases/s", note="every possim attempt timed out"))
        return
    mine = max(got["possim"])
    rows.append(Row(f"TCP, {MANY} in flight, {many:,} purchases (possim load: {MANY} terminals, one connection each)",
                    mine, "purchases/s", max(got["base"]), f"{name}, {MANY} in flight", ">= iso8583sim",
                    mine >= max(got["base"]), note))
