"""A real single-node Apache Kafka broker (KRaft mode) for integration tests.

The broker jars are pinned by ``.ci/kafka/pom.xml`` and copied to ``.ci/kafka/lib`` by ``make kafka``.
:class:`KafkaBroker` writes a config into a private directory, formats the storage, runs the JVM in its
own process group on free loopback ports and waits until the broker answers a metadata request.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_LIB = REPO_ROOT / ".ci" / "kafka" / "lib"
KAFKA_JAR = "kafka_2.13-3.9.1.jar"

_log = logging.getLogger(__name__)
_live: set[KafkaBroker] = set()  # SIGKILLed at interpreter exit if nobody stopped them


class BrokerError(RuntimeError):
    """The broker could not be started (missing jars or java, bad config, not ready in time)."""


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_live):
        broker.kill()
        if broker._owns_dir:
            shutil.rmtree(broker.dir, ignore_errors=True)


def find_kafka_lib() -> Path:
    """Return the directory holding the pinned Kafka jars, or raise :class:`BrokerError`."""
    if not (KAFKA_LIB / KAFKA_JAR).is_file():
        raise BrokerError(f"Kafka jars not found ({KAFKA_LIB / KAFKA_JAR} is missing): run `make kafka`")
    return KAFKA_LIB


def find_java() -> str:
    """Return ``$JAVA_HOME/bin/java`` if executable, else ``java`` from ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home, "bin", "java"), os.X_OK):
        return str(Path(home, "bin", "java"))
    if found := shutil.which("java"):
        return found
    raise BrokerError("`java` not found (install a JRE >= 17, e.g. via `make system`)")


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (bound together, so they differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cluster_id() -> str:
    while True:  # 22-char base64url UUID; a leading '-' would be parsed as a command-line flag
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _admin(bootstrap: str) -> AdminClient:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 250,
        "logger": logging.getLogger(f"{__name__}.librdkafka"),  # not stderr
    }
    return AdminClient(conf)


class KafkaBroker:
    """One KRaft broker+controller JVM. Ports and data directory survive :meth:`restart`."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        heap: str = "512m",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        self._owns_dir = workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="convowatch-kafka-")) if workdir is None else workdir
        self.port, self.controller_port = free_ports(2)
        self.start_timeout, self.stop_timeout, self.heap = start_timeout, stop_timeout, heap
        self.extra_config = dict(extra_config or {})
        self.log_file = self.dir / "broker.log"  # log4j, WARN and above
        self.stdout_file = self.dir / "stdout.log"  # JVM stdout + stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` value for clients, e.g. ``"127.0.0.1:40123"``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        port, cport = self.port, self.controller_port
        conf = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # After a SIGKILL the restarted broker cannot re-register until its old session expires
            # (default 9 s): keep crash/restart tests fast.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            **self.extra_config,
        }
        props = self.dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in conf.items()))
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={self.log_file}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        return props

    def _log4j_opt(self) -> str:
        return f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}"

    def _format(self, java: str, classpath: str, props: Path) -> None:
        cmd = [java, "-cp", classpath, self._log4j_opt(), "kafka.tools.StorageTool", "format"]
        cmd += ["-t", _cluster_id(), "-c", str(props)]
        try:
            res = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting Kafka storage timed out: {exc}") from exc
        if res.returncode != 0:
            out = res.stdout + res.stderr
            raise BrokerError(
                f"formatting Kafka storage failed (exit {res.returncode}):\n{out}\n{self.tail()}"
            )
        self._formatted = True

    def start(self) -> None:
        """Start the broker (formatting storage on first start) and wait until it answers."""
        if self.is_running():
            return
        classpath, java = f"{find_kafka_lib()}/*", find_java()
        props = self._write_config()
        if not self._formatted:
            self._format(java, classpath, props)
        cmd = [java, f"-Xmx{self.heap}", "-cp", classpath, self._log4j_opt(), "kafka.Kafka", str(props)]
        with self.stdout_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        _live.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        started = time.monotonic()
        deadline = started + self.start_timeout
        admin: AdminClient | None = None
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if (code := self._proc.poll()) is not None:
                raise BrokerError(f"broker exited with code {code} during startup\n{self.tail()}")
            try:  # cheap TCP probe first, so librdkafka does not log connection-refused errors
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                admin = admin or self._readiness_admin()
                if admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic()))).brokers:
                    _log.info("Kafka broker %s ready in %.1fs", self.bootstrap, time.monotonic() - started)
                    return
                last_error = "metadata lists no brokers"
            except (OSError, KafkaException) as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        waited = f"{self.start_timeout:.0f}s"
        raise BrokerError(
            f"broker at {self.bootstrap} not ready after {waited} ({last_error})\n{self.tail()}"
        )

    def _readiness_admin(self) -> AdminClient:
        """The admin client :meth:`_wait_ready` asks for metadata (a secured broker's subclass logs in)."""
        return _admin(self.bootstrap)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM the broker (clean shutdown); SIGKILL it if still alive after ``stop_timeout``."""
        if self._proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            _log.warning("Kafka broker did not stop in %.0fs, killing it", self.stop_timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the broker's process group and reap it (simulates a crash)."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        self._proc.wait()
        self._proc = None
        _live.discard(self)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete its directory if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 40) -> str:
        """Last lines of the broker's log4j log and stdout/stderr, for error messages."""
        parts = []
        for f in (self.log_file, self.stdout_file):
            if f.is_file() and f.stat().st_size:
                text = f.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {f} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or f"(no broker logs in {self.dir})"

    def __enter__(self) -> KafkaBroker:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    timeout: float = 30.0,
    exist_ok: bool = False,
) -> None:
    """Create topics (replication factor 1) and wait until every partition has a leader."""
    wanted = list(names)
    admin = _admin(bootstrap)
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted]
    for fut in admin.create_topics(new, operation_timeout=timeout).values():
        try:
            fut.result(timeout=timeout)
        except KafkaException as exc:
            if not (exist_ok and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        missing = [
            n
            for n in wanted
            if n not in topics
            or topics[n].error is not None
            or any(p.leader < 0 for p in topics[n].partitions.values())
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout}s: {missing}")
        time.sleep(0.05)
