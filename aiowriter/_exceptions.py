"""Every error aiowriter raises derives from :class:`AiowriterError`.

The tree (``[retry]``: the same call may succeed later; otherwise fix the cause first)::

    AiowriterError
    ├── ConfigurationError        a StreamingConfig value is invalid (also a ValueError)
    ├── InvalidInputError         a call's argument is wrong; nothing was accepted (a ValueError):
    │   │                         wrong types, non-finite or negative deadlines, a call from
    │   │                         another thread or event loop than the writer's
    │   ├── InvalidNameError      data source / stream name is not a legal, layout-safe topic part
    │   ├── InvalidPacketError    not an Open Data packet, unknown Packet.type, undecodable bytes,
    │   │   │                     content that is not a well-formed message of its Packet.type
    │   │   ├── SessionKeyMismatchError   Packet.session_key differs from the record key
    │   │   └── PacketTooLargeError       larger than the producer's max request size
    │   └── EncodingError         a builder's values cannot be encoded (lengths, ranges, types,
    │                             text that is not UTF-8, times outside 1970..2554, nesting)
    ├── WriterClosedError         used before start() or after stop()
    ├── BufferFullError           write_*_nowait() found the stream's queue full       [retry]
    ├── TopicLayoutError          an existing topic breaks the Stream API layout
    ├── KafkaError                the broker or client failed       [retry if ``retriable``]
    │   ├── BrokerUnavailableError  no broker answered within the call's deadline       [retry]
    │   │   └── DeliveryTimeoutError  (also a DeliveryError, below)
    │   ├── ConnectionSecurityError the broker answered, but the secured connection failed
    │   │   ├── AuthenticationError     SASL login refused (password, user, mechanism)
    │   │   └── TlsError                TLS failed (``reason``: untrusted CA, host name, ...)
    │   ├── AuthorizationError    the principal lacks an ACL permission (topic, operation)
    │   └── DeliveryError         a packet was not acknowledged     [retry if ``retriable``]
    │       └── DeliveryTimeoutError  not acknowledged within the delivery timeout      [retry]
    ├── SessionError
    │   ├── SessionNotFoundError
    │   ├── SessionEndedError
    │   ├── SessionKeyConflictError  a create's session_key belongs to another session
    │   └── SessionConflictError  other processes kept changing the session (retries used up)
    ├── DataFormatError
    │   └── DataFormatNotFoundError
    └── aiowriter.testing.LocalKafkaError   the local Kafka harness (its own tree in
                                            aiowriter/testing/_errors.py)

aiokafka's own exceptions never escape: :func:`map_kafka_errors` converts them at the boundary
and chains the original (``raise ... from exc``).

Outages (docs/guides/services.md, "Failure timing"): every call that waits on the broker rides
out an outage shorter than its deadline and, when the deadline passes without an answer, fails
with a :class:`BrokerUnavailableError`: a :class:`DeliveryTimeoutError` where a packet was
handed over and its fate is unknown, the plain class otherwise. ``except
BrokerUnavailableError`` therefore catches every outage failure of every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator

__all__ = [
    "AiowriterError",
    "AuthenticationError",
    "AuthorizationError",
    "BrokerUnavailableError",
    "BufferFullError",
    "ConfigurationError",
    "ConnectionSecurityError",
    "DataFormatError",
    "DataFormatNotFoundError",
    "DeliveryError",
    "DeliveryTimeoutError",
    "EncodingError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidPacketError",
    "KafkaError",
    "PacketTooLargeError",
    "SessionConflictError",
    "SessionEndedError",
    "SessionError",
    "SessionKeyConflictError",
    "SessionKeyMismatchError",
    "SessionNotFoundError",
    "TlsError",
    "TopicLayoutError",
    "WriterClosedError",
]


class AiowriterError(Exception):
    """Root of every error raised by aiowriter."""


class ConfigurationError(AiowriterError, ValueError):
    """A configuration value is invalid; the message names the field and what to use instead."""


class InvalidInputError(AiowriterError, ValueError):
    """An argument is wrong. The call had no effect: nothing was queued or written."""


class InvalidNameError(InvalidInputError):
    """A data source or stream name cannot be used as (part of) a Stream API topic name."""


class InvalidPacketError(InvalidInputError):
    """The packet is not a usable Open Data packet."""


class SessionKeyMismatchError(InvalidPacketError):
    """``Packet.session_key`` is set and differs from the session key the record is keyed by."""


class PacketTooLargeError(InvalidPacketError):
    """The serialized packet exceeds the producer's maximum request size."""


class EncodingError(InvalidInputError):
    """Values given to a packet builder cannot be encoded as the Open Data schema requires."""


class WriterClosedError(AiowriterError):
    """The writer (or manager) is not running: call ``start()`` or use ``async with``."""


class BufferFullError(AiowriterError):
    """A ``*_nowait`` write found the stream's queue (or the global byte budget) full.

    Nothing was queued. Await the blocking variant, or retry after the queue drains.
    """


class TopicLayoutError(AiowriterError):
    """An existing Kafka topic does not have the shape the Stream API layout requires."""


class KafkaError(AiowriterError):
    """The Kafka client or broker failed.

    ``retriable`` is true where the same operation may succeed later (broker restarting,
    leader moving); false where retrying cannot help (authorisation, record too large).
    """

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class BrokerUnavailableError(KafkaError):
    """No broker answered within the call's deadline (or, for ``start()`` without
    ``wait_for_broker``, at the one attempt it makes). Retriable: the broker may come back."""

    retriable = True


