"""Secured listeners for the local broker: a throwaway CA, certificates, SASL users, client.json.

One secured broker serves every kind at once, so that a test module pays for one JVM start:

=================  ==============  =================================================
listener           protocol        what it checks
=================  ==============  =================================================
``PLAINTEXT``      PLAINTEXT       inter-broker traffic and the readiness probe
``SSL``            SSL             server authentication (the client trusts the CA)
``MTLS``           SSL             ``ssl.client.auth=required``: a client certificate
``SASL_PLAINTEXT`` SASL_PLAINTEXT  PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
``SASL_SSL``       SASL_SSL        the same mechanisms over TLS
``BADHOST``        SSL             a certificate for another host name (negative tests)
=================  ==============  =================================================

The controller listener stays PLAINTEXT on 127.0.0.1. ACLs are enforced (KRaft's
``StandardAuthorizer``): the test user, the client certificate's CN and the anonymous principal
of the plaintext and one-way TLS listeners are super users; a second SASL user,
``<user>-limited``, has no permission at all (for authorisation failure tests). SCRAM users are
created when the storage is formatted (``StorageTool format --add-scram``, the KRaft way); PLAIN
users live in the listener's JAAS configuration. Certificates come from ``trustme`` (on
``cryptography``); the broker reads a PKCS#12 keystore and a PEM truststore, the client the PEM
files named in ``client.json``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import BrokerStartError

__all__ = [
    "SASL_MECHANISMS",
    "SECURITY_KINDS",
    "BrokerSecurity",
    "check_security",
]

SECURITY_KINDS = ("plaintext", "ssl", "mtls", "sasl_plaintext", "sasl_ssl")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
CLIENT_FILE = "client.json"
SECURITY_DIR = "security"
_LAYOUT_FILE = "listeners.json"
# Listener name -> security protocol; PLAINTEXT and CONTROLLER are the node's own.
_LISTENERS = {
    "SSL": "SSL",
    "MTLS": "SSL",
    "SASL_PLAINTEXT": "SASL_PLAINTEXT",
    "SASL_SSL": "SASL_SSL",
    "BADHOST": "SSL",
}
_KIND_LISTENER = {
    "plaintext": "PLAINTEXT",
    "ssl": "SSL",
    "mtls": "MTLS",
    "sasl_plaintext": "SASL_PLAINTEXT",
    "sasl_ssl": "SASL_SSL",
}
# A name no certificate here is issued for, resolvable nowhere (RFC 6761's .invalid).
WRONG_HOST = "kafka.wrong-host.invalid"


def check_security(kind: str | None, sasl_mechanism: str | None) -> None:
    """Raise ``ValueError`` (with the choices) for an unknown kind or mechanism."""
    if kind is not None and kind not in SECURITY_KINDS:
        raise ValueError(f"security must be one of {', '.join(SECURITY_KINDS)}, not {kind!r}")
    if sasl_mechanism is not None and sasl_mechanism not in SASL_MECHANISMS:
        raise ValueError(
            f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, not {sasl_mechanism!r}"
        )


def extra_ports_needed(nodes: int) -> int:
    return len(_LISTENERS) * nodes


@dataclass(frozen=True)
class BrokerSecurity:
    """The secured listeners of a local cluster, their key material and one user's credentials.

    Files live under ``<state dir>/security``; :meth:`client_settings` gives what a client needs
    for each kind (the same keys as ``client.json``).
    """

    directory: Path
    ports: Mapping[int, Mapping[str, int]]
    """node id -> listener name -> port (``PLAINTEXT`` included)."""
    username: str
    password: str
    store_password: str
    kind: str
    sasl_mechanism: str

    def __repr__(self) -> str:  # the passwords stay out of reprs and test reports
        return (
            f"<BrokerSecurity {self.kind} ({self.sasl_mechanism}) user={self.username!r} "
            f"directory={str(self.directory)!r}>"
        )

    @property
    def limited_username(self) -> str:
        """A SASL user (same password) without any ACL: every topic operation is denied."""
        return f"{self.username}-limited"

    # -- creation -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state_dir: Path,
        *,
        kind: str,
        sasl_mechanism: str,
        plaintext_ports: Mapping[int, int],
        free_ports: Sequence[int],
    ) -> BrokerSecurity:
        """Generate the key material under ``state_dir/security`` and assign listener ports."""
        check_security(kind, sasl_mechanism)
        directory = state_dir / SECURITY_DIR
        directory.mkdir(parents=True, exist_ok=True)
        spare = iter(free_ports)
        ports = {
            nid: {"PLAINTEXT": port, **{name: next(spare) for name in _LISTENERS}}
            for nid, port in plaintext_ports.items()
        }
        security = cls(
            directory=directory,
            ports=ports,
            username="aiowriter-test",
            password=secrets.token_urlsafe(18),
            store_password=secrets.token_urlsafe(18),
            kind=kind,
            sasl_mechanism=sasl_mechanism,
        )
        security._write_key_material()
        layout = {
            "ports": {str(nid): p for nid, p in ports.items()},
            "username": security.username,
            "password": security.password,
            "store_password": security.store_password,
            "kind": kind,
            "sasl_mechanism": sasl_mechanism,
        }
        path = directory / _LAYOUT_FILE
        path.write_text(json.dumps(layout, indent=2) + "\n")
        path.chmod(0o600)
        return security

    @classmethod
    def load(cls, state_dir: Path) -> BrokerSecurity | None:
        """The security of the cluster in ``state_dir``; ``None`` for a plaintext-only one."""
        directory = state_dir / SECURITY_DIR
        try:
            layout = json.loads((directory / _LAYOUT_FILE).read_text())
        except FileNotFoundError:
            return None
        return cls(
            directory=directory,
            ports={int(nid): dict(p) for nid, p in layout["ports"].items()},
            username=layout["username"],
            password=layout["password"],
            store_password=layout["store_password"],
            kind=layout["kind"],
            sasl_mechanism=layout["sasl_mechanism"],
        )

    def _write_key_material(self) -> None:
        try:
            import trustme
        except ImportError:
            raise BrokerStartError(
                "a secured local broker needs `trustme` for its throwaway certificates: "
                "pip install 'aiowriter[testing]'"
            ) from None
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import (
            BestAvailableEncryption,
            load_pem_private_key,
            pkcs12,
        )

        ca = trustme.CA(organization_name="aiowriter test CA")
        # A second, unrelated CA: a client that trusts only it must reject the broker.
        other_ca = trustme.CA(organization_name="aiowriter untrusted CA")
        broker = ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
        wrong_host = ca.issue_cert(WRONG_HOST, common_name=WRONG_HOST)
        # An identity is needed: without one trustme writes an empty subjectAltName, which
        # Java's TLS stack rejects as malformed.
        client = ca.issue_cert(f"{self.username}.client.invalid", common_name=self.username)

        def keystore(leaf: Any, name: str) -> None:
            key = load_pem_private_key(leaf.private_key_pem.bytes(), None)
            cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
            data = pkcs12.serialize_key_and_certificates(
                b"broker",
                key,  # type: ignore[arg-type]
                cert,
                None,
                BestAvailableEncryption(self.store_password.encode()),
            )
            (self.directory / name).write_bytes(data)

        keystore(broker, "broker.p12")
        keystore(wrong_host, "wrong-host.p12")
        ca.cert_pem.write_to_path(str(self.directory / "ca.pem"))
        other_ca.cert_pem.write_to_path(str(self.directory / "untrusted-ca.pem"))
        client.cert_chain_pems[0].write_to_path(str(self.directory / "client.pem"))
        client.private_key_pem.write_to_path(str(self.directory / "client.key"))
        (self.directory / "client.key").chmod(0o600)

    # -- broker side --------------------------------------------------------------------------

    def node_settings(self, node_id: int, controller_port: int) -> dict[str, object]:
        """server.properties entries for node ``node_id`` (they override the plaintext ones)."""
        ports = self.ports[node_id]
        names = ["PLAINTEXT", *_LISTENERS]
        listeners = ",".join(f"{name}://127.0.0.1:{ports[name]}" for name in names)
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT", **_LISTENERS}
        d = self.directory
        settings: dict[str, object] = {
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": listeners,
            "listener.security.protocol.map": ",".join(f"{k}:{v}" for k, v in protocols.items()),
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": d / "broker.p12",
            "ssl.keystore.password": self.store_password,
            "ssl.key.password": self.store_password,
            # Trusted for client certificates (mTLS listener).
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": d / "ca.pem",
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.badhost.ssl.keystore.type": "PKCS12",
            "listener.name.badhost.ssl.keystore.location": d / "wrong-host.p12",
            "listener.name.badhost.ssl.keystore.password": self.store_password,
            "listener.name.badhost.ssl.key.password": self.store_password,
            # A failed login is answered at once: the default 100 ms delay buys nothing here.
            "connection.failed.authentication.delay.ms": 0,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # ANONYMOUS: the plaintext listeners (controller and inter-broker included) and TLS
            # without a client certificate; the certificate's CN is the mTLS principal.
            "super.users": f"User:ANONYMOUS;User:{self.username}",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),.*$/$1/,DEFAULT",
        }
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{self.username}="{self.password}" '
            f'user_{self.limited_username}="{self.password}";'
        )
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        for listener in ("sasl_plaintext", "sasl_ssl"):
            prefix = f"listener.name.{listener}"
            settings[f"{prefix}.sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            settings[f"{prefix}.plain.sasl.jaas.config"] = plain
            settings[f"{prefix}.scram-sha-256.sasl.jaas.config"] = scram
            settings[f"{prefix}.scram-sha-512.sasl.jaas.config"] = scram
        return settings

    def format_args(self) -> list[str]:
        """``StorageTool format`` arguments that create the SCRAM users (KRaft has no ZK)."""
        args: list[str] = []
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            for user in (self.username, self.limited_username):
                args += ["--add-scram", f"{mechanism}=[name={user},password={self.password}]"]
        return args

    # -- client side --------------------------------------------------------------------------

    def bootstrap_servers(self, listener: str) -> str:
        return ",".join(f"127.0.0.1:{ports[listener]}" for ports in self.ports.values())

    def client_settings(
        self, kind: str | None = None, sasl_mechanism: str | None = None
    ) -> dict[str, str]:
        """What a client needs for ``kind`` (default: the cluster's own kind), as in client.json."""
        kind = kind or self.kind
        mechanism = sasl_mechanism or self.sasl_mechanism
        check_security(kind, mechanism)
        listener = _KIND_LISTENER[kind]
        settings = {
            "bootstrap_servers": self.bootstrap_servers(listener),
            "security_protocol": {"MTLS": "SSL"}.get(listener, listener),
        }
        d = self.directory
        if kind in ("ssl", "mtls", "sasl_ssl"):
            settings["ssl_cafile"] = str(d / "ca.pem")
        if kind == "mtls":
            settings["ssl_certfile"] = str(d / "client.pem")
            settings["ssl_keyfile"] = str(d / "client.key")
        if kind.startswith("sasl"):
            settings["sasl_mechanism"] = mechanism
            settings["sasl_username"] = self.username
            settings["sasl_password"] = self.password
        return settings

    def negative_settings(self) -> dict[str, dict[str, str]]:
        """Deliberately wrong client settings, by case name, for failure tests."""
        d = self.directory
        sasl = self.client_settings("sasl_plaintext", "SCRAM-SHA-256")
        plain = self.client_settings("sasl_plaintext", "PLAIN")
        tls = self.client_settings("ssl")
        return {
            "wrong_password_scram": {**sasl, "sasl_password": secrets.token_urlsafe(18)},
            "wrong_password_plain": {**plain, "sasl_password": secrets.token_urlsafe(18)},
            "unknown_user": {**sasl, "sasl_username": "nobody-" + secrets.token_hex(4)},
            "no_permissions": {**sasl, "sasl_username": self.limited_username},
            "untrusted_ca": {**tls, "ssl_cafile": str(d / "untrusted-ca.pem")},
            "hostname_mismatch": {**tls, "bootstrap_servers": self.bootstrap_servers("BADHOST")},
            "mtls_without_certificate": {
                **tls,
                "bootstrap_servers": self.bootstrap_servers("MTLS"),
            },
            "tls_on_plaintext_port": {
                **tls,
                "bootstrap_servers": self.bootstrap_servers("PLAINTEXT"),
            },
            "sasl_plaintext_on_sasl_ssl_port": {
                **sasl,
                "bootstrap_servers": self.bootstrap_servers("SASL_SSL"),
            },
            "plaintext_on_tls_port": {
                "bootstrap_servers": self.bootstrap_servers("SSL"),
                "security_protocol": "PLAINTEXT",
            },
        }

    def write_client_json(self, state_dir: Path) -> Path:
        """Write ``client.json`` (owner-only: it holds a password) and return its path."""
        path = state_dir / CLIENT_FILE
        scratch = path.with_suffix(".tmp")
        scratch.touch(mode=0o600)
        scratch.write_text(json.dumps(self.client_settings(), indent=2) + "\n")
        scratch.replace(path)
        return path
