"""The audit report as one self-contained HTML page: inline CSS and SVG, no external resources.

The only script marks the page rendered (``<body data-rendered="ok">``) once every chart slot holds a
laid-out chart or a "no data" note; a Content-Security-Policy admits that script by its hash and
nothing else, so markup that slipped through escaping could not run.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from streams import report_sections as sections
from streams.report_charts import Html, esc, join, tag

SECTIONS = {
    "summary": "Summary",
    "trends": "Agreement trends",
    "defect-rates": "Defect rates",
    "segments": "Top failing segments",
    "vendors": "Vendor scorecards",
    "versions": "Version comparisons",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;
color:#1b1b1b;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;
margin-top:32px}h3{font-size:15px}p.meta{color:#555;margin-top:0}
table.data{border-collapse:collapse;margin:8px 0 16px;font-variant-numeric:tabular-nums}
table.data th,table.data td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table.data th{background:#f3f3f3}figure{margin:8px 0}svg.chart{max-width:100%;height:auto}
svg .grid{stroke:#e3e3e3}svg .zero{stroke:#555}svg .whisker{stroke:#222;stroke-width:1.5}
svg .axis{font-size:11px;fill:#444}svg .label{font-size:12px;fill:#222}
div.scroll{overflow-x:auto}table.data td{white-space:nowrap}svg polyline{stroke-width:2}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px}
.no-data{color:#777;font-style:italic}.note{color:#555;font-size:13px}
"""


def render(data: dict[str, Any]) -> str:
    """The whole page for the data of :meth:`streams.report.AuditCollector.build`."""
    body_parts = [
        _section("summary", sections.summary(data)),
        _section("trends", sections.trends(data)),
        _section("defect-rates", sections.defect_rates(data)),
        _section("segments", sections.segments(data)),
        _section("vendors", sections.vendors(data)),
        _section("versions", sections.versions(data)),
    ]
    script = _script(len(SECTIONS) - 1)  # every section but the summary has one chart slot
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    title = f"convowatch audit {data['since']} to {data['until']}"
    head = join(
        [
            Html('<meta charset="utf-8">'),
            Html(f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'),
            Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
            tag("title", title),
            Html(f"<style>{CSS}</style>"),
        ]
    )
    intro = join(
        [
            tag("h1", "convowatch audit report"),
            tag("p", f"Event time {data['since']} to {data['until']} (end excluded)", class_="meta"),
        ]
    )
    body = join([intro, *body_parts, Html(f"<script>{script}</script>")])
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body data-rendered="no">{body}</body></html>\n'
    )


def _script(expected: int) -> str:
    return (
        "(function(){var s=document.querySelectorAll('figure[data-chart-slot]'),bad=[];"
        "for(var i=0;i<s.length;i++){var c=s[i].querySelector('svg.chart');"
        "if(!(c&&c.getBoundingClientRect().width>0)&&!s[i].querySelector('.no-data'))"
        "bad.push(s[i].getAttribute('data-chart-slot'));}"
        f"if(s.length!=={expected})bad.push('expected {expected} chart slots, found '+s.length);"
        "document.body.setAttribute('data-rendered',bad.length?'missing: '+bad.join(', '):'ok');})();"
    )


def _section(anchor: str, body: Html) -> Html:
    return tag("section", join([tag("h2", SECTIONS[anchor]), body]), id=anchor)
