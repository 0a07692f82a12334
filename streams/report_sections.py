"""The sections of the audit report (``streams.report_html`` puts them on the page).

Each takes the data of :meth:`streams.report.AuditCollector.build` and returns :class:`Html` built
from escaped text only. Every section but the summary has one chart slot (``<figure
data-chart-slot>``) holding a chart or a "no data" note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from streams.report_charts import (
    Html,
    fmt,
    interval,
    interval_chart,
    join,
    legend,
    line_chart,
    no_data,
    pct,
    table,
    tag,
)
from streams.report_gold import gold_items

#: Most series drawn in the trend chart (the ones with most pairs); the table lists every one.
MAX_SERIES = 8
STREAM_NAMES = {
    "chat_turns": "chat turns",
    "judge_verdicts": "judge verdicts",
    "human_labels": "human labels",
}
BUCKET_NAMES = {
    300: "5 minutes",
    900: "15 minutes",
    3600: "hour",
    21600: "6 hours",
    86400: "day",
    604800: "week",
}
DECISIONS = {"worse": "no-go (regression)", "better": "go (improvement)", "continue": "undecided"}


def _figure(name: str, chart: Html | None, empty: str) -> Html:
    return tag("figure", chart if chart is not None else no_data(empty), data_chart_slot=name)


def summary(data: dict[str, Any]) -> Html:
    events = data["events"]
    dead = data["dead_letters"]
    rows: list[Sequence[Any]] = [
        ("Range (event time)", f"{data['since']} to {data['until']}"),
        ("Source", data["source"]),
        ("Generated", data["generated_at"]),
        ("Records read", data["records_read"]),
        *((f"Valid {STREAM_NAMES.get(s, s)} in range", n) for s, n in events.items()),
        ("Turns joined in range", data["turns"]),
        ("Dead letters in range", dead["in_range"]),
        ("Dead letters without a readable time", dead["undated"]),
        ("Defect records", data["defects"]),
        ("of which on turns never received (not in the shares below)", data["defects_without_turn"]),
        ("High-risk judge/human divergences", data["divergences"]),
    ]
    note = (
        "Records are counted by their own event time; every other figure by the event time of the turn it "
        "is about, so a label stamped after the range still counts for a turn inside it."
    )
    parts = [table(("Figure", "Value"), rows), tag("p", note, class_="note")]
    if dead["by_reason"]:
        parts.append(tag("h3", "Dead letters by reason"))
        parts.append(table(("Reason", "Records"), dead["by_reason"].items()))
    if data["defective_turns"]:
        parts.append(tag("h3", "Defective turns by category"))
        turns = data["turns"]
        cells = ((c, n, pct(n / turns) if turns else "n/a") for c, n in data["defective_turns"].items())
        parts.append(table(("Category", "Turns", "Share of turns"), cells))
    parts.append(tag("h3", "Escalations"))
    if data["escalations"]:
        esc_rows = ((e["kind"], e["severity"], e["count"]) for e in data["escalations"])
        parts.append(table(("Kind", "Severity", "Distinct escalations"), esc_rows))
    else:
        parts.append(no_data("No escalations in the range."))
    return join(parts)


def trends(data: dict[str, Any]) -> Html:
    buckets: list[str] = data["buckets"]
    hours = data["bucket_seconds"] < 86400
    labels = [b[5:16].replace("T", " ") if hours else b[:10] for b in buckets]
    shown = sorted(data["trends"], key=lambda t: -sum(p["n"] for p in t["points"]))[:MAX_SERIES]
    names = [f"{t['judge_id']} · {t['dimension']}" for t in shown]
    series = []
    for name, trend in zip(names, shown, strict=True):
        values: list[float | None] = [None] * len(buckets)
        for point in trend["points"]:
            values[point["bucket"]] = point["percent_agreement"]
        series.append((name, values))
    chart = None
    if series:
        title = f"Judge/human agreement per {BUCKET_NAMES.get(data['bucket_seconds'], 'bucket')}"
        chart = line_chart("agreement-trend", title, labels, series, "agreement")
    parts = [_figure("agreement-trend", chart, "No judge/human pairs in the range.")]
    if series:
        parts.append(legend(names))
    if len(data["trends"]) > MAX_SERIES:
        parts.append(
            tag(
                "p",
                f"Chart and bucket table: the {MAX_SERIES} judges and dimensions with most pairs.",
                class_="note",
            )
        )
    parts.append(tag("h3", "Agreement over the whole range"))
    parts.append(
        table(
            (
                "Judge",
                "Dimension",
                "Pairs",
                "Agreement",
                "95% interval",
                "Cohen's κ",
                "κ interval",
                "Gwet AC1",
            ),
            (
                (
                    r["judge_id"],
                    r["dimension"],
                    r["n"],
                    fmt(r["percent_agreement"]),
                    interval(r.get("percent_agreement_interval")),
                    fmt(r["cohen_kappa"]),
                    interval(r.get("cohen_kappa_interval")),
                    fmt(r.get("gwet_ac1")),
                )
                for r in data["agreement"]
            ),
        )
    )
    if shown:
        parts.append(tag("h3", "Per bucket: agreement, Cohen's κ and pairs"))
        by_bucket: dict[int, list[str]] = {}
        for s, trend in enumerate(shown):
            for p in trend["points"]:
                cells = by_bucket.setdefault(p["bucket"], [""] * len(shown))
                cells[s] = f"{fmt(p['percent_agreement'])}  κ {fmt(p['cohen_kappa'])}  n={p['n']}"
        rows = ((buckets[b], *cells) for b, cells in sorted(by_bucket.items()))
        parts.append(table(("Bucket start", *names), rows))
    return join(parts)


def defect_rates(data: dict[str, Any]) -> Html:
    rows = data["defect_rates"]
    overall = [r for r in rows if r["journey"] == "*"]
    chart = None
    if any(r["estimate"] is not None for r in overall):  # none before the first labels: nothing to draw
        bars = [(f"{r['judge_id']} · {r['dimension']}", r["estimate"], r["interval"]) for r in overall]
        chart = interval_chart("defect-rates", "Defect rate per judge and dimension (all journeys)", bars)
    note = tag(
        "p",
        "Prediction-powered estimates: every judged turn, corrected by the human-labelled ones; "
        "intervals at 95%.",
        class_="note",
    )
    headers = (
        "Judge",
        "Dimension",
        "Journey",
        "Judged",
        "Labelled",
        "Coverage",
        "Defect rate",
        "95% interval",
        "Judge's own rate",
        "Humans only",
        "Humans' interval",
    )
    cells = (
        (
            r["judge_id"],
            r["dimension"],
            "all" if r["journey"] == "*" else r["journey"],
            r["n_judged"],
            r["n_labelled"],
            pct(r["coverage"], 1),
            pct(r["estimate"]),
            interval(r["interval"], as_pct=True),
            pct(r["judge_rate"]),
            pct(r["human_estimate"]),
            interval(r["human_interval"], as_pct=True),
        )
        for r in rows
    )
    table_html = table(headers, cells) if rows else no_data("No judged quality dimensions in the range.")
    return join([_figure("defect-rates", chart, "No defect rates in the range."), note, table_html])


def segments(data: dict[str, Any]) -> Html:
    rows = data["top_segments"]
    chart = None
    ranked = [r for r in rows if r["rate"] is not None]
    if ranked:
        bars = [
            (f"{r['segment']}={r['segment_value']} · {r['category']}", r["rate"], r["interval"])
            for r in ranked
        ]
        chart = interval_chart("top-segments", "Share of the segment's turns with a defect", bars)
    note = tag(
        "p",
        "Share of a segment's turns with a defect of the category, against the category's share over all "
        "turns. Ranked by the lower bound of the 95% Wilson interval over that overall share (the last "
        "column: above 1, the segment surely fails more often than average), so a handful of unlucky "
        "turns does not outrank a large segment's steady excess.",
        class_="note",
    )
    headers = (
        "Segment",
        "Value",
        "Category",
        "Defective turns",
        "Turns",
        "Share",
        "95% interval",
        "All turns",
        "Lower bound / all",
    )
    cells = (
        (
            r["segment"],
            r["segment_value"],
            r["category"],
            r["defective_turns"],
            r["turns"],
            pct(r["rate"]),
            interval(r["interval"], as_pct=True),
            pct(r["overall_rate"]),
            fmt(r["excess"], 2),
        )
        for r in rows
    )
    table_html = table(headers, cells) if rows else no_data("No defects in the range.")
    return join([_figure("top-segments", chart, "No defects in the range."), note, table_html])


def _pooled(figure: dict[str, Any] | None) -> str:
    if not figure:
        return "n/a"
    return f"{fmt(figure['rate'])} {interval(figure['interval'])} (n={figure['n']})"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 3600:.1f} h" if value >= 3600 else f"{value:.0f} s"


def vendors(data: dict[str, Any]) -> Html:
    rows = data["vendors"]
    judges = sorted({j for v in rows for j in v["judge_agreement"]})
    bars = [
        (f"{v['vendor_id']} · {j}", v["judge_agreement"][j]["rate"], v["judge_agreement"][j]["interval"])
        for v in rows
        for j in judges
        if j in v["judge_agreement"]
    ]
    chart = (
        interval_chart(
            "vendor-agreement", "Agreement of each vendor's labels with each judge", bars, upper=1.0
        )
        if bars
        else None
    )
    headers = [
        "Vendor",
        "Labels",
        "Annotators",
        "Gold labels",
        "Median label latency",
        "p90 latency",
        "Gold accuracy",
        "Agreement with consensus",
        *(f"Agreement with {j}" for j in judges),
    ]
    cells = (
        (
            v["vendor_id"],
            v["labels"],
            v["annotators"],
            v["gold_labels"],
            _seconds(v["latency_median_seconds"]),
            _seconds(v["latency_p90_seconds"]),
            _pooled(v["gold_accuracy"]),
            _pooled(v["consensus_agreement"]),
            *(_pooled(v["judge_agreement"].get(j)) for j in judges),
        )
        for v in rows
    )
    parts = [
        _figure("vendor-agreement", chart, "No vendor labels met a judge's verdict in the range."),
        tag(
            "p",
            "Figures pooled over dimensions, with 95% Wilson intervals; latency is the label's event time "
            "minus the turn's.",
            class_="note",
        ),
        table(headers, cells) if rows else no_data("No human labels in the range."),
        gold_items(data),
    ]
    if data.get("vendor_view"):
        parts.extend(
            [
                tag(
                    "h3",
                    "Scorecards of the vendors view (its own event-time window, over the turns in range)",
                ),
                _generic(data["vendor_view"]),
            ]
        )
    return join(parts)


def versions(data: dict[str, Any]) -> Html:
    rows = data["versions"]
    bars = [(f"{r['journey']}: {r['control']} → {r['treatment']}", r["lift"], r["interval"]) for r in rows]
    chart = (
        interval_chart("version-lift", "Defect-rate lift of the treatment over the control", bars)
        if rows
        else None
    )
    headers = (
        "Judge",
        "Journey",
        "Control",
        "Treatment",
        "Live",
        "Turns (control/treatment)",
        "Defect rate control",
        "Defect rate treatment",
        "Lift",
        "95% interval",
        "p-value",
        "Decision",
    )
    cells = (
        (
            r["judge_id"],
            r["journey"],
            r["control"],
            r["treatment"],
            "yes" if r["live"] else "no",
            f"{r['n_control']} / {r['n_treatment']}",
            pct(r["control_rate"]),
            pct(r["treatment_rate"]),
            pct(r["lift"]),
            interval(r["interval"], as_pct=True),
            fmt(r["p_value"], 4),
            DECISIONS.get(r["decision"], r["decision"]),
        )
        for r in rows
    )
    note = tag(
        "p",
        "Always-valid sequential tests (mixture SPRT): a decision holds however often the comparison was "
        "looked at; a positive lift means more defects with the treatment.",
        class_="note",
    )
    table_html = table(headers, cells) if rows else no_data("No model versions compared in the range.")
    return join(
        [_figure("version-lift", chart, "No model versions compared in the range."), note, table_html]
    )


def _generic(value: Any) -> Html:
    """Any JSON-like value as tables (a report section whose shape this module does not know)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for row in value for k in row))
        return table(columns, ([_cell(row.get(c)) for c in columns] for row in value))
    if isinstance(value, dict):
        nested = {k: v for k, v in value.items() if isinstance(v, list | dict)}
        flat = [(k, _cell(v)) for k, v in value.items() if k not in nested]
        parts = [table(("Key", "Value"), flat)] if flat else []
        for k, v in nested.items():
            parts.extend([tag("h4", k), _generic(v)])
        return join(parts)
    return tag("p", _cell(value))


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, float | int) for v in value):
        return interval(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
        return text if len(text) <= 200 else text[:199] + "…"
    return str(value)
