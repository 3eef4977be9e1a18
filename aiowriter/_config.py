"""Configuration: one frozen, validated value object per concern.

Everything is checked when the object is built, so a wrong value fails at the line that made it,
with a message that names the field, rather than deep inside the producer later.
"""

from __future__ import annotations

import enum
import ssl
import types
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._checks import INT16_MAX, INT32_MAX, check_int, check_number, check_text
from ._exceptions import ConfigurationError, InvalidNameError
from ._names import validate_stream

__all__ = [
    "Compression",
    "ProducerSettings",
    "QueueLimits",
    "SecuritySettings",
    "StreamCreationStrategy",
    "StreamingConfig",
]

Compression = Literal["zstd", "lz4", "snappy", "gzip", "none"]
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_COMPRESSIONS = ("zstd", "lz4", "snappy", "gzip", "none")


class StreamCreationStrategy(enum.IntEnum):
    """How named streams map onto Kafka (the Stream API's ``StreamCreationStrategy``).

    The numbers are the server's configuration values.
    """

    PARTITION_BASED = 1
    """A stream is a partition of the data source's topic, chosen by ``partition_mappings``."""
    TOPIC_BASED = 2
    """A stream is a topic of its own, ``<data source>.<stream>`` (Support Library samples)."""


def _positive(name: str) -> Any:
    """A finite number > 0 (seconds): ints and floats, never bools, NaN or infinities."""

    def check(_inst: object, _attr: object, value: object) -> None:
        check_number(value, name, lo=0.0, lo_open=True, hi=1e9, error=ConfigurationError)

    return check


def _int_in(name: str, lo: int, hi: int = INT32_MAX) -> Any:
    """An ``int`` (not a bool or float) within ``lo .. hi`` (Kafka's int32 fields by default)."""

    def check(_inst: object, _attr: object, value: object) -> None:
        check_int(value, name, lo, hi, ConfigurationError)

    return check


def _bool(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} must be True or False, got {value!r}")

    return check


def _text(name: str, *, optional: bool = False) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if value is None and optional:
            return
        check_text(value, name, ConfigurationError)

    return check


def _instance(name: str, cls: type) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, cls):
            raise ConfigurationError(
                f"{name} must be a {cls.__name__} (e.g. {cls.__name__}()), "
                f"got {type(value).__name__}"
            )

    return check


