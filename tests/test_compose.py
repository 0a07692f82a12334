"""docker-compose.yml, Dockerfile and .dockerignore: valid, pinned, healthy, and consistent with the
Prometheus and Grafana files they mount. (No Docker engine is needed: these read the files.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-convowatch anchors and << merges


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _one_shot(service: dict[str, Any]) -> bool:
    """A job that runs to completion (topic creation, traffic) rather than a long-running server."""
    return service.get("restart") == "no"


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
        elif volume.startswith((".", "/", "~")):
            source, target = volume.split(":")[:2]
            mounts.append((source, target))
    return mounts


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    assert checker.is_file(), f"{checker} not found: install the test extras (make venv)"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    hint = ""
    if "ParamType" in output and "not subscriptable" in output:
        hint = (
            "\nhint: check-jsonschema 0.38.x fails on import with click 8.3 (faust-streaming pins "
            "click<8.4); 0.37.4 works: pin check-jsonschema<0.38 in the test extras"
        )
    assert result.returncode == 0, f"check-jsonschema failed (exit {result.returncode}):\n{output}{hint}"


def test_every_service_has_a_comment_above_it() -> None:
    lines = COMPOSE.read_text().splitlines()
    start = lines.index("services:")
    missing = []
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if re.match(r"^\S", line):  # the next top-level key ends the services
            break
        if match := re.match(r"^  ([A-Za-z0-9._-]+):\s*$", line):
            above = next((lines[i] for i in range(number - 1, start, -1) if lines[i].strip()), "")
            if not above.lstrip().startswith("#"):
                missing.append(match.group(1))
    assert not missing, f"services without a comment above them: {missing}"
    assert set(_services()) >= {"kafka", "topics", "join-1", "join-2", "aggregate", "traffic", "prometheus"}


def test_every_image_tag_is_pinned() -> None:
    unpinned = []
    for name, service in _services().items():
        image = service.get("image", "")
        tag = image.rpartition("/")[2].partition(":")[2]
        if not image or "@sha256:" in image:
            if not image:
                unpinned.append(f"{name}: no image (name the image, also for built services)")
            continue
        if not tag or tag == "latest" or "$" in tag or tag.split(".")[0] in {"", "stable", "main"}:
            unpinned.append(f"{name}: {image}")
    assert not unpinned, "images without a pinned tag:\n" + "\n".join(unpinned)


def test_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    problems = []
    for name, service in _services().items():
        for source, _ in _bind_mounts(service):
            if not (COMPOSE.parent / source).exists():
                problems.append(f"{name}: bind-mounted {source} does not exist in the repository")
        for volume in service.get("volumes", []):
            named = isinstance(volume, str) and not volume.startswith((".", "/", "~"))
            if named and volume.split(":")[0] not in declared:
                problems.append(f"{name}: named volume {volume.split(':')[0]} is not declared")
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not (COMPOSE.parent / context / dockerfile).is_file():
                problems.append(f"{name}: no {dockerfile} in build context {context}")
    assert not problems, "\n".join(problems)


def test_healthchecks_and_dependencies() -> None:
    services = _services()
    problems = []
    for name, service in services.items():
        if not _one_shot(service) and not service.get("healthcheck", {}).get("test"):
            problems.append(f"{name}: long-running service without a healthcheck")
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions {depends}")
            continue
        for other, spec in depends.items():
            condition = spec.get("condition")
            if other not in services:
                problems.append(f"{name}: depends on unknown service {other}")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name}: depends on {other} with condition {condition!r}")
            if condition == "service_healthy" and not services[other].get("healthcheck"):
                problems.append(f"{name}: waits for {other} to be healthy, which has no healthcheck")
            if condition == "service_completed_successfully" and not _one_shot(services[other]):
                problems.append(f"{name}: waits for {other} to complete, which is not a one-shot")
            if services[other].get("profiles") and not set(services[other]["profiles"]) >= set(
                service.get("profiles", [])
            ):
                problems.append(
                    f"{name}: depends on {other}, which only runs in profiles {services[other]['profiles']}"
                )
    assert not problems, "\n".join(problems)


def test_credentials_are_overridable() -> None:
    hard_coded = []
    for name, service in _services().items():
        environment = service.get("environment", {})
        items = (
            environment.items() if isinstance(environment, dict) else (e.split("=", 1) for e in environment)
        )
        for key, value in items:
            if re.search(r"PASSWORD|SECRET|TOKEN", key) and not re.fullmatch(r"\$\{\w+:-[^}]*\}", str(value)):
                hard_coded.append(f"{name}: {key}")
    assert not hard_coded, f"credentials not of the form ${{VAR:-default}}: {hard_coded}"


def test_prometheus_and_grafana_point_at_compose_services() -> None:
    services = _services()
    prometheus = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    hosts = {
        target.rsplit(":", 1)[0]
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    } | {
        target.rsplit(":", 1)[0]
        for am in prometheus["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for target in static["targets"]
    }
    assert hosts - {"localhost"} <= set(services), (
        f"Prometheus targets unknown hosts: {hosts - set(services)}"
    )

    workers = {name for name, s in services.items() if s.get("command", [None])[0] == "worker"}
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    scraped = {t for static in jobs["convowatch"]["static_configs"] for t in static["targets"]}
    for worker in workers:
        env = services[worker]["environment"]
        assert env["CONVOWATCH_METRICS_HOST"] == "0.0.0.0", f"{worker}: /metrics not reachable by Prometheus"
        assert f"{worker}:{env['CONVOWATCH_METRICS_PORT']}" in scraped, f"{worker} is not scraped"
        assert env["CONVOWATCH_BROKER"] == "kafka:9092"

    # Prometheus loads rules/*.yml relative to its config: the rules directory is mounted next to it.
    mounts = dict(_bind_mounts(services["prometheus"]))
    config_dir = Path(mounts["./prometheus/prometheus.yml"]).parent
    assert mounts["./prometheus/rules"] == str(config_dir / "rules")
    assert "./prometheus/alertmanager.yml" in dict(_bind_mounts(services["alertmanager"]))

    grafana = dict(_bind_mounts(services["grafana"]))
    datasources = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    for ds in datasources["datasources"]:
        assert urlparse(ds["url"]).hostname in services, f"datasource {ds['name']} points at {ds['url']}"
    providers = yaml.safe_load((REPO / "grafana/provisioning/dashboards/convowatch.yml").read_text())
    for provider in providers["providers"]:
        assert provider["options"]["path"] == grafana["./grafana/dashboards"], "dashboards mounted elsewhere"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "grafana/dashboards" / Path(home).name).is_file()
    assert Path(home).parent == Path(grafana["./grafana/dashboards"])


def test_dockerfile() -> None:
    text = (REPO / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0].startswith("FROM python:3.11-slim")
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, "the image must run as a non-root user"
    assert 'ENTRYPOINT ["convowatch"]' in instructions
    assert "RUN pip install . && rm -rf /src" in instructions
    pyproject = (REPO / "pyproject.toml").read_text()
    for package in ("schemas", "detectors", "streams"):
        assert f'"{package}"' in pyproject
        assert f"COPY {package} ./{package}" in instructions, f"the image does not get {package}/"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".ci"} <= ignored


def test_the_join_workers_get_the_cpu_before_the_aggregate_worker() -> None:
    # the escalation path (join) must not wait behind the detectors (aggregate) when they share cores
    services = _services()
    roles = {
        name: service["environment"].get("CONVOWATCH_ROLE", "all")
        for name, service in services.items()
        if service.get("command", [None])[0] == "worker"
    }
    assert sorted(roles.values()) == ["aggregate", "join", "join"]
    shares = {
        role: [services[n]["cpu_shares"] for n, r in roles.items() if r == role]
        for role in set(roles.values())
    }
    assert min(shares["join"]) > max(shares["aggregate"])
