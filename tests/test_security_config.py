"""StreamingConfig from operator settings (mapping, client.json, environment); no broker needed."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
import trustme

from aiowriter import ConfigurationError, config_from_env, config_from_mapping
from aiowriter._config_sources import SETTING_NAMES, config_from_file
from aiowriter.testing import kafka as kafka_cli

SECRET = "s3cr3t-Pa55word"


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pem")
    ca = trustme.CA()
    client = ca.issue_cert("client.invalid")
    paths = {
        "ssl_cafile": directory / "ca.pem",
        "ssl_certfile": directory / "client.pem",
        "ssl_keyfile": directory / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ssl_cafile"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ssl_certfile"]))
    client.private_key_pem.write_to_path(str(paths["ssl_keyfile"]))
    return {k: str(v) for k, v in paths.items()}


def test_plaintext_minimal() -> None:
    config = config_from_mapping({"bootstrap_servers": "k1:9092,k2:9092"})
    assert config.bootstrap_servers == "k1:9092,k2:9092"
    assert config.security.security_protocol == "PLAINTEXT"
    assert config.security.ssl_context is None
    assert config.security.sasl_mechanism is None


def test_sasl_ssl_mapping(pem: dict[str, str]) -> None:
    config = config_from_mapping(
        {
            "bootstrap_servers": "k:9093",
            "security_protocol": "sasl_ssl",  # case-insensitive
            "ssl_cafile": pem["ssl_cafile"],
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "alice",
            "sasl_password": SECRET,
            "client_id": "logger-7",
        }
    )
    security = config.security
    assert security.security_protocol == "SASL_SSL"
    assert security.sasl_mechanism == "SCRAM-SHA-512"
    assert security.sasl_plain_username == "alice"
    assert security.sasl_plain_password == SECRET
    assert config.producer.client_id == "logger-7"
    context = security.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1  # exactly the given CA, not the system store
    kwargs = config.client_kwargs()
    assert kwargs["sasl_plain_password"] == SECRET
    assert kwargs["ssl_context"] is context
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


def test_mtls_and_options_pass_through(pem: dict[str, str]) -> None:
    from aiowriter import StreamCreationStrategy

    config = config_from_mapping(
        {"bootstrap_servers": "k:9094", "security_protocol": "SSL", **pem},
        stream_creation_strategy=StreamCreationStrategy.PARTITION_BASED,
        partition_mappings={"Chassis": 1},
        provision_topics=False,
    )
    assert config.security.security_protocol == "SSL"
    assert config.security.ssl_context is not None
    assert config.partition_mappings == {"Chassis": 1}
    assert config.provision_topics is False


def test_librdkafka_names_accepted(pem: dict[str, str]) -> None:
    config = config_from_mapping(
        {
            "bootstrap.servers": "k:9093",
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "bob",
            "sasl.password": SECRET,
            "ssl.ca.location": pem["ssl_cafile"],
        }
    )
    assert config.security.sasl_plain_username == "bob"
    assert config.security.sasl_mechanism == "PLAIN"


def test_environment(pem: dict[str, str]) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": "carol",
        "KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_SSL_CAFILE": pem["ssl_cafile"],
        "KAFKA_SSL_CHECK_HOSTNAME": "false",
        "KAFKA_REQUIRED": "1",  # not a connection setting: ignored
        "HOME": "/root",
    }
    config = config_from_env(env)
    assert config.bootstrap_servers == "k:9093"
    assert config.security.sasl_mechanism == "SCRAM-SHA-256"
    assert config.security.sasl_plain_username == "carol"
    assert config.security.ssl_context is not None
    assert config.security.ssl_context.check_hostname is False
    assert SECRET not in repr(config)


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(f"KAFKA_{name.upper()}", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env-host:9092")
    assert config_from_env().bootstrap_servers == "env-host:9092"
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    with pytest.raises(ConfigurationError, match="KAFKA_BOOTSTRAP_SERVERS"):
        config_from_env()


def test_client_json_file(tmp_path: Path, pem: dict[str, str]) -> None:
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"bootstrap_servers": "k:1", "security_protocol": "SSL", **pem}))
    assert config_from_file(path).security.security_protocol == "SSL"
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        config_from_file(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        config_from_file(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({}, "need bootstrap_servers"),
        ({"bootstrap_servers": "k:1", "sasl_user": "x"}, "unknown connection setting 'sasl_user'"),
        ({"bootstrap_servers": "k:1", "security_protocol": "TLS"}, "security_protocol must be"),
        ({"bootstrap_servers": "k:1", "sasl_username": "a"}, "use SASL_PLAINTEXT or SASL_SSL"),
        ({"bootstrap_servers": "k:1", "ssl_cafile": "/x"}, "use SSL or SASL_SSL"),
        (
            {"bootstrap_servers": "k:1", "security_protocol": "SASL_PLAINTEXT"},
            "needs sasl_mechanism",
        ),
        (
            {
                "bootstrap_servers": "k:1",
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "a",
            },
            "needs sasl_password",
        ),
        (
            {"bootstrap_servers": "k:1", "security_protocol": "SSL", "ssl_cafile": "/nope.pem"},
            "ssl_cafile: no such file",
        ),
        ({"bootstrap_servers": "nocolon"}, "not 'host:port'"),
        ({"bootstrap_servers": 9092}, "must be a string"),
    ],
)
def test_bad_settings_say_what_to_fix(settings: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        config_from_mapping(settings)


def test_errors_never_show_a_password(tmp_path: Path, pem: dict[str, str]) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    cases = [
        {"bootstrap_servers": "k:1", "sasl_password": SECRET},  # SASL setting on PLAINTEXT
        {"bootstrap_servers": "k:1", "security_protocol": "SASL_SSL", "sasl_password": SECRET},
        {
            "bootstrap_servers": "k:1",
            "security_protocol": "SSL",
            "ssl_certfile": pem["ssl_certfile"],
            "ssl_keyfile": str(bad_key),
            "ssl_password": SECRET,
        },
        {
            "bootstrap_servers": "k:1",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": 12345678,
        },
    ]
    for settings in cases:
        with pytest.raises(ConfigurationError) as info:
            config_from_mapping(settings)
        assert SECRET not in str(info.value)
        assert "12345678" not in str(info.value)


def test_local_kafka_cli_accepts_security_options() -> None:
    parser = kafka_cli._parser()
    args = parser.parse_args(["start", "--security", "sasl_ssl", "--sasl-mechanism", "PLAIN"])
    assert (args.security, args.sasl_mechanism) == ("sasl_ssl", "PLAIN")
    with pytest.raises(SystemExit):
        parser.parse_args(["start", "--security", "kerberos"])