@attrs.frozen(kw_only=True)
class ProducerSettings:
    """How records are produced. The defaults suit telemetry: nothing lost, nothing duplicated.

    ``acks="all"`` with idempotence means a broker acknowledgement is durable and retries never
    write a record twice; zstd is what the Stream API server itself produces with.
    """

    acks: Literal["all", 1, 0] = "all"
    enable_idempotence: bool = attrs.field(default=True, validator=_bool("enable_idempotence"))
    compression: Compression = "zstd"
    linger_ms: int = attrs.field(default=5, validator=_int_in("linger_ms", 0))
    """How long a partition's batch may wait for more records (ms) before it is sent; must be
    shorter than ``delivery_timeout``. ``flush()``, ``settle()`` and closing send at once,
    as Kafka's own flush does. While writer tasks keep the event loop busy writing small
    packets (a full batch holds 64 or more), a batch that is not full waits on, one
    ``linger_ms`` at a time, up to six times ``linger_ms`` in all (and at most half of
    ``delivery_timeout``): fuller batches, so less work per packet, when the loop is the
    limit. A paced writer that sleeps between bursts is not busy in this sense."""
    max_batch_bytes: int = attrs.field(default=128 * 1024, validator=_int_in("max_batch_bytes", 1))
    """Upper bound of one record batch sent to one partition."""
    max_request_size: int = attrs.field(
        default=1024 * 1024, validator=_int_in("max_request_size", 1)
    )
    """Largest serialized packet accepted (bytes); the broker's ``message.max.bytes`` must
    allow it."""
    delivery_timeout: float = attrs.field(default=30.0, validator=_positive("delivery_timeout"))
    """Seconds a packet may wait for its acknowledgement (queue wait included) before it fails."""
    request_timeout_ms: int = attrs.field(
        default=15_000, validator=_int_in("request_timeout_ms", 1)
    )
    client_id: str = attrs.field(default="aiowriter", validator=_text("client_id"))
    compress_in_threads: bool = attrs.field(default=True, validator=_bool("compress_in_threads"))
    """Let a native thread (one per event loop, ended when idle; ``aiowriter._kafka.offload``)
    compress zstd batches of 32 KB and more while the loop runs the writers and frames other
    batches; the loop compresses the rest. A batch of small packets (512 B or less on average)
    goes to the thread unless three wait for it already; one of larger packets only while the
    thread is idle (nothing queued or being compressed) and another stream has a batch in
    flight or another batch of its stream waits behind it (``Drainer.worth_offloading``): a
    stream of large packets written no faster than it drains is compressed on the loop.
    Needs the optional C
    extensions and a libzstd (the newest of the system's ``libzstd.so.1`` and the copy
    ``backports.zstd`` or Python 3.14's ``_zstd`` bundle); without them every batch is
    compressed on the loop, as with ``False``.
    Measured (interleaved runs on a 2-core machine shared with the broker, medians, ratio to
    the peer, loop -> thread, 4 / 16 streams): 3x3 ``write_data`` against raw aiokafka 0.70 ->
    0.95, 0.76 -> 0.78; 10x100 against librdkafka 0.92 -> 0.95, 0.66 -> 1.05. The thread
    uses a second core (and costs more CPU where the only libzstd is an old one: Debian 12's
    1.5.4 takes 1.3-1.6x the time of 1.5.7). ``False`` keeps every batch on the loop: one core
    in all."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.acks, bool) or self.acks not in ("all", 1, 0, -1):
            raise ConfigurationError(f"acks must be 'all', 1 or 0, got {self.acks!r}")
        if self.enable_idempotence and self.acks != "all":
            raise ConfigurationError(
                "enable_idempotence=True needs acks='all'; set acks='all' or disable idempotence"
            )
        if self.compression not in _COMPRESSIONS:
            raise ConfigurationError(
                f"compression must be one of {', '.join(_COMPRESSIONS)}, got {self.compression!r}"
            )
        if self.max_batch_bytes > self.max_request_size:
            raise ConfigurationError(
                f"max_batch_bytes ({self.max_batch_bytes}) cannot exceed max_request_size "
                f"({self.max_request_size})"
            )
        if self.linger_ms >= self.delivery_timeout * 1000:
            # A batch that lingers past the delivery timeout expires before it is ever sent:
            # every delivery would fail (or, with aiokafka's timers, never resolve).
            raise ConfigurationError(
                f"linger_ms ({self.linger_ms}) must be shorter than delivery_timeout "
                f"({self.delivery_timeout} s = {self.delivery_timeout * 1000:g} ms)"
            )


@attrs.frozen(kw_only=True)
class QueueLimits:
    """Bounds of the in-memory buffers between ``write_data`` and the producer.

    A stream's queue is full when either of its limits is reached, or when all queues together
    hold ``max_total_bytes``. Then ``write_data`` waits and ``write_data_nowait`` raises
    :class:`~aiowriter.BufferFullError`: memory stays bounded whatever the broker does.

    These bound packets not yet handed to the producer. Beyond them aiokafka holds at most about
    two batches (``ProducerSettings.max_batch_bytes`` each) per partition being written.

    ``max_bytes_per_stream`` is 8 MiB by default (64 full batches at the default 128 KiB):
    several seconds of a stream's data at telemetry rates, far more than the two or three
    batches that keep its drain busy. A deeper queue adds no throughput, only latency, and its
    packets land in fresh memory: when writers outrun the drain (large packets, compressing is
    the bottleneck), every page the queue grows into costs the event loop a page fault and the
    packets are cold in the cache when they are framed. Measured, 13 KB packets built from numpy
    arrays written flat out (interleaved pairs, 32 -> 8 MiB a stream): 4 streams 0.94 -> 0.27
    page faults a packet and 4 of 4 pairs faster (7.3-9.4k -> 8.3-10.5k packets/s), 16 streams
    1.87 -> 1.01 and 3 of 3 faster (8.2-9.0k -> 10.5-11.4k). Raise it for a stream that must ride
    out longer broker outages; ``max_total_bytes`` still bounds them all.
    """

    max_packets_per_stream: int = attrs.field(
        default=10000, validator=_int_in("max_packets_per_stream", 1, 2**62)
    )
    max_bytes_per_stream: int = attrs.field(
        default=8 * 1024 * 1024, validator=_int_in("max_bytes_per_stream", 1, 2**62)
    )
    max_total_bytes: int = attrs.field(
        default=256 * 1024 * 1024, validator=_int_in("max_total_bytes", 1, 2**62)
    )


@attrs.frozen(kw_only=True)
class SecuritySettings:
    """Passed through to the Kafka client for real clusters. Secrets never appear in ``repr``."""

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)
    sasl_mechanism: (
        Literal["PLAIN", "GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None
    ) = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = attrs.field(default=None, repr=False)
    sasl_kerberos_service_name: str = "kafka"
    sasl_oauth_token_provider: Any = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.security_protocol not in _PROTOCOLS:
            raise ConfigurationError(
                f"security_protocol must be one of {', '.join(_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.sasl_mechanism is not None and self.sasl_mechanism not in _MECHANISMS:
            raise ConfigurationError(
                f"sasl_mechanism must be None or one of {', '.join(_MECHANISMS)}, "
                f"got {self.sasl_mechanism!r}"
            )
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ConfigurationError(
                "ssl_context must be an ssl.SSLContext or None, "
                f"got {type(self.ssl_context).__name__}"
            )
        for name in ("sasl_plain_username", "sasl_plain_password"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, name, ConfigurationError)
        check_text(
            self.sasl_kerberos_service_name, "sasl_kerberos_service_name", ConfigurationError
        )
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ConfigurationError(
                f"security_protocol={self.security_protocol} needs sasl_mechanism"
            )
        if self.security_protocol.endswith("SSL") and self.ssl_context is None:
            raise ConfigurationError(
                f"security_protocol={self.security_protocol} needs ssl_context "
                "(e.g. aiokafka.helpers.create_ssl_context())"
            )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_plain_username,
                sasl_plain_password=self.sasl_plain_password,
                sasl_kerberos_service_name=self.sasl_kerberos_service_name,
                sasl_oauth_token_provider=self.sasl_oauth_token_provider,
            )
        return kwargs


def _freeze_mappings(value: Mapping[str, int] | None) -> Mapping[str, int]:
    """A read-only copy: the validated mapping cannot be changed behind the config's back."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"partition_mappings must be a mapping of stream name to partition, "
            f"got {type(value).__name__}"
        )
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class StreamingConfig:
    """Where and how to write: the Stream API server's options that shape the Kafka layout.

    Writer, readers and the Stream API server must agree on ``stream_creation_strategy`` and
    ``partition_mappings``: they decide where a stream's packets live.

    **Parameters:**

    * ``bootstrap_servers``: ``"host:port[,host:port...]"``.
    * ``stream_creation_strategy``: ``TOPIC_BASED`` (default, as the Support Library samples) or
      ``PARTITION_BASED`` (the server's code default; then streams need ``partition_mappings``).
    * ``partition_mappings``: stream name -> partition (1..N; 0 is the main stream's),
      PARTITION_BASED only. Unmapped streams go to the main stream, partition 0.
    * ``producer``, ``queues``, ``security``: see those classes.
    * ``provision_topics``: create missing topics with the partition counts the layout needs and
      check existing ones (default on).
    * ``replication_factor``: for created topics; ``None`` uses the broker's default.
    * ``check_content``: check that bytes handed in ready-made (whole ``Packet`` bytes,
      ``open_data.Packet.content``) are a well-formed message of their ``Packet.type`` before
      they are queued (default on). A layout met before (same type, length, tags and lengths;
      other values) is recognised in one comparison: about 1 µs for a 200-byte and 6-9 µs
      for a 13 KB packet; a new layout costs the full check, about 12 and 50-90 µs. Turn it off
      only for a trusted producer that passes bytes from a known-good encoder. Builder results
      and ``EncodedPacket`` are checked when made, whatever this says.
    """

    bootstrap_servers: str = attrs.field()
    stream_creation_strategy: StreamCreationStrategy = StreamCreationStrategy.TOPIC_BASED
    partition_mappings: Mapping[str, int] = attrs.field(factory=dict, converter=_freeze_mappings)
    producer: ProducerSettings = attrs.field(
        factory=ProducerSettings, validator=_instance("producer", ProducerSettings)
    )
    queues: QueueLimits = attrs.field(
        factory=QueueLimits, validator=_instance("queues", QueueLimits)
    )
    security: SecuritySettings = attrs.field(
        factory=SecuritySettings, validator=_instance("security", SecuritySettings)
    )
    provision_topics: bool = attrs.field(default=True, validator=_bool("provision_topics"))
    replication_factor: int | None = None
    check_content: bool = attrs.field(default=True, validator=_bool("check_content"))

    @bootstrap_servers.validator
    def _check_bootstrap(self, _attr: object, value: str) -> None:
        if isinstance(value, str):
            check_text(value, "bootstrap_servers", ConfigurationError)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                "bootstrap_servers must be a non-empty 'host:port[,host:port]' string, "
                f"got {value!r}"
            )
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigurationError(
                    f"bootstrap_servers entry {server.strip()!r} is not 'host:port' "
                    "(port 1 to 65535)"
                )

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.stream_creation_strategy, StreamCreationStrategy):
            try:
                object.__setattr__(
                    self,
                    "stream_creation_strategy",
                    StreamCreationStrategy(self.stream_creation_strategy),
                )
            except ValueError:
                raise ConfigurationError(
                    "stream_creation_strategy must be StreamCreationStrategy.TOPIC_BASED (2) or "
                    f"PARTITION_BASED (1), got {self.stream_creation_strategy!r}"
                ) from None
        mappings = self.partition_mappings
        if mappings and self.stream_creation_strategy is not StreamCreationStrategy.PARTITION_BASED:
            raise ConfigurationError(
                "partition_mappings only apply with stream_creation_strategy=PARTITION_BASED; "
                "with TOPIC_BASED every stream has a topic of its own"
            )
        seen: dict[int, str] = {}
        for stream, partition in mappings.items():
            try:
                validate_stream(stream)
            except InvalidNameError as exc:
                raise ConfigurationError(f"partition_mappings: {exc}") from None
            if stream == "":
                raise ConfigurationError(
                    "partition_mappings: the main stream '' always uses partition 0; remove it"
                )
            if (
                isinstance(partition, bool)
                or not isinstance(partition, int)
                or not 1 <= partition <= INT32_MAX
            ):
                raise ConfigurationError(
                    f"partition_mappings: stream {stream!r} -> {partition!r}: partitions must be "
                    f"integers from 1 to {INT32_MAX} (Kafka's int32; partition 0 is reserved for "
                    "the main stream)"
                )
            if partition in seen:
                raise ConfigurationError(
                    f"partition_mappings: streams {seen[partition]!r} and {stream!r} both map to "
                    f"partition {partition}; each stream needs a partition of its own"
                )
            seen[partition] = stream
        if self.replication_factor is not None and (
            isinstance(self.replication_factor, bool)
            or not isinstance(self.replication_factor, int)
            or not 1 <= self.replication_factor <= INT16_MAX
        ):
            raise ConfigurationError(
                f"replication_factor must be None (broker default) or 1 to {INT16_MAX} (Kafka's "
                f"int16), got {self.replication_factor!r}"
            )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client this config makes."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.producer.client_id,
            "request_timeout_ms": self.producer.request_timeout_ms,
            **self.security.client_kwargs(),
        }
