"""In-memory figures: a purchase against pyiso8583 and against its floor, a flaky day, long runs and their memory."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import floor
import iso8583
from common import ROOT, Row, interleaved, purchases, timed

from possim.protocol import codec
from possim.protocol import events as ev
from possim.scenario import load
from possim.simulation import simulate


def exchanged_frames() -> tuple[bytes, bytes]:
    """The 0200 and 0210 bytes one purchase of the benchmark scenario really exchanges."""
    result = simulate(purchases(1), "reversal")
    got = {}
    for stamped in result.trace.records:
        e = stamped.event
        if isinstance(e, ev.MsgReceived) and e.data and e.mti in ("0200", "0210"):
            got.setdefault(e.mti, bytes.fromhex(e.data))
    return got["0200"], got["0210"]


def codec_ceiling(frames: tuple[bytes, bytes], n: int) -> None:
    """pyiso8583 alone, per purchase: encode and decode the 0200 and the 0210 (fresh each time)."""
    docs = []
    for data in frames:
        doc = iso8583.decode(bytearray(data), codec.SPEC)[0]
        docs.append({k: v for k, v in doc.items() if k not in ("p", "1")})
    spec = codec.SPEC
    for _ in range(n):
        for doc in docs:
            raw, _ = iso8583.encode(dict(doc), spec)
            iso8583.decode(bytes(raw), spec)


def possim_codec(frames: tuple[bytes, bytes], n: int) -> None:
    """possim's codec per purchase: Message -> bytes -> Message for the same 0200 and 0210."""
    messages = [codec.decode(data) for data in frames]
    last = codec._last  # the one-frame memory, emptied so that every decode parses
    for _ in range(n):
        for msg in messages:
            data = codec.encode(msg)
            last.clear()
            codec.decode(data)


def run(rows: list[Row], quick: bool) -> None:
    """A purchase against pyiso8583 alone and against its floor; the codec alone; a flaky day."""
    count = 1000 if quick else 3000
    frames = exchanged_frames()
    scenario = purchases(count)
    simulate(scenario, "reversal")  # warm imports
    n = 2000 if quick else 5000
    floor_bodies, shape = floor.pieces(frames, n)
    t = interleaved({"ceiling": lambda: codec_ceiling(frames, n), "codec": lambda: possim_codec(frames, n),
                     "memory": lambda: simulate(scenario, "reversal"), **floor_bodies}, 3 if quick else 5)
    ceiling, fast, memory = n / t["ceiling"], n / t["codec"], count / t["memory"]
    rows.append(Row("possim codec alone, per purchase (0200 + 0210 encoded and decoded)", fast, "purchases/s",
                    ceiling, "pyiso8583 alone, same frames", note="informative: protocol/codec.py one pass"))
    rows.append(Row(f"in memory, {count:,} purchases of one terminal, policy reversal", memory, "purchases/s",
                    ceiling, "pyiso8583 alone encoding and decoding the purchase's 0200 and 0210", ">= 1.0 x pyiso8583",
                    memory / ceiling >= 1.0))
    rows.append(floor_row(floor.floor_us(t, n), 1e6 / memory, count, shape))
    flaky = load(ROOT / "scenarios" / "flaky-network.toml")
    simulate(flaky, "reversal")
    cold = sorted(timed(lambda: simulate(flaky, "reversal")) for _ in range(3))[1] * 1000
    rows.append(Row("flaky-network, 200 sales, policy reversal (cold: nothing cached between runs)", cold, "ms",
                    note="informative; no goal in the issue"))


def floor_row(us: dict[str, float], purchase_us: float, count: int, shape: dict[str, int]) -> Row:
    """A purchase's time against its floor: the pieces it cannot do without, each timed alone."""
    note = (f"floor = possim codec, 2 encodes + 2 decodes with MACs {us['codec']:.1f} us (of which the 4 AES-CMACs "
            f"{us['cmac']:.1f} us, counted once) + SQLite lookup ({shape['reads']} statement) {us['lookup']:.1f} us"
            f" + one SQLite transaction of the purchase's {shape['transaction_statements']} writes"
            f" {us['write']:.1f} us; "
            "the SQL recorded from a real purchase and replayed under fresh keys; a purchase's time is the whole "
            "simulate run (setup and the end-of-run check included) divided by its purchases")
    return Row(f"in memory, time per purchase vs its floor ({count:,} purchases, policy reversal)", purchase_us, "us",
               us["floor"], "floor: the same purchase's codec, MACs and SQLite, microbenchmarked", "<= 2.5 x floor",
               purchase_us <= 2.5 * us["floor"], note, {"floor_us": us, "sql_shape": shape})


def pyiso8583_purchases(count: int) -> float:
    """Seconds for pyiso8583 alone to encode and decode the 0200 and 0210 of ``count`` purchases,
    each purchase's own (its STAN, transmission time and RRN differ), built before the clock starts."""
    docs = []
    for data in exchanged_frames():
        doc = iso8583.decode(bytearray(data), codec.SPEC)[0]
        docs.append({k: v for k, v in doc.items() if k not in ("p", "1")})
    batch = []
    for i in range(count):
        for doc in docs:
            one = dict(doc, **{"11": f"{i % 999_999 + 1:06d}"})
            if "37" in one:
                one["37"] = f"{i:012d}"
            batch.append(one)
    spec = codec.SPEC

    def work() -> None:
        for doc in batch:
            raw, _ = iso8583.encode(dict(doc), spec)
            iso8583.decode(bytes(raw), spec)

    return timed(work)


