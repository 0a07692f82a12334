"""A real Prometheus Alertmanager (the Debian ``prometheus-alertmanager`` binary) for integration tests.

:class:`AlertmanagerServer` runs it in its own process group on a free loopback port, with clustering
disabled, a private storage directory and the given configuration file, and waits for ``/-/ready``.
A missing binary raises :class:`AlertmanagerError` naming the fix (``make system``); tests turn that into
a failure, never a skip. :func:`write_config_for_test` gives the shipped ``prometheus/alertmanager.yml`` with
its receivers on a local webhook and short group timings.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.broker import free_ports
from tests.support.process import stop_group, wait_ready

BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's name
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "prometheus" / "alertmanager.yml"
#: Group timings of the config for tests: notifications within a second
FAST = {"group_wait": "200ms", "group_interval": "1s", "repeat_interval": "1h"}
_live: set[AlertmanagerServer] = set()


class AlertmanagerError(RuntimeError):
    """Alertmanager could not be started (binary missing, bad config, not ready in time)."""


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.close()


def find_alertmanager() -> str:
    """Path of the Alertmanager binary, or raise :class:`AlertmanagerError`."""
    for name in BINARIES:
        if found := shutil.which(name) or (os.access(f"/usr/bin/{name}", os.X_OK) and f"/usr/bin/{name}"):
            return str(found)
    raise AlertmanagerError(
        "Alertmanager binary not found (looked for prometheus-alertmanager and alertmanager on PATH): "
        "run `make system` (.ci/install-system.sh installs the Debian package prometheus-alertmanager)"
    )


def find_amtool() -> str:
    """Path of ``amtool``, or raise :class:`AlertmanagerError`."""
    if found := shutil.which("amtool"):
        return found
    raise AlertmanagerError("amtool not found: run `make system` (Debian package prometheus-alertmanager)")


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from _routes(child)


def config_for_test(shipped: dict[str, Any], webhook_url: str) -> dict[str, Any]:
    """The shipped config with receiver URLs on the test webhook and fast timings; routing unchanged."""
    config = copy.deepcopy(shipped)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url}/{receiver['name']}"
    for route in _routes(config["route"]):
        for key, value in FAST.items():
            if key in route:  # only where the shipped file sets it: inheritance stays the same
                route[key] = value
    return config


def without_urls_and_timings(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            del hook["url"]
    for route in _routes(config["route"]):
        for key in FAST:
            route.pop(key, None)
    return config


def write_config_for_test(webhook_url: str, directory: Path) -> Path:
    """``prometheus/alertmanager.yml`` as shipped, with its receivers on ``<webhook_url>/<receiver name>`` and
    the group timings of :data:`FAST`, written to ``directory``; routing, grouping and inhibit rules are the
    shipped ones."""
    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config = config_for_test(shipped, webhook_url)
    assert without_urls_and_timings(config) == without_urls_and_timings(shipped)
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class AlertmanagerServer:
    """One Alertmanager process. ``url`` is its base URL once started."""

    def __init__(self, config_file: Path, *, start_timeout: float = 30.0, extra_args: tuple[str, ...] = ()):
        self.config_file = Path(config_file)
        self.start_timeout = start_timeout
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix="convowatch-alertmanager-"))
        self.log_file = self.dir / "alertmanager.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AlertmanagerServer:
        binary = find_alertmanager()
        for attempt in range(3):  # the free port may be taken between probing and binding
            self.port = free_ports(1)[0]
            cmd = [
                binary,
                f"--config.file={self.config_file}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no HA gossip: nothing waits for peers
                "--log.level=debug",
                *self.extra_args,
            ]
            with self.log_file.open("ab") as log:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
                )
            _live.add(self)
            try:
                self._wait_ready()
                return self
            except AlertmanagerError:
                self.stop()
                if attempt == 2 or "address already in use" not in self.tail():
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        wait_ready(
            self._proc,
            f"{self.url}/-/ready",
            self.start_timeout,
            "Alertmanager",
            self.tail,
            AlertmanagerError,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if still alive after ``timeout``; reap the process."""
        if self._proc is None:
            return
        stop_group(self._proc, timeout)
        self._proc = None
        _live.discard(self)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> AlertmanagerServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tail(self, lines: int = 40) -> str:
        if not self.log_file.is_file():
            return f"(no Alertmanager log in {self.dir})"
        text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log_file} (last {len(text)} lines) ---\n" + "\n".join(text)

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` (e.g. ``/api/v2/alerts``) with query parameters (lists repeat); parsed JSON."""
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}{'?' + query if query else ''}", timeout=5) as response:
            return json.loads(response.read())

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """``POST /api/v2/alerts``, as Prometheus sends the alerts of its rules."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def flushes(self, alertname: str) -> int:
        """How many times the dispatcher has flushed an aggregation group of alerts named ``alertname``, from
        its debug log: each flush runs the notification pipeline, which leaves inhibited alerts out."""
        if not self.log_file.is_file():
            return 0
        group = f'alertname=\\"{alertname}\\"'  # the group key, as the log quotes it
        lines = self.log_file.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if "msg=flushing" in line and group in line)

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the active (not resolved) alerts, e.g. ``alerts(filter=['kind="x"'])``."""
        result: list[dict[str, Any]] = self.get("/api/v2/alerts", **params)
        return result
