"""Host shards: which of K hosts owns a terminal id, and where its requests go.

The mapping is a pure function of the terminal id and K, the same in every process and on
every machine (CRC-32, not Python's salted ``hash``), so a terminal's requests always reach
the one host that holds its keys: idempotency (terminal id + STAN + field 7) and the order
of a terminal's messages stay within one ledger. Changing K moves terminals between hosts;
do it only with every ledger settled (see docs/fleets.md).

MQTT topics with K > 1 carry the shard, so each host subscribes to its own filter::

    possim/v1/shard/{k}/term/{tid}/req    terminal -> host k (host k: possim/v1/shard/{k}/term/+/req)
    possim/v1/term/{tid}/resp             host -> terminal (unchanged)

With K = 1 the topics are the classic ``possim/v1/term/{tid}/req``. Over TCP host k listens
on the base port + k.
"""

from __future__ import annotations

import zlib

ROOT = "possim/v1"


def shard_of(tid: str, shards: int) -> int:
    """The host (0 .. shards-1) that owns terminal ``tid``."""
    if shards <= 1:
        return 0
    return zlib.crc32(tid.encode("ascii", "replace")) % shards


def request_topic(tid: str, shards: int) -> str:
    """The MQTT topic terminal ``tid`` publishes its requests to."""
    if shards <= 1:
        return f"{ROOT}/term/{tid}/req"
    return f"{ROOT}/shard/{shard_of(tid, shards)}/term/{tid}/req"


def request_filter(shard: int, shards: int) -> str:
    """The MQTT topic filter host ``shard`` of ``shards`` subscribes to: its terminals' requests only."""
    if shards <= 1:
        return f"{ROOT}/term/+/req"
    return f"{ROOT}/shard/{shard}/term/+/req"


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/K"`` -> (k, K) with 0 <= k < K; ``ValueError`` with a one-line reason otherwise."""
    try:
        k_text, total_text = text.split("/")
        k, total = int(k_text), int(total_text)
    except ValueError:
        raise ValueError(f"shard {text!r}: expected k/K, e.g. 0/2") from None
    if total < 1 or not 0 <= k < total:
        raise ValueError(f"shard {text!r}: k must be in 0..K-1 and K at least 1")
    return k, total
