"""The embedded demo: runs a few seconds, serves /metrics while it runs, writes its outputs and a report."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from streams.config import Settings
from streams.demo import run_demo
from tests.support.wait import wait_until

METRICS_URL = re.compile(r"metrics at (http://\S+/metrics)")


class _Output(io.StringIO):
    """A stream another thread writes to while the test reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            return super().write(text)

    def text(self) -> str:
        with self.lock:
            return self.getvalue()


def _run_in_thread(**kwargs: Any) -> tuple[threading.Thread, dict[str, Any], _Output]:
    out = _Output()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["report"] = run_demo(Settings(), stream=out, **kwargs)
        except BaseException as exc:  # re-raised in the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="demo", daemon=True)
    thread.start()
    return thread, result, out


def _finish(thread: threading.Thread, result: dict[str, Any], timeout: float) -> dict[str, Any]:
    thread.join(timeout)
    assert not thread.is_alive(), f"run_demo did not finish within {timeout}s"
    if "error" in result:
        raise result["error"]
    return result["report"]


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


def _records_in(text: str) -> float:
    match = re.search(r'^convowatch_records_in_total\{stream="chat_turns"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_demo_runs_serves_metrics_and_writes_outputs(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    started = time.monotonic()
    thread, result, out = _run_in_thread(duration=3.0, metrics_port=0, out_dir=out_dir)

    def printed_url() -> str | None:
        if "error" in result:
            raise result["error"]
        match = METRICS_URL.search(out.text())
        return match.group(1) if match else None

    url = wait_until(
        printed_url, timeout=10, message=lambda: f"no metrics URL printed; output so far: {out.text()!r}"
    )
    # scraped while the demo runs: records are flowing
    scraped = wait_until(
        lambda: _records_in(_scrape(url)) > 0 and _scrape(url),
        timeout=10,
        message="no chat turns counted on /metrics",
    )
    assert "convowatch_defects_total" in scraped
    assert 'convowatch_worker_role{role="all"} 1.0' in scraped  # both stages: no stage-down alert

    report = _finish(thread, result, timeout=30)
    elapsed = time.monotonic() - started
    assert 2.5 <= elapsed < 15, elapsed

    for name in ("defects.jsonl", "escalations.jsonl", "deadletter.jsonl", "report.json"):
        assert (out_dir / name).is_file(), name
    assert orjson.loads((out_dir / "report.json").read_bytes()) == orjson.loads(orjson.dumps(report))

    events = report["events"]
    assert events["chat_turns"] > 300 and events["judge_verdicts"] > 300 and events["deadletter"] == 0
    defects = [orjson.loads(line) for line in (out_dir / "defects.jsonl").read_bytes().splitlines()]
    escalations = [orjson.loads(line) for line in (out_dir / "escalations.jsonl").read_bytes().splitlines()]
    assert len(defects) == report["outputs"]["defects"] == sum(report["defects_by_category"].values())
    assert any(e["kind"] == "high_risk_failure" for e in escalations)
    # the injected regression: critical safety escalations on shopper-v42
    assert any(
        e["dimension"] == "safety" and e["segment"]["model_version"] == "shopper-v42" for e in escalations
    )
    first_revisions = [e for e in escalations if e["revision"] == 1]
    assert sum(report["escalations_by_severity"].values()) == len(first_revisions)

    text = out.text()
    assert "high_risk_failure" in text  # escalations printed as they fire
    assert "Summary" in text and "escalations:" in text and "agreement:" in text

    # the server is shut down with the demo
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        pass
    else:
        raise AssertionError("metrics server still listening after run_demo returned")


def test_taken_metrics_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        thread, result, out = _run_in_thread(duration=1.0, metrics_port=port, out_dir=tmp_path)
        report = _finish(thread, result, timeout=30)
    text = out.text()
    assert f"cannot serve metrics on 127.0.0.1:{port} " in text and "using free port" in text
    url = METRICS_URL.search(text).group(1)
    assert not url.endswith(f":{port}/metrics")
    assert report["demo"]["metrics_url"] == url
    assert (tmp_path / "report.json").is_file()
