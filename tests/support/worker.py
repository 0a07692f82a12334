"""A real ``convowatch worker`` process for integration tests, with its metrics read over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from schemas import Stream
from tests.support.broker import free_ports
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``convowatch worker`` in its own process group; ``env`` adds ``CONVOWATCH_*`` settings."""

    def __init__(self, bootstrap: str, env: dict[str, str], log_path: Path) -> None:
        self.bootstrap = bootstrap
        self.env = env
        self.log_path = log_path
        self.metrics_port = free_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.env, "CONVOWATCH_METRICS_PORT": str(self.metrics_port)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--broker", self.bootstrap, "--loglevel", "info"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            self._serving,
            timeout=60,
            interval=0.1,
            ignore=(OSError,),
            message=lambda: f"worker did not serve metrics; log:\n{self.log_tail()}",
        )
        return self

    def _serving(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}; log:\n{self.log_tail()}")
        self.scrape()
        return True

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample: ``{(name, sorted label pairs): value}``."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def value(self, name: str, **labels: str) -> float | None:
        return self.scrape().get((name, tuple(sorted(labels.items()))))

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``convowatch ARGS`` in a subprocess with extra environment, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def produce_jsonl(
    bootstrap: str, env: dict[str, str], directory: Path, **streams: list[dict[str, Any]]
) -> dict[str, int]:
    """Write each stream's records (``chats=``, ``verdicts=``, ``labels=``, ``signals=``: the flags of
    ``convowatch produce``) as JSONL under ``directory`` and send them; the counts it reports sent."""
    flags = []
    for name, records in streams.items():
        path = directory / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        flags += [f"--{name}", str(path)]
    produced = run_cli("produce", "--broker", bootstrap, *flags, env=env)
    assert produced.returncode == 0, produced.stderr
    return json.loads(produced.stdout)["sent"]  # type: ignore[no-any-return]


#: The flag of ``convowatch produce`` (and keyword of :func:`produce_jsonl`) of each input stream
FLAGS = {
    Stream.CHAT_TURNS: "chats",
    Stream.JUDGE_VERDICTS: "verdicts",
    Stream.HUMAN_LABELS: "labels",
    Stream.SIGNALS: "signals",
}


def produce_records(
    bootstrap: str, env: dict[str, str], directory: Path, records: Iterable[tuple[Stream, bytes]]
) -> dict[str, list[dict[str, Any]]]:
    """Send ``records`` ((stream, JSON bytes), e.g. a generator's) with ``convowatch produce``; the records
    sent, decoded, by flag (``chats``, ``verdicts``, ``labels``, ``signals``)."""
    streams: dict[str, list[dict[str, Any]]] = {}
    for stream, raw in records:
        streams.setdefault(FLAGS[stream], []).append(orjson.loads(raw))
    produce_jsonl(bootstrap, env, directory, **streams)
    return streams


def health_response(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a worker's ``/healthz`` or ``/readyz`` on ``port``, failing ones too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as failing:
        return failing.code, json.loads(failing.read())
