"""The README's catalogues: every metric convowatch exports, every setting it reads."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.metrics import Metrics

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_metric_is_in_the_catalogue() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in registry.collect()}
    documented = set(re.findall(r"^\| `(convowatch_[a-z0-9_]+)` \|", README.read_text(), flags=re.MULTILINE))
    assert exported - documented == set(), "metrics missing from the README's catalogue"
    assert documented - exported == set(), "the README's catalogue lists metrics that do not exist"


def documented_variables(readme: str) -> set[str]:
    """Environment variables named in the first column of the README's tables. A cell may abbreviate:
    ``CONVOWATCH_METRICS_HOST` / `_PORT`` names CONVOWATCH_METRICS_PORT (the suffix replaces any tail of the
    cell's first full name), so every candidate reading counts."""
    names: set[str] = set()
    for cell in re.findall(r"^\| (`CONVOWATCH_[^|]+)\|", readme, flags=re.MULTILINE):
        first = ""
        for part in re.findall(r"`([A-Z0-9_]+)`", cell):
            if part.startswith("CONVOWATCH_"):
                first = part
                names.add(part)
            elif first:
                components = first.split("_")
                names.update("_".join(components[:k]) + part for k in range(1, len(components)))
    return names


def test_every_setting_is_in_the_configuration_table() -> None:
    variables = {"CONVOWATCH_" + name.upper() for name in Settings.model_fields}
    assert variables - documented_variables(README.read_text()) == set(), "settings missing from the README"


def test_every_setting_says_its_variable() -> None:
    for name, field in Settings.model_fields.items():
        assert (field.description or "").startswith(f"CONVOWATCH_{name.upper()}:"), name
