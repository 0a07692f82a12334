"""Builds convowatch's Grafana dashboards (grafana/dashboards/*.json) from the modules beside this script.

    .venv/bin/python grafana/build.py           # rewrite grafana/dashboards/*.json
    .venv/bin/python grafana/build.py --check   # exit 1 when a committed file differs from what this builds

Each dashboard is described in a module of its own (``dashboard_*.py``), built of the panels, targets and
links of ``panels.py``. The committed JSON is what Grafana provisions; edit the modules, run this, commit
both. Every panel queries
the provisioned datasource (uid ``convowatch-prometheus``) and links to the runbooks it relates to;
category runbooks come from ``streams/taxonomy.yaml``. Only metrics convowatch exports today are queried
(``tests/integration/test_dashboards.py`` runs every query against a real Prometheus).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# the dashboards' modules, beside this script, whether it runs as a script or is loaded from its path
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_defects import defects
from dashboard_judges import judges
from dashboard_labelling import labelling
from dashboard_oncall import oncall
from dashboard_pipeline import pipeline
from panels import HERE, OUT, SCHEMA_VERSION

__all__ = ["DASHBOARDS", "SCHEMA_VERSION", "main", "render"]

DASHBOARDS = {
    "convowatch-oncall.json": oncall,
    "convowatch-judges.json": judges,
    "convowatch-defects.json": defects,
    "convowatch-pipeline.json": pipeline,
    "convowatch-labelling.json": labelling,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path.relative_to(HERE.parent))
    if stale:
        print(f"out of date: {', '.join(stale)}; run .venv/bin/python grafana/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
