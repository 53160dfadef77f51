"""MAC algorithms against published vectors, and the codec's MAC in field 64/128."""

from __future__ import annotations

import copy
import pickle

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from possim.protocol import codec
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import ALGORITHMS, MacKey, compute, verify
from possim.protocol.messages import Message, OriginalData
from tests.protocol.test_codec import messages

X919_KEY = MacKey("x9.19", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"))
RFC4493_KEY = MacKey("aes-cmac", bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))
KEY_A = MacKey("aes-cmac", bytes(range(16)))
KEY_B = MacKey("aes-cmac", bytes(range(1, 17)))


# -- the algorithms ---------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "mac"), [
    # ISO/IEC 9797-1:2011 annex B.4 (algorithm 3, padding method 1) = the ANSI X9.19 example
    (b"Now is the time for all ", "A1C72E74EA3FA9B6"),
    (b"Now is the time for it", "2E2B1428CC78254F"),
])
def test_x919_published_vectors(data: bytes, mac: str) -> None:
    assert compute(X919_KEY, data).hex().upper() == mac


CUP_MAK = bytes.fromhex("0123456789ABCDEF")


def _des(key: bytes, block: bytes) -> bytes:
    """Single DES of one block (3DES with K||K||K), checked against FIPS 81's known answer below."""
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def test_the_des_block_the_reference_uses_is_des() -> None:
    # FIPS 81 appendix B: key 0123456789ABCDEF, "Now is t" -> 3FA40E8A984D4815
    assert _des(CUP_MAK, b"Now is t").hex().upper() == "3FA40E8A984D4815"


def _cup_ecb_reference(mak: bytes, data: bytes) -> bytes:
    """The CUP POS ECB MAC written out step by step from its description (protocol notes §7)."""
    data += b"\0" * (-len(data) % 8) if data else b"\0" * 8
    xor = bytes(8)
    for i in range(0, len(data), 8):
        xor = bytes(a ^ b for a, b in zip(xor, data[i:i + 8], strict=True))
    hexed = xor.hex().upper().encode()  # 16 characters
    step = _des(mak, hexed[:8])
    step = bytes(a ^ b for a, b in zip(step, hexed[8:], strict=True))
    return _des(mak, step).hex().upper().encode()[:8]


@given(st.binary(max_size=200))
def test_cup_ecb_is_the_step_by_step_reference(data: bytes) -> None:
    assert compute(MacKey("cup-ecb", CUP_MAK), data) == _cup_ecb_reference(CUP_MAK, data)
    # a double-length MAK with both halves equal is single DES under that half
    assert compute(MacKey("cup-ecb", CUP_MAK * 2), data) == compute(MacKey("cup-ecb", CUP_MAK), data)


def test_cup_ecb_mac_is_eight_hex_characters_and_folds_blocks() -> None:
    """What the terminal source sends: 8 ASCII hex characters; and its known weakness, kept on
    purpose: the blocks are XORed first, so two messages with the same fold share a MAC."""
    key = MacKey("cup-ecb", bytes(range(16)))
    mac = compute(key, b"0200 purchase of 123.45")
    assert len(mac) == 8 and mac.decode().isalnum() and mac.decode() == mac.decode().upper()
    assert compute(key, b"ABCDEFGH" + b"12345678") == compute(key, b"12345678" + b"ABCDEFGH")
    assert compute(key, b"ABCDEFGH") != compute(MacKey("cup-ecb", bytes(range(1, 17))), b"ABCDEFGH")


_NIST_M = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")


@pytest.mark.parametrize(("data", "tag"), [
    # NIST SP 800-38B AES-128 examples = RFC 4493 section 4 examples 1 to 4 (0, 16, 40, 64 bytes;
    # full tags; field 64 keeps the leftmost 8 bytes)
    (b"", "bb1d6929e95937287fa37d129b756746"),
    (_NIST_M[:16], "070a16b46b4d4144f79bdd9dd04a287c"),
    (_NIST_M[:40], "dfa66747de9ae63030ca32611497c827"),
    (_NIST_M, "51f0bebf7e3b9d92fc49741779363cfe"),
])
def test_aes_cmac_rfc4493_vectors_truncated(data: bytes, tag: str) -> None:
    for _ in range(2):  # the key's prepared schedule is reused, never consumed
        assert compute(RFC4493_KEY, data).hex() == tag[:16]


