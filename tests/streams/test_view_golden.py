"""The golden set file (``CONVOWATCH_GOLDEN``) is validated at start, with errors naming file and line."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.exceptions import ConfigError
from streams.golden import load_golden
from streams.metrics import Metrics
from streams.pipeline import Pipeline


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"turn_id": "a", "labels": {"safety": "pass"}}\n{"turn_id": "b", ', "line 2: not valid JSON"),
        (
            b'\n{"turn_id": "a", "labels": {"safety": "ok"}}\n',
            "line 2: labels: 'safety' is a quality dimension",
        ),
        (
            b'{"turn_id": "a", "labels": {"Safety": "fail"}}\n',
            "line 1: labels: 'Safety' is the quality dimension 'safety' spelled otherwise",
        ),
        (b'{"turn_id": "a", "labels": {}}\n', "line 1: labels: "),
        (b'{"turn_id": "a", "labels": {"x": "y"}, "extra": 1}\n', "line 1: extra: "),
        (
            b'{"turn_id": "a", "labels": {"x": "y"}}\n{"turn_id": "a", "labels": {"x": "z"}}\n',
            "line 2: turn_id",
        ),
    ],
)
def test_a_bad_golden_set_is_refused_at_start_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "golden.jsonl"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"^{path} {message}"):
        Pipeline(Settings(golden=path), Metrics(CollectorRegistry()))
    with pytest.raises(ConfigError, match=f"cannot read golden set file {tmp_path / 'missing'}"):
        load_golden(tmp_path / "missing")
