"""StreamingConfig from the settings operators hand over: a mapping (``client.json``) or env vars.

One set of setting names, the same everywhere (the README's "Connecting to a secured cluster"
table): in a mapping the lower-case name, in the environment ``KAFKA_`` plus the upper-case name.

=====================  ==========================================================================
``bootstrap_servers``  ``host:port[,host:port]`` (required)
``security_protocol``  ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``
``ssl_cafile``         PEM file of the CA(s) that signed the brokers' certificates (default: the
                       system's trusted CAs)
``ssl_certfile``       PEM client certificate, for listeners that require one (mutual TLS)
``ssl_keyfile``        PEM private key of ``ssl_certfile``
``ssl_password``       password of an encrypted ``ssl_keyfile``
``ssl_check_hostname`` ``true`` (default) / ``false``: check the broker's certificate names it
``sasl_mechanism``     ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512`` (SASL protocols)
``sasl_username``      SASL user
``sasl_password``      SASL password (never shown in reprs, logs or errors)
``client_id``          the Kafka client id (default ``aiowriter``)
=====================  ==========================================================================

librdkafka's dotted names (``bootstrap.servers``, ``ssl.ca.location``, ``sasl.username`` ...) are
accepted in mappings too, since the Stream API's own clients are configured with them.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._config import ProducerSettings, SecuritySettings, StreamingConfig
from ._exceptions import ConfigurationError

__all__ = [
    "SETTING_NAMES",
    "cli_connection",
    "config_from_env",
    "config_from_file",
    "config_from_mapping",
]

SETTING_NAMES = (
    "bootstrap_servers",
    "security_protocol",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "ssl_check_hostname",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "client_id",
)
_ALIASES = {
    "bootstrap.servers": "bootstrap_servers",
    "security.protocol": "security_protocol",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "client.id": "client_id",
}
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SECRETS = frozenset({"sasl_password", "ssl_password"})


def config_from_mapping(settings: Mapping[str, Any], **options: Any) -> StreamingConfig:
    """A :class:`StreamingConfig` from connection settings (see the module table).

    ``options`` are further :class:`StreamingConfig` arguments (``stream_creation_strategy``,
    ``queues`` ...). Unknown setting names are an error, so a typo is not silently ignored.
    """
    if not isinstance(settings, Mapping):
        raise ConfigurationError(
            f"connection settings must be a mapping, got {type(settings).__name__}"
        )
    values: dict[str, Any] = {}
    for raw_key, value in settings.items():
        key = _ALIASES.get(str(raw_key).lower(), str(raw_key).lower())
        if key not in SETTING_NAMES:
            raise ConfigurationError(
                f"unknown connection setting {raw_key!r}; known: {', '.join(SETTING_NAMES)}"
            )
        if value is not None and value != "":
            values[key] = value
    for key, value in values.items():
        if key != "ssl_check_hostname" and not isinstance(value, str):
            shown = "(hidden)" if key in _SECRETS else repr(value)
            raise ConfigurationError(f"connection setting {key} must be a string, got {shown}")
    if "bootstrap_servers" not in values:
        raise ConfigurationError("connection settings need bootstrap_servers ('host:port,...')")
    if "client_id" in values:
        if "producer" in options:
            raise ConfigurationError(
                "client_id is set in the settings and producer= is given too: set "
                "ProducerSettings(client_id=...) instead"
            )
        options["producer"] = ProducerSettings(client_id=values["client_id"])
    return StreamingConfig(
        bootstrap_servers=values["bootstrap_servers"],
        security=security_from_settings(values),
        **options,
    )


def config_from_env(environ: Mapping[str, str] | None = None, **options: Any) -> StreamingConfig:
    """A :class:`StreamingConfig` from ``KAFKA_<SETTING>`` environment variables
    (``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_PASSWORD`` ...).

    Other ``KAFKA_*`` variables are not settings and are ignored. ``environ`` defaults to
    ``os.environ``.
    """
    env = os.environ if environ is None else environ
    settings: dict[str, str] = {}
    for name in SETTING_NAMES:
        value = env.get(f"KAFKA_{name.upper()}", "").strip()
        if value:
            settings[name] = value
    if "bootstrap_servers" not in settings:
        raise ConfigurationError("KAFKA_BOOTSTRAP_SERVERS is not set ('host:port,...')")
    return config_from_mapping(settings, **options)


def config_from_file(path: str | os.PathLike[str], **options: Any) -> StreamingConfig:
    """A :class:`StreamingConfig` from a JSON file of connection settings (``client.json``)."""
    file = Path(path)
    try:
        settings = json.loads(file.read_text())
    except OSError as exc:
        raise ConfigurationError(f"cannot read connection settings {file}: {exc}") from None
    except ValueError as exc:
        raise ConfigurationError(f"{file} is not valid JSON: {exc}") from None
    return config_from_mapping(settings, **options)


def cli_connection(
    security_config: str | None, environ: Mapping[str, str] | None = None
) -> StreamingConfig | None:
    """The connection an ``aiowriter`` command was given: ``--security-config FILE``, else the
    ``KAFKA_*`` settings when any beyond the servers is set; ``None`` for neither (plaintext)."""
    if security_config:
        return config_from_file(security_config)
    env = os.environ if environ is None else environ
    if any(env.get(f"KAFKA_{name.upper()}", "").strip() for name in SETTING_NAMES[1:]):
        return config_from_env(env)
    return None


def security_from_settings(values: Mapping[str, Any]) -> SecuritySettings:
    """The :class:`SecuritySettings` for validated setting values (names as in the table)."""
    protocol = str(values.get("security_protocol", "PLAINTEXT")).upper()
    if protocol not in _PROTOCOLS:
        raise ConfigurationError(
            f"security_protocol must be one of {', '.join(_PROTOCOLS)}, got {protocol!r}"
        )
    tls = protocol.endswith("SSL")
    sasl = protocol.startswith("SASL")
    ssl_keys = [k for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if k in values]
    if ssl_keys and not tls:
        raise ConfigurationError(
            f"{', '.join(ssl_keys)} set but security_protocol is {protocol}: use SSL or SASL_SSL "
            "(or remove the ssl_* settings)"
        )
    sasl_keys = [k for k in ("sasl_mechanism", "sasl_username", "sasl_password") if k in values]
    if sasl_keys and not sasl:
        raise ConfigurationError(
            f"{', '.join(sasl_keys)} set but security_protocol is {protocol}: use "
            "SASL_PLAINTEXT or SASL_SSL (or remove the sasl_* settings)"
        )
    mechanism = None
    if sasl:
        mechanism = str(values.get("sasl_mechanism", "")).upper()
        if mechanism not in _MECHANISMS:
            raise ConfigurationError(
                f"security_protocol={protocol} needs sasl_mechanism, one of "
                f"{', '.join(_MECHANISMS)}; got {values.get('sasl_mechanism')!r}"
            )
        missing = [k for k in ("sasl_username", "sasl_password") if not values.get(k)]
        if missing:
            raise ConfigurationError(f"sasl_mechanism={mechanism} needs {' and '.join(missing)}")
    return SecuritySettings(
        security_protocol=protocol,  # type: ignore[arg-type]
        ssl_context=_ssl_context(values) if tls else None,
        sasl_mechanism=mechanism,  # type: ignore[arg-type]
        sasl_plain_username=values.get("sasl_username") if sasl else None,
        sasl_plain_password=values.get("sasl_password") if sasl else None,
    )


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _ssl_context(values: Mapping[str, Any]) -> ssl.SSLContext:
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if key in values and not Path(values[key]).is_file():
            raise ConfigurationError(f"{key}: no such file: {values[key]}")
    if "ssl_keyfile" in values and "ssl_certfile" not in values:
        raise ConfigurationError("ssl_keyfile needs ssl_certfile (the certificate of that key)")
    # As aiokafka.helpers.create_ssl_context: CERT_REQUIRED, and a given ssl_cafile is the only
    # trust anchor (the system's CAs are used only when none is given).
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=values.get("ssl_cafile")
        )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"ssl_cafile {values['ssl_cafile']}: not a PEM CA file ({exc})"
        ) from None
    if "ssl_certfile" in values:
        try:
            context.load_cert_chain(
                values["ssl_certfile"], values.get("ssl_keyfile"), values.get("ssl_password")
            )
        except (ssl.SSLError, OSError) as exc:
            # The password is not part of the message: only the files and OpenSSL's reason.
            raise ConfigurationError(
                f"ssl_certfile {values['ssl_certfile']} / ssl_keyfile "
                f"{values.get('ssl_keyfile', '(in the certificate file)')}: cannot load the "
                f"client certificate and key ({type(exc).__name__}: {exc.args[-1]})"
            ) from None
    context.check_hostname = _flag(values.get("ssl_check_hostname", True), "ssl_check_hostname")
    return context
