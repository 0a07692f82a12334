"""The Grafana dashboards: well-formed files, and every query returns data from a real Prometheus.

The live test feeds generated traffic through the real :class:`~streams.pipeline.Pipeline` with its real
:class:`~streams.metrics.Metrics` served on ``/metrics`` (as ``convowatch demo`` does), adds what the
generator never produces (malformed records, re-sent duplicates, batch timing as the Kafka transport
records it), lets ``/usr/bin/prometheus`` scrape it every second with ``prometheus/rules/*.yml`` loaded,
then runs every panel query, template-variable query and annotation through Prometheus's HTTP API.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry, start_http_server

from schemas import Stream
from streams.config import Settings
from streams.generator import Incident, TrafficGenerator, to_records
from streams.lag import ConsumerLagMonitor
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from tests.support.broker import KafkaBroker
from tests.support.prometheus import PrometheusError, PrometheusServer
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "convowatch.yml"
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))

#: What Grafana's built-in variables become in the live test (Prometheus scrapes every second there).
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convowatch_grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def _provisioned_uids() -> set[str]:
    return {ds["uid"] for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query") if isinstance(query, dict) else query or variable.get("definition", ""))


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with ``$name`` / ``${name}`` replaced from ``values`` or :data:`BUILTINS`; KeyError if
    a variable is unknown."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values[name] if name in values else BUILTINS[name]

    return VARIABLE.sub(replace, expr)


def regex_value(value: str) -> str:
    """A label value as Grafana puts it into ``=~"$var"``: regex metacharacters escaped for PromQL."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


# ---- the files ------------------------------------------------------------------------------------------


def test_committed_dashboards_are_what_the_builder_makes() -> None:
    builder = _load_builder()
    rendered = builder.render()
    assert sorted(rendered) == [p.name for p in DASHBOARD_FILES], (
        "dashboard files differ from grafana/build.py"
    )
    stale = [name for name, text in rendered.items() if (GRAFANA / "dashboards" / name).read_text() != text]
    assert not stale, f"out of date: {stale}; run .venv/bin/python grafana/build.py and commit the JSON"


