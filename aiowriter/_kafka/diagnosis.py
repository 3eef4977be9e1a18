"""Why a client could not connect: the typed security errors ``start()`` raises.

aiokafka's bootstrap logs each failed connection and then raises one generic
``KafkaConnectionError("Unable to bootstrap ...")``: a wrong password, an untrusted CA and a
stopped broker all look the same. When a start fails that way, one bounded probe of the first
bootstrap server (the same connection aiokafka makes, then a raw TLS look where that says
nothing) finds the cause, and the start raises :class:`AuthenticationError` or
:class:`TlsError` instead of :class:`BrokerUnavailableError` (which callers may retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator

from .._config import StreamingConfig
from .._exceptions import (
    BrokerUnavailableError,
    ConnectionSecurityError,
    TlsError,
    convert_kafka_error,
    map_kafka_errors,
    tls_verify_reason,
)

__all__ = ["diagnose_connect_failure", "explain_connect_failures"]

log = logging.getLogger("aiowriter.security")


class _RedactSaslExchange(logging.Filter):
    """aiokafka logs every request at DEBUG, SASL PLAIN's clear-text user and password included:
    replace the SASL exchange in those records, so debug logs never carry a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl(arg) for arg in args):
            record.args = tuple(
                f"{type(arg).__name__}(<redacted>)" if _is_sasl(arg) else arg for arg in args
            )
        return True


def _is_sasl(arg: object) -> bool:
    return type(arg).__name__.startswith("SaslAuthenticate")


# Installed once, on aiokafka's connection logger only (where requests are logged).
if not any(isinstance(f, _RedactSaslExchange) for f in logging.getLogger("aiokafka.conn").filters):
    logging.getLogger("aiokafka.conn").addFilter(_RedactSaslExchange())

# The probes are one connection per server: a few seconds are plenty on a live network, and a
# start that already failed should not be held up long by a silent one.
_PROBE_SECONDS = 5.0


@contextlib.asynccontextmanager
async def explain_connect_failures(config: StreamingConfig, context: str) -> AsyncIterator[None]:
    """:func:`map_kafka_errors` for client starts, with a diagnosed security cause if any."""
    try:
        with map_kafka_errors(context):
            yield
    except BrokerUnavailableError as exc:
        cause = await diagnose_connect_failure(config)
        if cause is None:
            raise
        message = f"{context}: {cause}"
        if isinstance(cause, TlsError):
            raise TlsError(message, reason=cause.reason) from exc
        raise type(cause)(message) from exc


async def diagnose_connect_failure(config: StreamingConfig) -> ConnectionSecurityError | None:
    """The security error behind a failed connection to ``config``'s bootstrap servers.

    ``None`` when the probes find none (the brokers are down, or a probe connects fine).
    Takes at most a few seconds in all.
    """
    try:
        async with asyncio.timeout(_PROBE_SECONDS):
            # Server by server, as aiokafka's bootstrap: the first may be down, the next answer.
            for server in config.bootstrap_servers.split(","):
                host, _, port = server.strip().rpartition(":")
                try:
                    found = await _probe(config, host, int(port))
                except Exception as exc:  # the probe must never hide the original failure
                    log.debug("probing %s failed: %s: %s", server, type(exc).__name__, exc)
                    continue
                if found is not None:
                    return found
    except TimeoutError:
        pass
    return None


async def _probe(config: StreamingConfig, host: str, port: int) -> ConnectionSecurityError | None:
    from aiokafka import errors as ak
    from aiokafka.conn import create_conn

    security = config.security
    protocol = security.security_protocol
    where = f"{host}:{port}"
    try:
        conn = await create_conn(
            host,
            port,
            client_id=config.producer.client_id,
            request_timeout_ms=int(_PROBE_SECONDS * 1000),
            **security.client_kwargs(),
        )
    except ssl.SSLCertVerificationError as exc:
        return _verify_error(where, exc, config)
    except ssl.SSLError as exc:
        return _tls_error(where, exc)
    except (ConnectionError, ak.KafkaConnectionError) as exc:
        if protocol in ("SSL", "SASL_SSL"):
            return await _tls_rejected(where, host, port, security.ssl_context, exc)
        if await _speaks_tls(host, port):
            return TlsError(
                f"{where} is a TLS listener but security_protocol is {protocol}: use "
                f"{'SASL_SSL' if protocol == 'SASL_PLAINTEXT' else 'SSL'} and set ssl_cafile",
                reason="tls_port",
            )
        return None
    except (ak.KafkaError, OSError) as exc:
        error = convert_kafka_error(exc, f"logging in to {where}")
        return error if isinstance(error, ConnectionSecurityError) else None
    conn.close()
    return None


def _verify_error(
    where: str, exc: ssl.SSLCertVerificationError, config: StreamingConfig
) -> TlsError:
    reason = tls_verify_reason(exc)
    if reason == "hostname_mismatch":
        hint = (
            "the broker's certificate is not issued for the address in bootstrap_servers; "
            "connect by a name the certificate lists"
        )
    else:
        hint = "the broker's certificate is not signed by a CA you trust; set ssl_cafile to its CA"
    detail = str(exc.verify_message).rstrip(".")
    return TlsError(f"TLS to {where} failed: {detail}: {hint}", reason=reason)


def _tls_error(where: str, exc: ssl.SSLError) -> TlsError:
    text = f"{exc.reason or ''} {exc}".upper()
    if "CERTIFICATE" in text and "ALERT" in text:
        return TlsError(
            f"the broker at {where} rejected the TLS connection ({exc.reason}): the listener "
            "needs a client certificate it trusts; set ssl_certfile and ssl_keyfile",
            reason="client_certificate_rejected",
        )
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER" in text or "EOF" in text:
        return _not_tls(where)
    return TlsError(f"TLS to {where} failed: {exc.reason or exc}", reason="handshake_failed")


def _not_tls(where: str) -> TlsError:
    return TlsError(
        f"{where} did not complete a TLS handshake: it is probably a plaintext listener; use "
        "security_protocol PLAINTEXT / SASL_PLAINTEXT, or the broker's TLS port",
        reason="not_tls",
    )


async def _tls_rejected(
    where: str, host: str, port: int, context: ssl.SSLContext | None, exc: BaseException
) -> TlsError | None:
    """aiokafka saw the connection close; see whether TLS itself was refused, and why."""
    if context is None:
        return None
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except ssl.SSLCertVerificationError as err:
        return TlsError(f"TLS to {where} failed: {err.verify_message}", reason="handshake_failed")
    except ssl.SSLError as err:
        return _tls_error(where, err)
    except ConnectionError:
        # Reset during the handshake: a plaintext listener reading a ClientHello as a request.
        return _not_tls(where)
    try:
        # With TLS 1.3 the server checks the client certificate after the client's handshake
        # is done, so its refusal arrives as an alert on the first read.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await reader.read(1)
    except ssl.SSLError as err:
        return _tls_error(where, err)
    except ConnectionError:
        return None
    finally:
        writer.close()
    log.debug("TLS to %s works on a fresh connection; aiokafka saw: %s", where, exc)
    return None


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether ``host:port`` completes a TLS handshake (no verification: only the protocol)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, ssl.SSLError):
        return False
    writer.close()
    return True
