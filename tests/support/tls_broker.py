"""A private KRaft broker whose client listener is SASL_SSL (PLAIN), its certificate from a private CA.

The certificates are made with the ``openssl`` command at start: a CA (``ca.pem``), the broker's key and
certificate for 127.0.0.1 signed by it (a PEM keystore, which Kafka reads directly), and a second CA
(``other_ca.pem``) that did not sign it. The inter-broker and controller listeners stay PLAINTEXT.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from tests.support.broker import BrokerError, KafkaBroker, free_ports

USER = "convowatch"


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("`openssl` not found: the TLS broker's certificates are made with it")
    res = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed:\n{res.stderr}")


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA valid for a day: ``<name>.pem`` and ``<name>.key`` in ``directory``."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN=convowatch test {name}",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


class TlsBroker(KafkaBroker):
    """``password`` is the SASL/PLAIN password of user :data:`USER`."""

    def __init__(self, password: str, **kwargs: Any) -> None:
        self.password = password
        super().__init__(**kwargs)
        self.pki = self.dir / "pki"
        self.ca_file = self.pki / "ca.pem"
        self.other_ca_file = self.pki / "other_ca.pem"
        internal = free_ports(1)[0]
        jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{password}";'
        port, cport = self.port, self.controller_port
        self.extra_config.update(
            {
                "listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},"
                f"CONTROLLER://127.0.0.1:{cport}",
                "advertised.listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}",
                "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "INTERNAL",
                "sasl.enabled.mechanisms": "PLAIN",
                "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.pki / "keystore.pem"),
            }
        )

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings that work: SASL_SSL, the CA, the right password."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.ca_file),
            "sasl.mechanism": "PLAIN",
            "sasl.username": USER,
            "sasl.password": self.password,
        }

    def _make_certificates(self) -> None:
        if (self.pki / "keystore.pem").is_file():
            return  # a restart keeps them
        self.pki.mkdir(parents=True, exist_ok=True)
        make_ca(self.pki, "ca")
        make_ca(self.pki, "other_ca")
        (self.pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "broker.key", "-out", "broker.csr", cwd=self.pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", "san.ext", "-out", "broker.pem", cwd=self.pki,
        )  # fmt: skip
        # Kafka's PEM keystore: the PKCS#8 key (as openssl 3 writes it), then the certificate
        keystore = (self.pki / "broker.key").read_text() + (self.pki / "broker.pem").read_text()
        (self.pki / "keystore.pem").write_text(keystore)

    def start(self) -> None:
        self._make_certificates()
        super().start()

    def _readiness_admin(self) -> AdminClient:
        return AdminClient({**self.client_config(), "log_level": 0})
