"""The secured broker, tried as an attacker would, against a real Mosquitto.

How "the message never arrived" is shown without sleeping: the attacker's publish is
answered (PUBACK) or its connection is dropped only after Mosquitto has routed or refused
the message, and Mosquitto handles packets one at a time. A legitimate marker published
*after* that, to the same subscriber, is therefore queued behind the forged message if it
had been let through. So each test waits for the marker and checks it came first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from possim.processes import keys
from possim.processes.broker import Broker, BrokerError, acl_text, host_accounts
from possim.protocol.mqtt import ALL_REQUESTS, requests_topic, responses_topic

VICTIM, ATTACKER = "POS00002", "POS00001"
RING = keys.derive(20261125, [ATTACKER, VICTIM])
#: Every account the secured broker has: the key file's, and the host shards' (with the host's password).
PASSWORDS = {**dict.fromkeys(host_accounts(RING.host_username), RING.host_password), **RING.accounts()}
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
_IDS = itertools.count()
WAIT = 10.0  # generous bound for a message that must arrive (a busy machine), never a sleep


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    b = Broker(state_dir=tmp_path_factory.mktemp("secured"), accounts=RING.accounts(),
               host_username=RING.host_username)
    b.start()
    yield b  # type: ignore[misc]
    b.stop()


def _client(broker: Broker, username: str | None, password: str | None) -> aiomqtt.Client:
    # A fresh client id each time: reusing one would take over (and disconnect) an open session.
    return aiomqtt.Client("127.0.0.1", broker.port, identifier=f"acl-test-{username}-{next(_IDS)}", username=username,
                          password=password, protocol=aiomqtt.ProtocolVersion.V5, socket_options=NODELAY)


@contextlib.asynccontextmanager
async def account(broker: Broker, username: str, *subscriptions: str) -> AsyncIterator[aiomqtt.Client]:
    """A connected client logged in with ``username``'s real password, subscribed to ``subscriptions``."""
    async with _client(broker, username, PASSWORDS[username]) as c:
        for topic in subscriptions:
            await c.subscribe(topic, qos=1)
        yield c


async def first_message(c: aiomqtt.Client) -> aiomqtt.Message:
    return await asyncio.wait_for(anext(aiter(c.messages)), WAIT)


async def attempt_publish(broker: Broker, username: str, topic: str, payload: bytes) -> bool:
    """Publish as ``username``; True if the broker then dropped the connection.

    Mosquitto 2.0 disconnects a client whose publish the ACL denies; a later version may
    keep it and answer PUBACK 135 instead. Either way the publish has been decided once
    this returns: the subscribe after it needs the broker to have read the publish first.
    """
    c = _client(broker, username, PASSWORDS[username])
    kicked = False
    try:
        async with c:
            await c.publish(topic, payload, qos=1)
            await c.subscribe(responses_topic(username), qos=1)
    except aiomqtt.MqttError:
        kicked = True
    # Private attribute: retrieve the drop's exception so asyncio does not log it
    disconnected = c._disconnected
    if disconnected.done() and not disconnected.cancelled():
        disconnected.exception()
    return kicked


# -- who may connect --------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("username", "password"), [(None, None), (VICTIM, "wrong"), ("POS00009", "x"),
                                                    (RING.host_username, RING.accounts()[VICTIM])])
async def test_anonymous_and_bad_logins_are_refused(secured: Broker, username: str | None,
                                                    password: str | None) -> None:
    with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
        async with _client(secured, username, password):
            pass


# -- what a terminal may do -------------------------------------------------------------------

@pytest.mark.asyncio
async def test_publish_to_another_terminals_request_topic_never_reaches_the_host(secured: Broker) -> None:
    async with account(secured, RING.host_username, ALL_REQUESTS) as host:
        await attempt_publish(secured, ATTACKER, requests_topic(VICTIM), b"forged 0400 naming POS00002")
        async with account(secured, VICTIM) as victim:
            await victim.publish(requests_topic(VICTIM), b"marker", qos=1)
        got = await first_message(host)
    assert (str(got.topic), got.payload) == (requests_topic(VICTIM), b"marker")


