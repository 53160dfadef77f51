"""iso8583sim's own mock host and load client on loopback, bounded: the issue's TCP baseline.

Runs in its own process (its dependencies stay out of possim's). Prints JSON on stdout;
exit 3 when iso8583sim is not installed (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import asyncio
import json
import sys


async def main(count: int, concurrency: int) -> dict[str, float]:
    from iso8583sim.core.samples import sample_message
    from iso8583sim.net import ISO8583Client, MockHost, run_load
    from iso8583sim.wire import WireFormat, encode_message

    host = MockHost()
    await host.start("127.0.0.1", 0)
    try:
        report = await run_load(lambda: ISO8583Client("127.0.0.1", host.port, timeout=10.0), count, concurrency)
    finally:
        await host.stop()
    size = len(encode_message(sample_message(stan="000001"), WireFormat.ascii_binary()))
    return {"per_s": report.throughput, "responses": report.responses, "timeouts": report.timeouts,
            "errors": report.errors, "request_bytes": size}


if __name__ == "__main__":
    try:
        import iso8583sim  # noqa: F401
    except ImportError:
        sys.exit(3)
    print(json.dumps(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))))
