"""Wrong credentials and TLS mistakes on a real secured broker: typed errors from ``start()``,
fast, without retries, and without a secret in any repr, message or log record."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from aiowriter import (
    AuthenticationError,
    AuthorizationError,
    BrokerUnavailableError,
    ConnectionSecurityError,
    DataFormatManager,
    EncodedPacket,
    KafkaError,
    PacketWriter,
    ProducerSettings,
    SessionManager,
    TlsError,
    config_from_mapping,
)
from aiowriter.testing import LocalKafkaCluster

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent
# A bound against hangs only: each case fails in well under a second on an idle machine.
DEADLINE = 30.0

EXPECTED: dict[str, tuple[type[ConnectionSecurityError], str | None]] = {
    "wrong_password_scram": (AuthenticationError, None),
    "wrong_password_plain": (AuthenticationError, None),
    "unknown_user": (AuthenticationError, None),
    "untrusted_ca": (TlsError, "untrusted_certificate"),
    "hostname_mismatch": (TlsError, "hostname_mismatch"),
    "mtls_without_certificate": (TlsError, "client_certificate_rejected"),
    "plaintext_on_tls_port": (TlsError, "tls_port"),
    "sasl_plaintext_on_sasl_ssl_port": (TlsError, "tls_port"),
    "tls_on_plaintext_port": (TlsError, "not_tls"),
}


@pytest.fixture(scope="module")
def negative(kafka_secured_cluster: LocalKafkaCluster) -> dict[str, dict[str, str]]:
    assert kafka_secured_cluster.security is not None
    cases = kafka_secured_cluster.security.negative_settings()
    assert set(cases) == {*EXPECTED, "no_permissions"}
    return cases


def secrets_of(cluster: LocalKafkaCluster, settings: dict[str, str]) -> list[str]:
    assert cluster.security is not None
    found = [cluster.security.password, cluster.security.store_password]
    return [*found, settings["sasl_password"]] if "sasl_password" in settings else found


def full_text(exc: BaseException) -> str:
    """The error as a user sees it: message, repr and the whole chained traceback."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def failed_logins(cluster: LocalKafkaCluster) -> int:
    return cluster.log_file(1).read_text(errors="replace").count("Failed authentication with")


@pytest.mark.parametrize("case", sorted(EXPECTED))
async def test_writer_start_fails_fast_and_typed(
    case: str,
    negative: dict[str, dict[str, str]],
    kafka_secured_cluster: LocalKafkaCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = negative[case]
    error_type, reason = EXPECTED[case]
    config = config_from_mapping(settings)
    caplog.set_level(logging.DEBUG)
    before = failed_logins(kafka_secured_cluster)
    started = time.monotonic()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(error_type) as info:
            await PacketWriter(config).start()
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE
    error = info.value
    assert isinstance(error, KafkaError)
    assert not isinstance(error, BrokerUnavailableError)  # not something to retry
    assert error.retriable is False
    if reason is not None:
        assert isinstance(error, TlsError)
        assert error.reason == reason
    assert settings["bootstrap_servers"] in str(error)  # says where
    text = full_text(error) + caplog.text + repr(config) + str(config)
    for secret in secrets_of(kafka_secured_cluster, settings):
        assert secret not in text
    if error_type is AuthenticationError:
        # No retry storm: aiokafka's one bootstrap attempt plus the diagnosis probe.
        await asyncio.sleep(1.0)
        assert 1 <= failed_logins(kafka_secured_cluster) - before <= 4


@pytest.mark.parametrize("case", ["wrong_password_scram", "untrusted_ca", "plaintext_on_tls_port"])
async def test_managers_fail_typed_too(case: str, negative: dict[str, dict[str, str]]) -> None:
    config = config_from_mapping(negative[case])
    error_type, _ = EXPECTED[case]
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(error_type):
            await SessionManager(config).start()
        with pytest.raises(error_type):
            await DataFormatManager(config).start()


async def test_good_login_logs_no_secret(
    kafka_secured_cluster: LocalKafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """SASL PLAIN sends the password in a request aiokafka logs at DEBUG; it must be redacted."""
    settings = kafka_secured_cluster.client_settings("sasl_plaintext", "PLAIN")
    caplog.set_level(logging.DEBUG)
    config = config_from_mapping(settings)
    async with PacketWriter(config):
        pass
    assert "SaslAuthenticateRequest" in caplog.text  # the record is there, redacted
    assert settings["sasl_password"] not in caplog.text
    assert settings["sasl_password"] not in repr(config)


async def test_diagnosis_tries_every_bootstrap_server(negative: dict[str, dict[str, str]]) -> None:
    from aiowriter.testing._node import pick_free_ports

    (dead,) = pick_free_ports(1)
    settings = negative["wrong_password_scram"]
    servers = f"127.0.0.1:{dead},{settings['bootstrap_servers']}"
    config = config_from_mapping({**settings, "bootstrap_servers": servers})
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(AuthenticationError):
            await PacketWriter(config).start()


async def test_broker_down_is_still_unavailable(tmp_path: Path) -> None:
    """The diagnosis does not turn a stopped broker into a security error."""
    from aiowriter.testing._node import pick_free_ports

    (port,) = pick_free_ports(1)
    config = config_from_mapping(
        {"bootstrap_servers": f"127.0.0.1:{port}", "security_protocol": "PLAINTEXT"}
    )
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(BrokerUnavailableError):
            await PacketWriter(config).start()


def test_demo_cli_wrong_password(
    negative: dict[str, dict[str, str]], kafka_secured_cluster: LocalKafkaCluster, tmp_path: Path
) -> None:
    settings = negative["wrong_password_scram"]
    path = tmp_path / "client.json"
    path.write_text(json.dumps(settings))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    proc = subprocess.run(
        [sys.executable, "-m", "aiowriter", "demo", "--security-config", str(path)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "AuthenticationError" in proc.stderr
    for secret in secrets_of(kafka_secured_cluster, settings):
        assert secret not in proc.stdout + proc.stderr


def test_demo_cli_bad_security_config(tmp_path: Path) -> None:
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"bootstrap_servers": "127.0.0.1:1", "sasl_user": "x"}))
    proc = subprocess.run(
        [sys.executable, "-m", "aiowriter", "demo", "--security-config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "ConfigurationError" in proc.stderr
    assert "'sasl_user'" in proc.stderr


async def test_acl_denials_name_the_permission(negative: dict[str, dict[str, str]]) -> None:
    """A principal without ACLs: each start or write says which permission is missing."""
    settings = negative["no_permissions"]
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(AuthorizationError, match="IDEMPOTENT_WRITE"):
            await PacketWriter(config_from_mapping(settings)).start()
        with pytest.raises(AuthorizationError, match="CREATE permission") as info:
            await SessionManager(config_from_mapping(settings)).start()
        assert "topic(s) 'SessionInfo'" in str(info.value)
        # Without idempotence the producer starts; the topic creation is what is refused.
        plain = ProducerSettings(enable_idempotence=False, acks=1)
        ds = f"acl-{os.urandom(4).hex()}"
        async with PacketWriter(config_from_mapping(settings, producer=plain)) as writer:
            result = await writer.write_data(ds, "", "key", EncodedPacket("Marker", b"\x1a\x01x"))
    assert not result.success
    assert isinstance(result.error, AuthorizationError)
    assert f"create topic(s) {ds!r}, '{ds}_essential'" in str(result.error)