def test_provisioning_files() -> None:
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    (prometheus,) = [ds for ds in datasources if ds["uid"] == "convowatch-prometheus"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"].startswith("/")


def test_dashboard_structure() -> None:
    builder = _load_builder()
    uids = _provisioned_uids()
    problems: list[str] = []
    seen_uids: set[str] = set()
    assert len(DASHBOARD_FILES) >= 5, "expected the five convowatch dashboards"
    for name, dash in _dashboards().items():

        def problem(text: str, name: str = name) -> None:
            problems.append(f"{name}: {text}")

        if dash.get("schemaVersion") != builder.SCHEMA_VERSION:
            problem(f"schemaVersion {dash.get('schemaVersion')} != {builder.SCHEMA_VERSION}")
        uid = dash.get("uid", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) or uid in seen_uids:
            problem(f"uid {uid!r} missing, invalid or not unique")
        seen_uids.add(uid)
        if "convowatch" not in dash.get("tags", []):
            problem("not tagged convowatch (the dashboards dropdown links by tag)")

        variables = {v["name"]: v for v in dash["templating"]["list"]}
        for v in variables.values():
            if v.get("datasource", {}).get("uid") not in uids:
                problem(f"variable {v['name']}: datasource {v.get('datasource')} is not provisioned")
            if not LABEL_VALUES.match(_variable_query(v)):
                problem(f"variable {v['name']}: not a label_values() query: {_variable_query(v)!r}")
        for annotation in dash["annotations"]["list"]:
            if not annotation.get("builtIn") and annotation["datasource"].get("uid") not in uids:
                problem(f"annotation {annotation['name']}: datasource is not provisioned")

        ids = [p.get("id") for p in dash["panels"]]
        if len(ids) != len(set(ids)) or not all(isinstance(i, int) and i > 0 for i in ids):
            problem(f"panel ids not unique positive integers: {ids}")
        used: set[str] = set()
        for p in dash["panels"]:
            where = f"panel {p.get('id')} {p.get('title')!r}"
            if p.get("datasource", {}).get("uid") not in uids:
                problem(f"{where}: datasource {p.get('datasource')} is not provisioned")
            grid = p.get("gridPos", {})
            if not (grid.get("w", 0) > 0 and grid.get("x", -1) >= 0 and grid["x"] + grid["w"] <= 24):
                problem(f"{where}: gridPos {grid} outside the 24-column grid")
            links = p.get("links", [])
            if not links or not all(str(link.get("url", "")).startswith("https://") for link in links):
                problem(f"{where}: no runbook links")
            if not p.get("targets"):
                problem(f"{where}: no queries")
            ref_ids = [t.get("refId") for t in p.get("targets", [])]
            if len(ref_ids) != len(set(ref_ids)) or not all(ref_ids):
                problem(f"{where}: refIds {ref_ids} not unique")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") not in uids:
                    problem(f"{where} {t.get('refId')}: datasource is not provisioned")
                if not t.get("expr"):
                    problem(f"{where} {t.get('refId')}: empty expr")
                used.update(m.group(1) or m.group(2) for m in VARIABLE.finditer(t.get("expr", "")))
        for v in variables.values():
            used.update(m.group(1) or m.group(2) for m in VARIABLE.finditer(_variable_query(v)))
        for unknown in sorted(used - set(variables) - set(BUILTINS)):
            problem(f"${unknown} is used but not defined")
        for unused in sorted(set(variables) - used):
            problem(f"variable {unused} is defined but no query uses it")
    assert not problems, "\n".join(problems)


# ---- the live test --------------------------------------------------------------------------------------

#: Records the generator never produces: (stream, raw bytes) -> one dead letter each.
MALFORMED = [
    (Stream.CHAT_TURNS, b"{not json"),
    (Stream.JUDGE_VERDICTS, b"[1, 2, 3]"),
    (Stream.HUMAN_LABELS, b'{"schema_version": 1, "turn_id": "t-bad"}'),
]


class TrafficFeeder:
    """Real convowatch metrics on a real ``/metrics`` server, fed until :meth:`stop`.

    A burst first (so joins, evictions and judge/human pairs accumulate), then a trickle every 100 ms
    so counters keep moving while Prometheus scrapes. Every batch also carries malformed records and
    re-sends the latest record of each stream (duplicates), and is timed into
    ``convowatch_processing_seconds`` as the Kafka transport's join does (``streams/join_agent.py``)."""

    WARMUP, BATCH = 20_000, 200

    def __init__(self, golden: Path) -> None:
        generator = TrafficGenerator(
            seed=11,
            rate=3.0,
            incident=Incident(start_after_s=1800, model_version="shopper-v42", journey="shopper"),
        )
        # vendors' gold accuracy needs a golden set: the generator's gold-flagged turns
        truth = generator.golden(4 * 3600)
        golden.write_text("".join(json.dumps({"turn_id": t, "labels": v}) + "\n" for t, v in truth.items()))
        # TTL evictions, and first-contact resolution decided (a short recontact window), within the run
        settings = Settings(
            join_ttl_seconds=1800, evict_every=500, recontact_window_seconds=1800, golden=golden
        )
        registry = CollectorRegistry()
        self.metrics = Metrics(registry, label_max_values=settings.label_max_values)
        self.metrics.worker_role.labels("all").set(1)  # as the worker and the demo set it
        self.pipeline = Pipeline(settings, self.metrics)
        self.server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.records = to_records(generator.records(4 * 3600))
        self.latest: dict[Stream, bytes] = {}
        self.batches = 0
        self.offset = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic-feeder", daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def start(self) -> TrafficFeeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.server.shutdown()
        self.server.server_close()

    def _run(self) -> None:
        try:
            size = self.WARMUP
            while not self._stop.is_set():
                self._batch(size)
                size = self.BATCH
                self._stop.wait(0.1)
        except BaseException as exc:  # reported by the test, which would otherwise only see missing data
            self.error = exc

    def _batch(self, size: int) -> None:
        batch = [(r[2], r[3]) for r in itertools.islice(self.records, size)]
        for stream, raw in batch:
            self.latest[stream] = raw
        batch += MALFORMED + list(self.latest.items())
        metrics = self.metrics
        with metrics.processing_seconds.time():
            for stream, raw in batch:
                # offsets keep rising across batches, as on a topic: with offsets restarting per batch the
                # aggregates took every trickled observation for a replay and only counted the burst
                self.offset += 1
                for emit in self.pipeline.process(stream, raw, source_topic="feeder", offset=self.offset):
                    metrics.outputs.labels(emit.topic).inc()
        self.batches += 1


def measure_lag(bootstrap: str, metrics: Metrics) -> None:
    """``convowatch_consumer_lag`` as a worker measures it: a real topic on the real broker with records
    no consumer group has committed (the embedded feeder has no consumer group of its own)."""
    topic = f"dash-lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced until the result is in
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(25):
        producer.produce(topic, value=b"%d" % i, partition=i % 2)
    assert producer.flush(30) == 0
    settings = Settings(broker=bootstrap, app_id=f"dash-{uuid.uuid4().hex[:8]}")
    assert sum(ConsumerLagMonitor(settings, metrics, [topic]).check().values()) == 25


@pytest.fixture(scope="module")
def prometheus(
    kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping a :class:`TrafficFeeder` with the rules loaded, once data is in."""
    feeder = TrafficFeeder(tmp_path_factory.mktemp("golden") / "golden.jsonl").start()
    measure_lag(kafka_broker.bootstrap, feeder.metrics)
    server = PrometheusServer([feeder.target], rule_files=RULE_FILES)
    try:
        try:
            server.start()
        except PrometheusError as exc:
            pytest.fail(f"Prometheus could not start: {exc}", pytrace=False)

        def scraped() -> bool:
            if feeder.error is not None:
                raise AssertionError(f"traffic feeder failed: {feeder.error!r}") from feeder.error
            samples = server.query('count_over_time(up{job="convowatch"}[1m])')
            ready = bool(samples) and float(samples[0]["value"][1]) >= 5
            return ready and bool(server.query("convowatch:judge_cohen_kappa:min"))

        wait_until(
            scraped,
            timeout=60,
            interval=0.5,
            ignore=(PrometheusError,),
            message=lambda: f"no scraped data; targets: {server.targets_health()}\n{server.tail()}",
        )
        yield server
    finally:
        server.close()
        feeder.stop()


def _queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) of every panel target of a dashboard."""
    for p in dash["panels"]:
        for t in p["targets"]:
            yield f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]


def _check(server: PrometheusServer, expr: str, *, need_data: bool) -> str | None:
    """None when ``expr`` runs (and, if ``need_data``, returns at least one non-NaN value), else why not."""
    try:
        result = server.query(expr)
    except PrometheusError as exc:
        return str(exc)
    if need_data and not result:
        return "no data"
    if need_data and all(sample["value"][1] == "NaN" for sample in result):
        return "only NaN"
    return None


def _check_all(server: PrometheusServer, checks: list[tuple[str, str, bool]], timeout: float) -> list[str]:
    """Run every (where, expr, need_data) check, retrying failures until ``timeout`` (rates and recording
    rules need a few scrapes); return the failures left."""
    deadline = time.monotonic() + timeout
    while True:
        failures = {}
        for where, expr, need_data in checks:
            if (why := _check(server, expr, need_data=need_data)) is not None:
                failures[where] = f"{why}\n      {expr}"
        if not failures or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    return [f"{where}: {why}" for where, why in failures.items()]


@pytest.mark.prometheus
def test_template_variable_queries_return_values(prometheus: PrometheusServer) -> None:
    broken = []
    for name, dash in _dashboards().items():
        every = {v["name"]: ".*" for v in dash["templating"]["list"]}
        for v in dash["templating"]["list"]:
            query = _variable_query(v)
            match = LABEL_VALUES.match(query)
            assert match is not None, f"{name} ${v['name']}: not a label_values() query"
            selector, label = match.groups()
            try:
                values = prometheus.label_values(label, substitute(selector, every) if selector else None)
            except PrometheusError as exc:
                broken.append(f"{name} ${v['name']}: {exc}")
                continue
            if not values:
                broken.append(f"{name} ${v['name']}: {query} returned no values")
    assert not broken, "template variables without values:\n" + "\n".join(broken)


@pytest.mark.prometheus
def test_every_panel_query_returns_data(prometheus: PrometheusServer) -> None:
    """Every panel target with every variable at "All" returns data; annotation queries parse."""
    checks = []
    for name, dash in _dashboards().items():
        every = {v["name"]: ".*" for v in dash["templating"]["list"]}
        for where, expr in _queries(dash):
            checks.append((f"{name} {where}", substitute(expr, every), True))
        for annotation in dash["annotations"]["list"]:
            if "expr" in annotation:
                checks.append(
                    (
                        f"{name} annotation {annotation['name']!r}",
                        substitute(annotation["expr"], every),
                        False,
                    )
                )
    assert len(checks) > 40
    broken = _check_all(prometheus, checks, timeout=30)
    assert not broken, f"{len(broken)} of {len(checks)} queries are broken:\n" + "\n".join(broken)


@pytest.mark.prometheus
def test_panel_queries_run_with_concrete_variable_values(prometheus: PrometheusServer) -> None:
    """With each variable set to its first real value (as a user would pick it), every query still
    parses (it may legitimately be empty for a narrow selection)."""
    checks = []
    for name, dash in _dashboards().items():
        chosen: dict[str, str] = {}
        for v in dash["templating"]["list"]:  # in order: later variables may depend on earlier ones
            match = LABEL_VALUES.match(_variable_query(v))
            assert match is not None
            selector, label = match.groups()
            values = prometheus.label_values(label, substitute(selector, chosen) if selector else None)
            assert values, f"{name} ${v['name']}: no values for {chosen}"
            chosen[v["name"]] = regex_value(values[0])
        for where, expr in _queries(dash):
            checks.append((f"{name} {where} {chosen}", substitute(expr, chosen), False))
    broken = _check_all(prometheus, checks, timeout=5)
    assert not broken, "queries failing with concrete variable values:\n" + "\n".join(broken)


@pytest.mark.prometheus
def test_rules_evaluate_on_real_metrics_and_the_incident_fires(prometheus: PrometheusServer) -> None:
    """promtool tests the rules on synthetic series; here every rule must also evaluate without error on
    the series convowatch really exports, and the feed's safety incident must fire the high-risk alert."""

    def evaluated() -> list[dict[str, Any]]:
        rules = prometheus.rules()
        never = "0001-01-01T00:00:00Z"  # what Prometheus reports before the first evaluation
        return rules if all(r.get("lastEvaluation", never) != never for r in rules) else []

    rules = wait_until(evaluated, timeout=20, interval=0.5, message="rules not evaluated yet")
    broken = [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in rules if r["health"] != "ok"]
    assert not broken, "rules failing on real metrics:\n" + "\n".join(broken)
    firing = wait_until(
        lambda: {
            a["labels"]["severity"]
            for a in prometheus.alerts()
            if a["labels"]["alertname"] == "ConvowatchHighRiskEscalations" and a["state"] == "firing"
        },
        timeout=20,
        interval=0.5,
        message=lambda: f"alerts: {prometheus.alerts()}",
    )
    assert firing <= {"critical", "high"}
