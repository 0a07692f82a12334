"""The README's metrics catalogue lists every metric convowatch exports."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from streams.metrics import Metrics

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_metric_is_in_the_catalogue() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in registry.collect()}
    documented = set(re.findall(r"^\| `(convowatch_[a-z0-9_]+)` \|", README.read_text(), flags=re.MULTILINE))
    assert exported - documented == set(), "metrics missing from the README's catalogue"
    assert documented - exported == set(), "the README's catalogue lists metrics that do not exist"
