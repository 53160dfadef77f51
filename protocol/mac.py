"""Message authentication codes for ISO 8583 frames: who may have built these bytes.

A reversal is money moving back, so a forged reversal is theft; a forged approval makes a
terminal hand over goods. Real terminals therefore carry a MAC on every message, computed
with a key shared only by that terminal and its host. This module is that MAC and nothing
else: bytes and a key in, eight bytes out. Where the MAC sits in a frame is the codec's job.

Algorithms (a small registry, ``ALGORITHMS``; all from the maintained ``cryptography``
library, none hand-rolled at the block-cipher level):

``aes-cmac`` (default)
    AES-CMAC, NIST SP 800-38B (RFC 4493), 16/24/32-byte key. The full 16-byte tag is
    truncated to its leftmost 8 bytes, which SP 800-38B allows (tags of at least 64 bits),
    because ISO 8583 field 64/128 holds 8 bytes. Chosen as the default: it is the current
    standard, has no padding ambiguity and needs no deprecated cipher.
``x9.19``
    ISO/IEC 9797-1 MAC algorithm 3 with padding method 1 (zeros), i.e. the ANSI X9.19
    "retail MAC" used by China UnionPay-style terminals, 16-byte double-length DES key
    K || K': single-DES CBC under K over every block, then the last block decrypted under
    K' and encrypted under K (the final step is one two-key 3DES-EDE operation). The DES
    primitive comes from ``cryptography.hazmat.decrepit``: the algorithm is kept for
    compatibility with CUP profiles, not recommended for new designs. Zero padding makes
    ``m`` and ``m + b"\\0"`` collide when they end mid-block; ISO 8583 frames are
    self-delimiting (the codec rejects trailing bytes), so no two valid frames collide that way.
    Used by terminal families other than CUP's own POS application, and by possim's CUP profile
    when a key file names it.
``cup-ecb``
    The CUP POS terminal MAC ("ECB" MAC of the CUP POS specification, as the open CUP terminal
    source computes it: ``CaoEnXin/LiaoYang_POS:Src/pospin.c``, ``CalMAC``), keyed with the MAC
    working key (MAK) the sign-on hands out: the data zero-padded to whole 8-byte blocks and all
    blocks XORed into one; that block written as 16 upper-case hex characters; the first 8 of
    them encrypted, the result XORed with the last 8, encrypted again; the first 8 hex characters
    of that are the MAC. An 8-byte MAK is single DES, a 16-byte one two-key 3DES-EDE. Weak by
    construction (XOR folding lets anyone who sees one MAC forge others with the same XOR), kept
    because it is what CUP terminals send.

Pure module: no I/O, no clock, no randomness (keys are made in ``possim.processes.keys``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: Length in bytes of every MAC this module produces (ISO 8583 field 64/128: 8 bytes).
MAC_LEN = 8
DEFAULT_ALGORITHM = "aes-cmac"
_DES_BLOCK = 8


@dataclass(frozen=True, slots=True)
class MacKey:
    """A terminal's MAC key: which algorithm, and the secret bytes (never printed in full)."""

    algorithm: str
    secret: bytes
    #: The key schedule, prepared once per key (``Algorithm.prepare``): every message of a
    #: terminal is MACed under the same key, and building the cipher costs more than using it.
    _prepared: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = ALGORITHMS.get(self.algorithm)
        if spec is None:
            raise ValueError(f"unknown MAC algorithm {self.algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})")
        if len(self.secret) not in spec.key_lengths:
            lengths = "/".join(str(n) for n in spec.key_lengths)
            raise ValueError(f"{self.algorithm} key must be {lengths} bytes, not {len(self.secret)}")
        object.__setattr__(self, "_prepared", spec.prepare(self.secret))

    def __repr__(self) -> str:
        """Keys end up in tracebacks and debug prints; show only the algorithm and length."""
        return f"MacKey({self.algorithm!r}, <{len(self.secret)} bytes>)"

    def __reduce__(self) -> tuple[type[MacKey], tuple[str, bytes]]:
        """Copies and pickles (worker processes) carry the algorithm and secret; the schedule is rebuilt."""
        return (MacKey, (self.algorithm, self.secret))

    def compute(self, data: bytes) -> bytes:
        return compute(self, data)

    def verify(self, data: bytes, tag: bytes) -> bool:
        return verify(self, data, tag)


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One registry entry: allowed key lengths, the key's schedule and the function computing the 8-byte MAC.

    ``prepare(secret)`` runs once per key; ``fn(prepared, data)`` once per message.
    """

    key_lengths: tuple[int, ...]
    prepare: Callable[[bytes], Any]
    fn: Callable[[Any, bytes], bytes]


def _aes_cmac_prepare(secret: bytes) -> cmac.CMAC:
    """A CMAC context keyed and fed nothing: each message MACs a ``copy()`` (cheaper than a new context)."""
    return cmac.CMAC(algorithms.AES(secret))


def _aes_cmac(prepared: cmac.CMAC, data: bytes) -> bytes:
    c = prepared.copy()
    c.update(data)
    return c.finalize()[:MAC_LEN]


def _pad_method_1(data: bytes) -> bytes:
    """ISO 9797-1 padding method 1: zeros up to a whole block (an empty input becomes one block)."""
    rest = -len(data) % _DES_BLOCK
    return data + b"\0" * rest if data else b"\0" * _DES_BLOCK


def _retail_prepare(secret: bytes) -> tuple[TripleDES, TripleDES]:
    """The two DES keys of the retail MAC: K alone (as 3DES K||K||K) and K||K'||K."""
    k, k2 = secret[:8], secret[8:]
    return TripleDES(k * 3), TripleDES(k + k2 + k)