class ConnectionSecurityError(KafkaError):
    """A broker answered, but the secured connection to it failed; retrying cannot help.

    Raised by ``start()`` as soon as the cause is known (no retries): fix the settings. The
    message never contains a password.
    """


class AuthenticationError(ConnectionSecurityError):
    """The broker refused the SASL login: wrong password, unknown user, or a mechanism the
    listener does not enable."""


class TlsError(ConnectionSecurityError):
    """The TLS connection failed. ``reason`` says why, one of:

    * ``"untrusted_certificate"``: the broker's certificate is not signed by a trusted CA
      (``ssl_cafile``);
    * ``"hostname_mismatch"``: the certificate is for another host than the bootstrap address;
    * ``"client_certificate_rejected"``: the listener requires a client certificate (mutual
      TLS) and got none, or one it does not trust (``ssl_certfile`` / ``ssl_keyfile``);
    * ``"tls_port"``: a plaintext client reached a TLS listener (use ``SSL`` / ``SASL_SSL``);
    * ``"not_tls"``: a TLS client reached a listener that does not speak TLS;
    * ``"handshake_failed"``: any other TLS failure.
    """

    def __init__(self, message: str, *, reason: str = "handshake_failed") -> None:
        super().__init__(message, retriable=False)
        self.reason = reason


class AuthorizationError(KafkaError):
    """The authenticated principal lacks a permission (ACL) the operation needs."""


class DeliveryError(KafkaError):
    """A packet was accepted by the writer but not acknowledged by the broker."""


class DeliveryTimeoutError(DeliveryError, BrokerUnavailableError):
    """A packet was not acknowledged within the configured delivery timeout.

    Whether the broker stored it is unknown (it may still arrive if the broker comes back).
    Also a :class:`BrokerUnavailableError`: the outage error of the calls that handed over a
    packet, so one ``except BrokerUnavailableError`` covers every call in an outage.
    """

    retriable = True


class SessionError(AiowriterError):
    """A session operation failed."""


class SessionNotFoundError(SessionError):
    """No session with that key is known (neither written here nor seen on ``SessionInfo``)."""


class SessionEndedError(SessionError):
    """The session has ended; it cannot be updated any more."""


class SessionKeyConflictError(SessionError):
    """``create_new_session(session_key=...)`` names a session that exists with other data
    (another data source, type or identifier): the key is not this session's to retry."""


class SessionConflictError(SessionError):
    """Other processes changed the session between every one of our attempts to write a change
    on fresh state; the last snapshot we wrote may have reverted theirs. Retriable."""


class DataFormatError(AiowriterError):
    """A data-format operation failed."""


class DataFormatNotFoundError(DataFormatError):
    """No data format with that id (or parameter list / event) is known for the data source."""


def convert_kafka_error(exc: BaseException, context: str) -> AiowriterError:
    """Return the aiowriter error for a foreign exception (aiokafka, OSError, timeouts)."""
    if isinstance(exc, AiowriterError):
        return exc
    # Imported here so that importing aiowriter does not pay for aiokafka's error module twice.
    from aiokafka import errors as ak

    detail = f"{context}: {type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(
        exc,
        ak.SaslAuthenticationFailed | ak.UnsupportedSaslMechanismError | ak.IllegalSaslStateError,
    ):
        return AuthenticationError(f"{detail} (check sasl_mechanism, sasl_username, password)")
    if isinstance(exc, ak.ClusterAuthorizationFailedError):
        return AuthorizationError(
            f"{detail} (an ACL denies the client's principal a cluster permission: the "
            "idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on a topic; "
            "ask the operator to grant it)"
        )
    if isinstance(exc, ak.TopicAuthorizationFailedError):
        return AuthorizationError(f"{detail} (an ACL denies the client's principal this topic)")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(detail, reason=tls_verify_reason(exc))
    if isinstance(
        exc,
        ak.KafkaConnectionError
        | ak.NoBrokersAvailable
        | ak.NodeNotReadyError
        | ak.RequestTimedOutError
        | ConnectionError,
    ):
        return BrokerUnavailableError(f"{detail} (is the broker running and reachable?)")
    if isinstance(exc, ak.KafkaTimeoutError | asyncio.TimeoutError | TimeoutError):
        return DeliveryTimeoutError(detail)
    if isinstance(exc, ak.MessageSizeTooLargeError | ak.RecordListTooLargeError):
        return DeliveryError(detail, retriable=False)
    if isinstance(exc, ak.KafkaError):
        return KafkaError(detail, retriable=bool(getattr(exc, "retriable", False)))
    if isinstance(exc, OSError):
        return BrokerUnavailableError(detail)
    return KafkaError(detail)


def tls_verify_reason(exc: ssl.SSLCertVerificationError) -> str:
    # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH (62) and X509_V_ERR_IP_ADDRESS_MISMATCH (64).
    return "hostname_mismatch" if exc.verify_code in (62, 64) else "untrusted_certificate"


@contextlib.contextmanager
def map_kafka_errors(context: str) -> Iterator[None]:
    """Convert aiokafka and network errors raised inside the block into aiowriter errors."""
    try:
        yield
    except AiowriterError:
        raise
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise convert_kafka_error(exc, context) from exc