def _bigrun(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bigrun.py"), *args], capture_output=True,
                          text=True, timeout=400, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bigrun {' '.join(args)} failed: {done.stderr[-300:]}")
    got: dict[str, Any] = json.loads(done.stdout)
    return got


def _scaled(full: str, measured: str) -> str:
    return "" if full == measured else f"; SCALED: measured at {measured}, not at the goal's {full}"


def long_runs(rows: list[Row], quick: bool) -> None:
    """The fleet against pyiso8583 on the same purchases, and the three memory goals (each in a process of its own)."""
    terminals = 1_000 if quick else 10_000
    fleet = _bigrun("fleet", str(terminals), "10")
    base = pyiso8583_purchases(fleet["purchases"])
    size = f"{terminals:,} terminals x 10 purchases"
    rows.append(Row(f"fleet of {size} in memory ([[terminals]], simulate_fleet, no trace), time", fleet["seconds"],
                    "s", base, f"pyiso8583 alone encoding and decoding the same {fleet['purchases']:,} purchases' "
                    "0200 and 0210", "<= 1.0 x pyiso8583", fleet["seconds"] <= base,
                    f"{fleet['purchases_per_s']:,.0f} purchases/s; peak RSS {fleet['max_rss_mib']:,.0f} MiB"
                    + _scaled("10,000 x 10", f"{terminals:,} x 10")))
    retained(rows, quick)
    one_terminal(rows, quick)
    many_terminals(rows, terminals, fleet, quick)


def retained(rows: list[Row], quick: bool) -> None:
    """What a finished run without a trace still holds when only its verdict is wanted (possim run --json)."""
    count = 5_000 if quick else 20_000
    got = _bigrun("retained", str(count))
    per = got["retained_bytes_per_purchase"]
    rows.append(Row(f"memory held per purchase once the run is over, no trace ({count:,} purchases of one terminal, "
                    "as possim run --json keeps it)", per, "bytes", target="<= 1 KiB", met=per <= 1024,
                    note=(f"resident set after the run (result kept, garbage collected) minus before it, "
                          f"{got['retained_bytes'] / 2**20:,.1f} MiB in all, journal and ledger rows included; "
                          "the end-of-day reconciliation is not kept (bigrun.py retained N reconciled keeps it)")))


def _line(points: list[tuple[float, float]], at: float) -> float:
    """The straight line through two measured (size, MiB) points, read at ``at``."""
    (x0, y0), (x1, y1) = points
    return y1 + (y1 - y0) / (x1 - x0) * (at - x1)


def one_terminal(rows: list[Row], quick: bool) -> None:
    """100,000 purchases of one terminal, the trace written as it goes: peak RSS of its own process."""
    full = 100_000
    sizes = (5_000, 10_000) if quick else (full,)
    runs = [_bigrun("one", str(n)) for n in sizes]
    last = runs[-1]
    note = (f"peak RSS of its own process (ru_maxrss); {last['trace_records']:,} trace lines "
            f"({last['trace_bytes'] / 2**20:,.0f} MiB) streamed to a file as possim run --json --trace does; "
            f"{last['seconds']:.1f} s")
    peak = last["max_rss_mib"]
    judged = peak
    if sizes[-1] != full:
        judged = _line([(n, r["max_rss_mib"]) for n, r in zip(sizes, runs, strict=True)], full)
        note += (f"{_scaled(f'{full:,}', f'{sizes[-1]:,}')}; EXTRAPOLATED: {judged:,.0f} MiB at {full:,}, on the "
                 f"line through the peaks at {sizes[0]:,} ({runs[0]['max_rss_mib']:,.0f} MiB) and {sizes[1]:,}; "
                 "the verdict is on the extrapolation")
    rows.append(Row(f"{sizes[-1]:,} purchases of ONE terminal in memory, trace written as it goes, peak memory",
                    peak, "MiB",
                    target=f"< 256 MiB at {full:,}", met=judged < 256, note=note))


def many_terminals(rows: list[Row], terminals: int, fleet: dict[str, Any], quick: bool) -> None:
    """10,000 terminals x 100 purchases: too long for the bench's budget (a million purchases), so two
    fleets of the same terminals at 5 and 10 purchases each are measured and the peak is read on the
    straight line through them, at 100 purchases each."""
    half = _bigrun("fleet", str(terminals), "5")
    full = terminals * 100
    points = [(float(half["purchases"]), half["max_rss_mib"]), (float(fleet["purchases"]), fleet["max_rss_mib"])]
    judged = _line(points, full)
    note = (f"peak RSS of its own process; SCALED: measured at {terminals:,} x 5 ({half['max_rss_mib']:,.0f} MiB, "
            f"{half['seconds']:.1f} s) and {terminals:,} x 10 ({fleet['max_rss_mib']:,.0f} MiB); "
            f"EXTRAPOLATED: {judged:,.0f} MiB at {terminals:,} x 100 on the straight line through them; "
            + ("the verdict is on the extrapolation" if not quick
               else "quick: fewer terminals than the goal's, no verdict"))
    rows.append(Row(f"{terminals:,} terminals x 10 purchases in memory (fleet, no trace), peak memory",
                    fleet["max_rss_mib"], "MiB", target="< 1 GiB at 10,000 x 100", met=None if quick else judged < 1024,
                    note=note,
                    extra={"extrapolated_mib": judged}))