def _retail_mac(prepared: tuple[TripleDES, TripleDES], data: bytes) -> bytes:
    single, double = prepared
    padded = _pad_method_1(data)
    head, last = padded[:-_DES_BLOCK], padded[-_DES_BLOCK:]
    chain = b"\0" * _DES_BLOCK
    if head:  # single-DES CBC under K (a 3DES key K||K||K is single DES) over all but the last block
        enc = Cipher(single, modes.CBC(chain)).encryptor()
        chain = (enc.update(head) + enc.finalize())[-_DES_BLOCK:]
    block = bytes(a ^ b for a, b in zip(chain, last, strict=True))
    # Last block: E_K(D_K'(E_K(x))) is exactly two-key 3DES-EDE with K||K'||K.
    final = Cipher(double, modes.ECB()).encryptor()  # noqa: S305 - one block, by definition of the algorithm
    return final.update(block) + final.finalize()


def _cup_ecb_prepare(secret: bytes) -> TripleDES:
    """The MAK as one block cipher: 8 bytes are single DES (K||K||K), 16 bytes two-key 3DES (K||K'||K)."""
    return TripleDES(secret * 3 if len(secret) == _DES_BLOCK else secret + secret[:_DES_BLOCK])


def _cup_ecb_mac(prepared: TripleDES, data: bytes) -> bytes:
    padded = _pad_method_1(data)
    folded = bytearray(_DES_BLOCK)
    for at in range(0, len(padded), _DES_BLOCK):
        for i, byte in enumerate(padded[at:at + _DES_BLOCK]):
            folded[i] ^= byte
    text = bytes(folded).hex().upper().encode("ascii")
    cipher = Cipher(prepared, modes.ECB())  # noqa: S305 - single blocks, by definition of the algorithm
    first = cipher.encryptor().update(text[:_DES_BLOCK])
    mixed = bytes(a ^ b for a, b in zip(first, text[_DES_BLOCK:], strict=True))
    second = cipher.encryptor().update(mixed)
    return second.hex().upper().encode("ascii")[:MAC_LEN]


ALGORITHMS: dict[str, Algorithm] = {
    "aes-cmac": Algorithm((16, 24, 32), _aes_cmac_prepare, _aes_cmac),
    "x9.19": Algorithm((16,), _retail_prepare, _retail_mac),
    "cup-ecb": Algorithm((8, 16), _cup_ecb_prepare, _cup_ecb_mac),
}


def compute(key: MacKey, data: bytes) -> bytes:
    """The 8-byte MAC of ``data`` under ``key``."""
    return ALGORITHMS[key.algorithm].fn(key._prepared, data if type(data) is bytes else bytes(data))


def verify(key: MacKey, data: bytes, tag: bytes) -> bool:
    """Whether ``tag`` is the MAC of ``data``; constant-time, so timing does not leak the right MAC."""
    return len(tag) == MAC_LEN and hmac.compare_digest(compute(key, data), tag)
