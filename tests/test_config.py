"""StreamingConfig, ProducerSettings, QueueLimits, SecuritySettings: validated at construction."""

from __future__ import annotations

import ssl

import attrs
import pytest

from aiowriter import (
    ConfigurationError,
    ProducerSettings,
    QueueLimits,
    SecuritySettings,
    StreamCreationStrategy,
    StreamingConfig,
)

BOOT = "127.0.0.1:9092"
PB = StreamCreationStrategy.PARTITION_BASED
TB = StreamCreationStrategy.TOPIC_BASED


# -- StreamingConfig ---------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = StreamingConfig(bootstrap_servers=BOOT)
    assert cfg.stream_creation_strategy is TB
    assert cfg.partition_mappings == {}
    assert cfg.provision_topics is True
    assert cfg.replication_factor is None
    assert cfg.producer == ProducerSettings()
    assert cfg.queues == QueueLimits()
    assert cfg.producer.compression == "zstd"
    assert cfg.producer.acks == "all"
    assert cfg.producer.enable_idempotence is True


def test_strategy_values_are_the_servers() -> None:
    assert int(StreamCreationStrategy.PARTITION_BASED) == 1
    assert int(StreamCreationStrategy.TOPIC_BASED) == 2


@pytest.mark.parametrize(("raw", "expected"), [(1, PB), (2, TB), (PB, PB), (TB, TB)])
def test_strategy_accepts_server_numbers(raw: int, expected: StreamCreationStrategy) -> None:
    cfg = StreamingConfig(bootstrap_servers=BOOT, stream_creation_strategy=raw)  # type: ignore[arg-type]
    assert cfg.stream_creation_strategy is expected


@pytest.mark.parametrize("raw", [0, 3, -1, "topic"])
def test_strategy_rejects_unknown(raw: object) -> None:
    with pytest.raises(ConfigurationError, match="stream_creation_strategy"):
        StreamingConfig(bootstrap_servers=BOOT, stream_creation_strategy=raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "servers", ["127.0.0.1:9092", "a:1,b:2", "kafka:9092, other:9093", "[::1]:9092"]
)
def test_bootstrap_servers_accepted(servers: str) -> None:
    assert StreamingConfig(bootstrap_servers=servers).bootstrap_servers == servers


@pytest.mark.parametrize(
    "servers", ["", "   ", "localhost", "host:", ":9092", "a:1,b", "a:x", 9092]
)
def test_bootstrap_servers_rejected(servers: object) -> None:
    with pytest.raises(ConfigurationError, match="bootstrap_servers"):
        StreamingConfig(bootstrap_servers=servers)  # type: ignore[arg-type]


def test_configuration_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="bootstrap_servers"):
        StreamingConfig(bootstrap_servers="")


def test_partition_mappings_valid() -> None:
    cfg = StreamingConfig(
        bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings={"a": 1, "b": 5}
    )
    assert dict(cfg.partition_mappings) == {"a": 1, "b": 5}


def test_partition_mappings_copied() -> None:
    source = {"a": 1}
    cfg = StreamingConfig(
        bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings=source
    )
    source["b"] = 2
    assert dict(cfg.partition_mappings) == {"a": 1}


def test_partition_mapping_to_zero_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"partition 0 is reserved"):
        StreamingConfig(
            bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings={"a": 0}
        )


@pytest.mark.parametrize("partition", [-1, 1.0, "1", True, None])
def test_partition_mapping_to_non_positive_int_rejected(partition: object) -> None:
    with pytest.raises(ConfigurationError, match="partition_mappings"):
        StreamingConfig(
            bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings={"a": partition}
        )  # type: ignore[dict-item]


def test_partition_mapping_duplicate_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"'a' and 'b' both map to partition 2"):
        StreamingConfig(
            bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings={"a": 2, "b": 2}
        )


def test_partition_mapping_of_main_stream_rejected() -> None:
    with pytest.raises(ConfigurationError, match="main stream"):
        StreamingConfig(
            bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings={"": 1}
        )


@pytest.mark.parametrize("stream", ["a.b", "a:b", "a b", "a*", 3])
def test_partition_mapping_bad_stream_name_rejected(stream: object) -> None:
    with pytest.raises(ConfigurationError, match="partition_mappings"):
        StreamingConfig(
            bootstrap_servers=BOOT, stream_creation_strategy=PB, partition_mappings={stream: 1}
        )  # type: ignore[dict-item]


def test_partition_mappings_need_partition_based() -> None:
    with pytest.raises(ConfigurationError, match="PARTITION_BASED"):
        StreamingConfig(bootstrap_servers=BOOT, partition_mappings={"a": 1})