@given(secret=st.sampled_from([bytes(range(16)), bytes(range(24)), bytes(range(32))]),
       messages_=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_aes_cmac_is_cryptographys_cmac_message_after_message(secret: bytes, messages_: list[bytes]) -> None:
    """One key MACs many messages in turn; each MAC is a fresh ``cryptography`` CMAC's, truncated."""
    key = MacKey("aes-cmac", secret)
    for data in messages_:
        fresh = cmac.CMAC(algorithms.AES(secret))
        fresh.update(data)
        assert compute(key, data) == fresh.finalize()[:8]


@pytest.mark.parametrize("key", [RFC4493_KEY, X919_KEY])
def test_copied_and_pickled_keys_mac_alike(key: MacKey) -> None:
    """Keys cross process boundaries (worker pools) and get copied; equality ignores the prepared schedule."""
    for other in (pickle.loads(pickle.dumps(key)), copy.deepcopy(key), copy.copy(key)):
        assert other == key and hash(other) == hash(key)
        assert compute(other, b"0200 purchase") == compute(key, b"0200 purchase")


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@given(data=st.binary(max_size=300), flip=st.integers(0, 10_000))
def test_any_changed_byte_fails_verification(algorithm: str, data: bytes, flip: int) -> None:
    key = MacKey(algorithm, bytes(range(16)))
    tag = compute(key, data)
    assert len(tag) == 8 and verify(key, data, tag)
    if data:
        i = flip % len(data)
        forged = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        assert not verify(key, forged, tag)
    assert not verify(key, data, tag[:-1] + bytes([tag[-1] ^ 0x80]))
    assert not verify(key, data, tag[:7])


def test_another_key_gives_another_mac() -> None:
    assert compute(KEY_A, b"0200 purchase") != compute(KEY_B, b"0200 purchase")


@pytest.mark.parametrize(("algorithm", "secret", "reason"), [
    ("hmac-md5", bytes(16), "unknown MAC algorithm"),
    ("aes-cmac", bytes(15), "aes-cmac key must be 16/24/32 bytes, not 15"),
    ("x9.19", bytes(24), "x9.19 key must be 16 bytes, not 24"),
    ("cup-ecb", bytes(24), "cup-ecb key must be 8/16 bytes, not 24"),
])
def test_bad_keys_are_refused_with_one_line(algorithm: str, secret: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        MacKey(algorithm, secret)


def test_key_repr_hides_the_secret() -> None:
    assert repr(KEY_A) == "MacKey('aes-cmac', <16 bytes>)"
    assert "0102" not in repr(KEY_A)


# -- the codec with a key ---------------------------------------------------------------------

PURCHASE = Message(mti=M.PURCHASE, stan="000042", transmission="1125100000", tid="POS00001",
                   mid="MERCHANT0000001", pan="4000000000000002", processing_code="000000", amount=2500,
                   currency="978")
REVERSAL = Message(mti=M.REVERSAL, stan="000043", transmission="1125100100", tid="POS00001",
                   pan="4000000000000002", processing_code="000000", amount=2500, currency="978",
                   original=OriginalData("0200", "000042", "1125100000"))


def test_mac_goes_in_field_64_without_secondary_bitmap() -> None:
    plain, signed = codec.encode(PURCHASE), codec.encode(PURCHASE, KEY_A)
    assert signed[:4] == b"0200" and int(signed[4:20], 16) & 1  # bit 64 set in the primary bitmap
    assert len(signed) == len(plain) + 16
    assert signed[-16:] == compute(KEY_A, signed[:-16]).hex().upper().encode()


def test_mac_goes_in_field_128_with_secondary_bitmap() -> None:
    signed = codec.encode(REVERSAL, KEY_A)
    primary, secondary = int(signed[4:20], 16), int(signed[20:36], 16)
    assert primary & (1 << 63) and not primary & 1  # bit 1 (secondary bitmap) on, bit 64 off
    assert secondary & 1  # bit 128
    assert signed[-16:] == compute(KEY_A, signed[:-16]).hex().upper().encode()


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@given(msg=messages)
def test_round_trip_with_mac(algorithm: str, msg: Message) -> None:
    key = MacKey(algorithm, bytes(range(16)))
    data = codec.encode(msg, key)
    assert codec.decode(data, key) == msg
    assert codec.decode(data, {msg.tid: key}) == msg
    assert codec.decode(data) == msg  # keys not configured: the MAC field is ignored


@given(msg=messages)
def test_without_key_bytes_are_unchanged(msg: Message) -> None:
    """Keys off must be byte-identical to the codec without MACs: no field 64/128 at all."""
    data = codec.encode(msg)
    assert codec.encode(msg, None) == data
    assert not int(data[4:20], 16) & 1


@given(msg=messages, position=st.integers(0, 10_000), bit=st.integers(0, 6))
def test_any_tampered_byte_is_refused(msg: Message, position: int, bit: int) -> None:
    """Flip one bit anywhere: either the frame no longer parses, or its MAC no longer matches."""
    data = bytearray(codec.encode(msg, KEY_A))
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(ProtocolError) as err:
        codec.decode(bytes(data), KEY_A)
    if isinstance(err.value, codec.MacError):
        assert err.value.response_code == "63"
    else:
        assert err.value.response_code == "30"


def test_missing_mac_is_its_own_error_with_the_claimed_sender() -> None:
    with pytest.raises(codec.MacMissingError) as err:
        codec.decode(codec.encode(PURCHASE), {"POS00001": KEY_A})
    assert err.value.response_code == codec.SECURITY_VIOLATION == "63"
    assert err.value.message == PURCHASE
    assert str(err.value) == "MTI 0200 from 'POS00001' STAN 000042: no MAC"


def test_mac_under_another_key_is_wrong() -> None:
    with pytest.raises(codec.MacMismatchError) as err:
        codec.decode(codec.encode(REVERSAL, KEY_B), {"POS00001": KEY_A})
    assert err.value.message == REVERSAL
    assert isinstance(err.value, ProtocolError)  # a terminal catching ProtocolError ignores it


def test_forged_field_41_is_verified_with_the_named_terminals_key() -> None:
    """An attacker with its own key naming a victim's terminal id fails against the victim's key."""
    forged = Message(**{**_fields(REVERSAL), "amount": 1})
    with pytest.raises(codec.MacMismatchError):
        codec.decode(codec.encode(forged, KEY_B), {"POS00001": KEY_A, "POS00002": KEY_B})


def test_unknown_terminal_cannot_be_verified() -> None:
    with pytest.raises(codec.UnknownTerminalError) as err:
        codec.decode(codec.encode(PURCHASE, KEY_A), {"POS00002": KEY_A})
    assert err.value.message.tid == "POS00001"


def test_non_hex_mac_is_wrong_not_a_crash() -> None:
    data = codec.encode(PURCHASE, KEY_A)
    with pytest.raises(codec.MacMismatchError):
        codec.decode(data[:-16] + b"ZZZZZZZZZZZZZZZZ", KEY_A)
    with pytest.raises(codec.MacMismatchError):
        codec.decode(data[:-16] + data[-16:].lower(), KEY_A)


def test_trailing_bytes_after_the_mac_are_a_format_error() -> None:
    with pytest.raises(ProtocolError) as err:
        codec.decode(codec.encode(PURCHASE, KEY_A) + b"00", KEY_A)
    assert not isinstance(err.value, codec.MacError)


def test_format_errors_stay_format_errors_with_keys() -> None:
    with pytest.raises(ProtocolError) as err:
        codec.decode(b"0200garbage", KEY_A)
    assert not isinstance(err.value, codec.MacError)
    assert err.value.response_code == "30"


def _fields(msg: Message) -> dict[str, object]:
    return {f: getattr(msg, f) for f in Message.__dataclass_fields__}