@pytest.mark.asyncio
async def test_publish_to_another_terminals_shard_request_topic_never_reaches_the_shard(secured: Broker) -> None:
    """With host shards a terminal publishes under ``shard/{k}/``: still only on its own request topic."""
    shard, topic = keys.host_account(RING.host_username, 1, 2), "possim/v1/shard/1/term/{}/req"
    async with account(secured, shard, "possim/v1/shard/1/term/+/req") as host:
        await attempt_publish(secured, ATTACKER, topic.format(VICTIM), b"forged 0400 naming POS00002")
        async with account(secured, VICTIM) as victim:
            await victim.publish(topic.format(VICTIM), b"marker", qos=1)
        got = await first_message(host)
    assert (str(got.topic), got.payload) == (topic.format(VICTIM), b"marker")


@pytest.mark.asyncio
async def test_publish_to_another_terminals_response_topic_never_reaches_it(secured: Broker) -> None:
    """A forged 0210 approval from another terminal's account is refused by the broker itself."""
    async with account(secured, VICTIM, responses_topic(VICTIM)) as victim:
        await attempt_publish(secured, ATTACKER, responses_topic(VICTIM), b"forged 0210 code 00")
        async with account(secured, RING.host_username) as host:
            await host.publish(responses_topic(VICTIM), b"marker", qos=1)
        got = await first_message(victim)
    assert (str(got.topic), got.payload) == (responses_topic(VICTIM), b"marker")


@pytest.mark.asyncio
async def test_a_forbidden_publish_costs_the_attacker_its_connection_or_nothing_else(secured: Broker) -> None:
    """Mosquitto 2.0 drops the connection; in any case the attacker can still reach its own topic later."""
    await attempt_publish(secured, ATTACKER, requests_topic(VICTIM), b"forged")
    async with account(secured, RING.host_username, ALL_REQUESTS) as host:
        assert await attempt_publish(secured, ATTACKER, requests_topic(ATTACKER), b"own") is False
        got = await first_message(host)
    assert (str(got.topic), got.payload) == (requests_topic(ATTACKER), b"own")


@pytest.mark.asyncio
@pytest.mark.parametrize("subscription", ["#", "possim/#", "possim/v1/term/+/req", "possim/v1/term/+/resp",
                                          f"possim/v1/term/{VICTIM}/resp", f"possim/v1/term/{VICTIM}/req"])
async def test_wildcards_and_other_terminals_topics_read_nothing(secured: Broker, subscription: str) -> None:
    """Subscribing is granted (Mosquitto checks reads per message) but no other terminal's traffic arrives."""
    async with account(secured, ATTACKER, subscription) as spy:
        async with account(secured, RING.host_username, ALL_REQUESTS) as host, account(
                secured, VICTIM, responses_topic(VICTIM)) as victim:
            await victim.publish(requests_topic(VICTIM), b"0200 with the victim's card number", qos=1)
            assert (await first_message(host)).payload == b"0200 with the victim's card number"
            await host.publish(responses_topic(VICTIM), b"0210 for the victim", qos=1)
            assert (await first_message(victim)).payload == b"0210 for the victim"
            await host.publish(responses_topic(ATTACKER), b"marker", qos=1)
        if subscription in ("#", "possim/#", "possim/v1/term/+/resp"):  # the marker is on a topic it may read
            got = await first_message(spy)
            assert (str(got.topic), got.payload) == (responses_topic(ATTACKER), b"marker")
        else:  # nothing it may read matches: prove the spy is alive and only its own response arrives
            await spy.subscribe(responses_topic(ATTACKER), qos=1)
            async with account(secured, RING.host_username) as host:
                await host.publish(responses_topic(ATTACKER), b"marker 2", qos=1)
            got = await first_message(spy)
            assert (str(got.topic), got.payload) == (responses_topic(ATTACKER), b"marker 2")


# -- what the host may do ---------------------------------------------------------------------

@pytest.mark.asyncio
async def test_host_reads_every_request_and_answers_each_terminal(secured: Broker) -> None:
    async with account(secured, RING.host_username, ALL_REQUESTS) as host, \
            account(secured, ATTACKER, responses_topic(ATTACKER)) as t1, \
            account(secured, VICTIM, responses_topic(VICTIM)) as t2:
        for term, tid in ((t1, ATTACKER), (t2, VICTIM)):
            await term.publish(requests_topic(tid), f"0200 from {tid}".encode(), qos=1)
            req = await first_message(host)
            assert (str(req.topic), req.payload) == (requests_topic(tid), f"0200 from {tid}".encode())
            await host.publish(responses_topic(tid), f"0210 for {tid}".encode(), qos=1)
            resp = await first_message(term)
            assert (str(resp.topic), resp.payload) == (responses_topic(tid), f"0210 for {tid}".encode())