@pytest.mark.parametrize("rf", [0, -1, 1.5, True, "3"])
def test_replication_factor_rejected(rf: object) -> None:
    with pytest.raises(ConfigurationError, match="replication_factor"):
        StreamingConfig(bootstrap_servers=BOOT, replication_factor=rf)  # type: ignore[arg-type]


def test_replication_factor_accepted() -> None:
    assert StreamingConfig(bootstrap_servers=BOOT, replication_factor=3).replication_factor == 3


def test_config_is_frozen() -> None:
    cfg = StreamingConfig(bootstrap_servers=BOOT)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.bootstrap_servers = "x:1"  # type: ignore[misc]


def test_client_kwargs() -> None:
    cfg = StreamingConfig(
        bootstrap_servers=BOOT,
        producer=ProducerSettings(client_id="me", request_timeout_ms=1234),
    )
    kwargs = cfg.client_kwargs()
    assert kwargs == {
        "bootstrap_servers": BOOT,
        "client_id": "me",
        "request_timeout_ms": 1234,
        "security_protocol": "PLAINTEXT",
    }


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        StreamingConfig(BOOT)  # type: ignore[misc]


# -- ProducerSettings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["max_batch_bytes", "max_request_size", "delivery_timeout", "request_timeout_ms"]
)
@pytest.mark.parametrize("value", [0, -1, True, "5"])
def test_producer_positive_fields(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        ProducerSettings(**{field: value})  # type: ignore[arg-type]


def test_producer_linger_non_negative() -> None:
    assert ProducerSettings(linger_ms=0).linger_ms == 0
    with pytest.raises(ValueError, match="linger_ms"):
        ProducerSettings(linger_ms=-1)


@pytest.mark.parametrize("acks", [2, "some", None])
def test_producer_acks_rejected(acks: object) -> None:
    with pytest.raises(ConfigurationError, match="acks"):
        ProducerSettings(acks=acks, enable_idempotence=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("acks", [1, 0])
def test_idempotence_needs_acks_all(acks: int) -> None:
    with pytest.raises(ConfigurationError, match="enable_idempotence"):
        ProducerSettings(acks=acks)  # type: ignore[arg-type]
    assert ProducerSettings(acks=acks, enable_idempotence=False).acks == acks  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", ["zstd", "lz4", "snappy", "gzip", "none"])
def test_compression_accepted(compression: str) -> None:
    assert ProducerSettings(compression=compression).compression == compression  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", ["brotli", "", None, "ZSTD"])
def test_compression_rejected(compression: object) -> None:
    with pytest.raises(ConfigurationError, match="compression"):
        ProducerSettings(compression=compression)  # type: ignore[arg-type]


def test_batch_cannot_exceed_request() -> None:
    with pytest.raises(ConfigurationError, match="max_batch_bytes"):
        ProducerSettings(max_batch_bytes=2_000_000, max_request_size=1_000_000)
    ok = ProducerSettings(max_batch_bytes=1_000_000, max_request_size=1_000_000)
    assert ok.max_batch_bytes == ok.max_request_size


# -- QueueLimits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["max_packets_per_stream", "max_bytes_per_stream", "max_total_bytes"]
)
@pytest.mark.parametrize("value", [0, -5, False, 1.5j])
def test_queue_limits_positive(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        QueueLimits(**{field: value})  # type: ignore[arg-type]


def test_queue_limits_defaults() -> None:
    q = QueueLimits()
    assert q.max_packets_per_stream == 10_000
    assert q.max_bytes_per_stream == 8 * 1024 * 1024
    assert q.max_total_bytes == 256 * 1024 * 1024


# -- SecuritySettings ------------------------------------------------------------------------------


def test_sasl_needs_mechanism() -> None:
    with pytest.raises(ConfigurationError, match="sasl_mechanism"):
        SecuritySettings(security_protocol="SASL_PLAINTEXT")


def test_ssl_needs_context() -> None:
    with pytest.raises(ConfigurationError, match="ssl_context"):
        SecuritySettings(security_protocol="SSL")


def test_secrets_not_in_repr() -> None:
    sec = SecuritySettings(
        security_protocol="SASL_SSL",
        ssl_context=ssl.create_default_context(),
        sasl_mechanism="PLAIN",
        sasl_plain_username="user",
        sasl_plain_password="hunter2",
    )
    text = repr(StreamingConfig(bootstrap_servers=BOOT, security=sec))
    assert "hunter2" not in text
    assert "user" in text
    kwargs = sec.client_kwargs()
    assert kwargs["sasl_plain_password"] == "hunter2"
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "PLAIN"
