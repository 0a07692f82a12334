"""A private KRaft broker whose only client listener is SASL_PLAINTEXT with SCRAM-SHA-512.

The SCRAM credentials are written at format time (``kafka-storage format --add-scram``, KIP-900): KRaft
has no ZooKeeper to hold them, and the broker needs its own to authenticate on the inter-broker listener.
The controller listener stays PLAINTEXT.
"""

from __future__ import annotations

import subprocess
from typing import Any

from confluent_kafka.admin import AdminClient

from tests.support.broker import BrokerError, KafkaBroker, _cluster_id

MECHANISM = "SCRAM-SHA-512"
ADMIN_USER, ADMIN_PASSWORD = "broker-admin", "admin-Secret-7f3e"


class ScramBroker(KafkaBroker):
    """``users`` maps user name to password; every user gets a SCRAM-SHA-512 credential."""

    def __init__(self, users: dict[str, str], **kwargs: Any) -> None:
        self.users = {ADMIN_USER: ADMIN_PASSWORD, **users}
        super().__init__(**kwargs)
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{ADMIN_PASSWORD}";'
        )
        port, cport = self.port, self.controller_port
        self.extra_config.update(
            {
                "listeners": f"SASL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
                "advertised.listeners": f"SASL://127.0.0.1:{port}",
                "listener.security.protocol.map": "SASL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "SASL",
                "sasl.enabled.mechanisms": MECHANISM,
                "sasl.mechanism.inter.broker.protocol": MECHANISM,
                "listener.name.sasl.sasl.enabled.mechanisms": MECHANISM,
                "listener.name.sasl.scram-sha-512.sasl.jaas.config": jaas,
            }
        )

    def client_config(self, user: str, password: str) -> dict[str, Any]:
        """librdkafka settings for ``user``."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": password,
        }

    def _format(self, java: str, classpath: str, props: Any) -> None:
        cmd = [java, "-cp", classpath, self._log4j_opt(), "kafka.tools.StorageTool", "format"]
        cmd += ["-t", _cluster_id(), "-c", str(props)]
        for user, password in self.users.items():
            cmd += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        res = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise BrokerError(f"formatting SCRAM broker storage failed:\n{res.stdout}{res.stderr}")
        self._formatted = True

    def _readiness_admin(self) -> AdminClient:
        return AdminClient({**self.client_config(ADMIN_USER, ADMIN_PASSWORD), "log_level": 0})