@pytest.mark.asyncio
async def test_host_cannot_pose_as_a_terminal(secured: Broker) -> None:
    """The host account writes responses only: it cannot inject a request in a terminal's name."""
    async with account(secured, RING.host_username, ALL_REQUESTS) as host:
        # Another host account (a shard's, same rights): a second client of one account would take
        # over the first's session, as the broker names every client by its account.
        shard = keys.host_account(RING.host_username, 1, 2)
        await attempt_publish(secured, shard, requests_topic(VICTIM), b"forged request")
        async with account(secured, VICTIM) as victim:
            await victim.publish(requests_topic(VICTIM), b"marker", qos=1)
        got = await first_message(host)
    assert got.payload == b"marker"


# -- the files --------------------------------------------------------------------------------

def test_password_file_is_private_and_hashed(secured: Broker) -> None:
    text = secured.password_file.read_text()
    assert stat.S_IMODE(secured.password_file.stat().st_mode) == 0o600
    assert sorted(line.split(":")[0] for line in text.splitlines()) == sorted(PASSWORDS)
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())
    assert not any(password in text for password in PASSWORDS.values())


def test_config_refuses_anonymous_and_names_the_files(secured: Broker) -> None:
    config = secured.config.read_text()
    assert "allow_anonymous false" in config
    assert f"password_file {secured.password_file}" in config
    assert f"acl_file {secured.acl_file}" in config
    assert secured.acl_file.read_text() == acl_text(RING.host_username)


def test_anonymous_mode_stays_the_default(tmp_path: Path) -> None:
    b = Broker(state_dir=tmp_path)
    assert "allow_anonymous true" in b.config.read_text()
    assert not b.password_file.exists() and not b.acl_file.exists()


def test_accounts_without_the_host_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="no password for the host account 'possim-host'"):
        Broker(state_dir=tmp_path, accounts={VICTIM: "x"})


def test_passwords_that_would_break_the_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="printable, without spaces"):
        Broker(state_dir=tmp_path, accounts={"possim-host": "a\nevil:x"})
    assert not (tmp_path / "passwd").exists()


# -- TLS on the listener ----------------------------------------------------------------------

def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "possim test broker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "broker.crt", folder / "broker.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.asyncio
async def test_tls_listener_with_accounts(tmp_path: Path) -> None:
    """A terminal trusting the broker's certificate logs in and does its job; plain MQTT does not get in."""
    import ssl

    from possim.processes.broker import TlsFiles

    cert, key = _self_signed(tmp_path)
    b = Broker(state_dir=tmp_path / "state", accounts=RING.accounts(), host_username=RING.host_username,
               tls=TlsFiles(cert, key))
    assert f"certfile {cert}" in b.config.read_text()
    b.start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))

        def tls_client(user: str) -> aiomqtt.Client:
            return aiomqtt.Client("127.0.0.1", b.port, identifier=f"tls-{next(_IDS)}", username=user,
                                  password=RING.accounts()[user], protocol=aiomqtt.ProtocolVersion.V5, tls_context=ctx)

        async with tls_client(VICTIM) as term, tls_client(RING.host_username) as host:
            await term.subscribe(responses_topic(VICTIM), qos=1)
            await host.publish(responses_topic(VICTIM), b"0210 over TLS", qos=1)
            assert (await first_message(term)).payload == b"0210 over TLS"
        # Plain MQTT to a TLS listener never gets a CONNACK: the broker waits for a TLS
        # handshake that never comes. Nothing signals that, so the client's wait is bounded (2 s).
        plain = aiomqtt.Client("127.0.0.1", b.port, identifier=f"plain-{next(_IDS)}", username=VICTIM,
                               password=RING.accounts()[VICTIM], protocol=aiomqtt.ProtocolVersion.V5, timeout=2)
        with pytest.raises(aiomqtt.MqttError):
            async with plain:
                pass
    finally:
        b.stop()


def test_missing_tls_file_is_one_line(tmp_path: Path) -> None:
    from possim.processes.broker import TlsFiles

    with pytest.raises(BrokerError, match=r"TLS file .*nope\.pem does not exist"):
        Broker(state_dir=tmp_path, tls=TlsFiles(tmp_path / "nope.pem", tmp_path / "nope.key"))
