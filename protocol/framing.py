"""ISO 8583 over TCP: each message is preceded by a 2-byte big-endian length (the common
"2-byte binary header"; the header does not count itself). TCP is a byte stream, so the
receiver reassembles frames from whatever chunks arrive.

Each codec dialect (``protocol.dialects``) names its ``Framing``: ``LengthFraming`` for
possim's ASCII ISO 8583, ``CupFraming`` (length, TPDU, CUP header) for a CUP terminal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from possim.protocol.errors import ProtocolError

HEADER = 2
MAX_FRAME = 0xFFFF


def frame(data: bytes) -> bytes:
    if not 0 < len(data) <= MAX_FRAME:
        raise ProtocolError(f"message of {len(data)} bytes cannot be framed (1..{MAX_FRAME})")
    return len(data).to_bytes(HEADER, "big") + data


class Deframer:
    """Feed it stream chunks; it returns the complete messages they finish."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        out: list[bytes] = []
        while len(self._buffer) >= HEADER:
            length = int.from_bytes(self._buffer[:HEADER], "big")
            if length == 0:
                raise ProtocolError("zero-length frame")
            if len(self._buffer) < HEADER + length:
                break
            out.append(bytes(self._buffer[HEADER:HEADER + length]))
            del self._buffer[:HEADER + length]
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)


class Framing(Protocol):
    """How a dialect's messages travel on a byte stream: what goes around each one, and back.

    A TCP transport calls ``frame`` on every message it writes and feeds what it reads to one
    ``deframer()`` per connection. Both raise only ``ProtocolError``.
    """

    def frame(self, data: bytes) -> bytes: ...

    def deframer(self) -> StreamDeframer: ...


class StreamDeframer(Protocol):
    def feed(self, chunk: bytes) -> list[bytes]: ...

    @property
    def pending(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LengthFraming:
    """possim's "iso" framing: a 2-byte big-endian length, then the message (``frame``, ``Deframer``)."""

    def frame(self, data: bytes) -> bytes:
        return frame(data)

    def deframer(self) -> Deframer:
        return Deframer()


#: TPDU id of a CUP terminal message ("60": transaction TPDU).
TPDU_ID = 0x60
TPDU_LEN = 5
CUP_HEADER_LEN = 6
#: CUP application header: application 60 (POS), version 31, terminal status 0 / processing 0,
#: software sub-version 310000; terminal status 1 marks a test terminal (60 31 10 31 00 00).
CUP_HEADER = bytes.fromhex("603100310000")


@dataclass(frozen=True, slots=True)
class Tpdu:
    """The 5-byte TPDU in front of a CUP message: id 60, destination and source addresses (2 bytes each).

    A host answers with the two addresses swapped (``reply``).
    """

    destination: int = 0x0003
    source: int = 0x0000

    def __post_init__(self) -> None:
        for name, value in (("destination", self.destination), ("source", self.source)):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"TPDU {name} address {value} is not 2 bytes")

    def to_bytes(self) -> bytes:
        return bytes([TPDU_ID]) + self.destination.to_bytes(2, "big") + self.source.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Tpdu:
        if len(data) != TPDU_LEN or data[0] != TPDU_ID:
            raise ProtocolError(f"not a CUP TPDU: {data.hex()}")
        return cls(int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:5], "big"))

    def reply(self) -> Tpdu:
        return Tpdu(destination=self.source, source=self.destination)


@dataclass(frozen=True, slots=True)
class CupFraming:
    """A CUP terminal's TCP framing: 2-byte length, 5-byte TPDU, 6-byte header, then the message.

    The length is binary big-endian and counts the TPDU, the header and the message, not itself.
    ``frame`` puts this side's TPDU and header in front; the deframer checks the TPDU id and
    strips both, so what reaches the codec is the message from its MTI on (what is MACed).
    """

    tpdu: Tpdu = Tpdu()
    header: bytes = CUP_HEADER

    def __post_init__(self) -> None:
        if len(self.header) != CUP_HEADER_LEN:
            raise ValueError(f"CUP header must be {CUP_HEADER_LEN} bytes, not {len(self.header)}")

    def frame(self, data: bytes) -> bytes:
        if not data:
            raise ProtocolError("empty CUP message cannot be framed")
        return frame(self.tpdu.to_bytes() + self.header + data)

    def deframer(self) -> CupDeframer:
        return CupDeframer()

    def reply(self) -> CupFraming:
        """The host side: same header, TPDU addresses swapped."""
        return CupFraming(self.tpdu.reply(), self.header)


class CupDeframer:
    """Feed it stream chunks; it returns the CUP messages they finish, TPDU and header removed.

    ``last_tpdu`` and ``last_header`` are those of the last message returned (a host answers
    with ``last_tpdu.reply()``).
    """

    def __init__(self) -> None:
        self._inner = Deframer()
        self.last_tpdu: Tpdu | None = None
        self.last_header: bytes | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        return [self._strip(body) for body in self._inner.feed(chunk)]

    @property
    def pending(self) -> int:
        return self._inner.pending

    def _strip(self, body: bytes) -> bytes:
        prefix = TPDU_LEN + CUP_HEADER_LEN
        if len(body) <= prefix:
            raise ProtocolError(f"CUP frame of {len(body)} bytes has no message after TPDU and header")
        self.last_tpdu = Tpdu.from_bytes(body[:TPDU_LEN])
        self.last_header = body[TPDU_LEN:prefix]
        return body[prefix:]


def answer_framing(deframer: StreamDeframer | None, default: Framing) -> Framing:
    """How a host frames an answer on a connection: after a CUP request, with that request's TPDU
    (addresses swapped) and header, so the answer goes back to whoever the TPDU named; else ``default``.

    A terminal keeps one TPDU on its connection, so the last request read there names it.
    """
    if isinstance(deframer, CupDeframer) and deframer.last_tpdu is not None:
        return CupFraming(deframer.last_tpdu.reply(), deframer.last_header or CUP_HEADER)
    return default
