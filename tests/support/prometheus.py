"""A real Prometheus server for integration tests, and promtool.

:class:`PrometheusServer` writes a config that scrapes the given targets every second (job ``convowatch``
by default, as in ``prometheus/prometheus.yml``) and optionally loads rule files, runs
``/usr/bin/prometheus`` (Debian's ``prometheus`` package; ``make system``) in its own process group on a
free loopback port with a private TSDB directory, and waits until ``/-/ready`` answers. Queries go through
the HTTP API. A missing binary or a server that does not start raises :class:`PrometheusError`; the tests
turn that into a failure, never a skip.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.support.broker import free_ports
from tests.support.process import stop_group, wait_ready

PROMETHEUS_BIN = Path(os.environ.get("CONVOWATCH_TEST_PROMETHEUS_BIN", "/usr/bin/prometheus"))
PROMTOOL_BIN = Path(os.environ.get("CONVOWATCH_TEST_PROMTOOL_BIN", "/usr/bin/promtool"))

_live: set[PrometheusServer] = set()  # SIGKILLed at interpreter exit if nobody closed them


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or answered a query with an error."""


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.close()


def find_binary(path: Path) -> Path:
    """``path`` if it is an executable file, else :class:`PrometheusError` saying how to install it."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PrometheusError(
            f"{path} not found or not executable: install Debian's prometheus package (`make system`, "
            f"or `apt-get install prometheus`)"
        )
    return path


class PrometheusServer:
    """One Prometheus process scraping ``targets`` (``host:port``) every ``scrape_interval``."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        job: str = "convowatch",
        rule_files: Iterable[Path] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        binary: Path = PROMETHEUS_BIN,
        start_timeout: float = 30.0,
    ) -> None:
        self.targets = list(targets)
        self.job = job
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval, self.evaluation_interval = scrape_interval, evaluation_interval
        self.binary = binary
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="convowatch-prometheus-"))
        self.port = free_ports(1)[0]
        self.log_file = self.dir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.targets}]}],
        }
        path = self.dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> PrometheusServer:
        """Start the server and wait until it is ready (config and rule files loaded)."""
        binary = find_binary(self.binary)
        config = self._write_config()
        cmd = [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        _live.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        wait_ready(
            self._proc, f"{self.url}/-/ready", self.start_timeout, "prometheus", self.tail, PrometheusError
        )

    def _get(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error in a JSON body
            try:
                body = json.load(exc)
            except ValueError:
                raise PrometheusError(f"GET {path} {params}: HTTP {exc.code}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result list of ``/api/v1/query`` (vector samples, or one scalar/string as a
        one-element list). Raises :class:`PrometheusError` with Prometheus's message on a bad query."""
        params = [("query", expr)] + ([("time", f"{at:.3f}")] if at is not None else [])
        data = self._get("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """Values of ``label`` on series matching the selector ``match`` (all series when ``None``)."""
        params = [("match[]", match)] if match else []
        return list(self._get(f"/api/v1/label/{urllib.parse.quote(label)}/values", params))

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its evaluation state (``health``, ``lastError``), from ``/api/v1/rules``."""
        return [rule for group in self._get("/api/v1/rules", [])["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``labels``, ``state``, ``value``), from ``/api/v1/alerts``."""
        return list(self._get("/api/v1/alerts", [])["alerts"])

    def targets_health(self) -> list[tuple[str, str, str]]:
        """(scrape URL, health, last error) of every active target."""
        data = self._get("/api/v1/targets", [("state", "active")])
        return [(t["scrapeUrl"], t["health"], t.get("lastError", "")) for t in data["activeTargets"]]

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its directory."""
        if self._proc is not None:
            stop_group(self._proc, timeout=10)
            self._proc = None
        _live.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        """The last lines of the server's log, for error messages."""
        if self.log_file.is_file():
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
            return f"--- {self.log_file} (last {len(text)} lines) ---\n" + "\n".join(text)
        return f"(no prometheus log in {self.dir})"

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def promtool(*args: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``promtool`` with ``args``; the result holds the exit code and the combined output."""
    binary = find_binary(PROMTOOL_BIN)
    return subprocess.run(
        [str(binary), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
