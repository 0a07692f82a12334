"""The audit report opened in a real headless Chromium (Debian's ``chromium``, installed by ``make system``).

The page marks itself ``data-rendered="ok"`` once every chart slot holds a laid-out chart; console
messages (script errors, Content-Security-Policy violations) reach stderr through ``--enable-logging``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from streams.config import Settings
from streams.generator import Incident, TrafficGenerator
from streams.report import TimeRange, audit, write_report
from streams.report_html import SECTIONS
from streams.report_sources import directory_inputs, file_items

pytestmark = pytest.mark.browser

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
CHARTS = ("agreement-trend", "defect-rates", "top-segments", "vendor-agreement", "version-lift")
DEADLINE = 120  # seconds for one Chromium run


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed: run `make system` (installs Debian's chromium)", pytrace=False
        )
    return found


def open_in_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to the console (errors, CSP violations, logs): nothing is expected."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An hour of seeded traffic with an incident and a model rollout: every section has a chart."""
    out = tmp_path_factory.mktemp("report")
    generator = TrafficGenerator(
        seed=9,
        rate=1.0,
        label_share=0.3,
        incident=Incident(1800, "driver-v7", "driver_support", "safety", 0.2),
    )
    names = ("chat_turns", "judge_verdicts", "human_labels", "signals")
    files = {name: (out / f"{name}.jsonl").open("wb") for name in names}
    for _, stream, event in generator.records(3600, drain=True):
        files[stream].write(orjson.dumps(event) + b"\n")
    for handle in files.values():
        handle.close()
    window = TimeRange(START, START + timedelta(hours=1))
    data = audit(Settings(), window, file_items(directory_inputs(out)), "generated traffic")
    assert data["versions"] and data["vendors"] and data["top_segments"] and data["trends"]
    return write_report(data, out / "report.html")


def test_report_renders_in_chromium_without_errors(report_page: Path, tmp_path: Path) -> None:
    result = open_in_chromium(report_page, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    marker = re.search(r'<body[^>]*data-rendered="([^"]*)"', dom)
    assert marker and marker.group(1) == "ok", (marker and marker.group(1), result.stderr[-2000:])
    for title in SECTIONS.values():
        assert f"<h2>{title}</h2>" in dom
    for chart in CHARTS:
        assert re.search(rf'<svg[^>]*class="chart"[^>]*data-chart="{chart}"', dom), chart
    assert console_lines(result.stderr) == []

    shot = tmp_path / "report.png"
    result = open_in_chromium(
        report_page,
        tmp_path / "profile2",
        f"--screenshot={shot}",
        "--window-size=1200,3000",
        "--hide-scrollbars",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert console_lines(result.stderr) == []


def test_a_missing_chart_is_reported_by_the_page(report_page: Path, tmp_path: Path) -> None:
    """The marker is not unconditional: drop one chart and the page says which slot is empty."""
    page = report_page.read_text(encoding="utf-8")
    broken, count = re.subn(r'<svg[^>]*data-chart="version-lift".*?</svg>', "", page, flags=re.DOTALL)
    assert count == 1
    target = tmp_path / "broken.html"
    target.write_text(broken, encoding="utf-8")
    result = open_in_chromium(target, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-rendered="missing: version-lift"' in result.stdout
