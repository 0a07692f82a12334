"""The human table of a ``bench/throughput.py`` result (also ``--show`` of an earlier ``--json-out``)."""

from __future__ import annotations

from typing import Any


def fmt_runs(runs: list[dict[str, Any]], key: str, fmt: str = "{:,.0f}") -> str:
    return ", ".join(fmt.format(r[key]) for r in runs if key in r)


def print_table(r: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []
    d = r["data"]
    mix = ", ".join(f"{s} {v['count']:,} ({v['mean_bytes']:.0f} B)" for s, v in d["by_stream"].items())
    rows.append(("input records", f"{d['events']:,}, mean {d['mean_bytes']:.0f} B: {mix}"))
    rows.append(("  pre-produce (confluent-kafka)", f"{d['produce_events_per_second']:,.0f} events/s"))
    if r["raw"]["runs"]:
        a = r["raw"]
        rows.append(
            (
                "(a) raw aiokafka getmany",
                f"{a['events_per_second']:,.0f} events/s  "
                f"({a['cpu_us_per_event']:.1f} CPU µs/event)  "
                f"runs: {fmt_runs(a['runs'], 'events_per_second')}",
            )
        )
    if r["worker"]["runs"]:
        w = r["worker"]
        rows.append(
            (
                "(b) worker, inputs committed",
                f"{w['events_per_second']:,.0f} events/s  "
                f"({w['cpu_us_per_event']:.1f} CPU µs/event, {w['cpu_system_share']:.0%} of it kernel; "
                f"{w['cpu_utilisation']:.0%} of a core)  "
                f"runs: {fmt_runs(w['runs'], 'events_per_second')}",
            )
        )
        rows.append(("    all records processed", f"{w['events_per_second_processed']:,.0f} events/s"))
        if c := r.get("worker_compare"):
            pairs = ", ".join(f"{x:.2f}x" for x in c["ratio_pairs"])
            rows.append(
                (
                    f"(b') same on {c['event_loop']}",
                    f"{c['events_per_second']:,.0f} events/s ({c['cpu_us_per_event']:.1f} CPU µs/event); "
                    f"(b) on {w.get('event_loop', '?')} / (b') per run: {pairs}",
                )
            )
        agg = w.get("events_per_second_with_aggregation", float("nan"))
        if agg == agg:  # not NaN
            rows.append(
                (
                    "    incl. aggregation committed",
                    f"{w['events_per_second_with_aggregation']:,.0f} events/s  "
                    f"({w['cpu_us_per_event_with_aggregation']:.1f} CPU µs/event)",
                )
            )
        rows.append(
            (
                "    join pipeline share of wall",
                f"{w['join_processing_share']:.0%} (convowatch_processing_seconds_sum / wall)",
            )
        )
        vol = w["runs"][-1]["produced"]
        recs = sum(v["records"] for v in vol.values())
        byts = sum(v["bytes"] for v in vol.values())
        n_in = r["data"]["events"]
        rows.append(
            (
                "    written to Kafka per input",
                f"{recs / n_in:.2f} records, {byts / n_in:,.0f} B "
                "(outputs + internal + changelogs, last run)",
            )
        )
        rows.append(("    worker startup to 1st record", f"{w['startup_seconds']:.1f} s (excluded)"))
        rows.append(
            (
                "    outputs (last run)",
                ", ".join(f"{k} {v:,.0f}" for k, v in sorted(w["runs"][-1]["outputs"].items())),
            )
        )
        if r["raw"]["runs"]:
            pairs = ", ".join(f"{x:.1%}" for x in r["ratio_pairs"])
            rows.append(
                ("(b)/(a) ratio", f"{r['ratio_worker_to_raw']:.1%} of the raw baseline (per run: {pairs})")
            )
    for lat in r.get("latency", []):
        # the worker had not caught up when the drain ended: what was read is a biased sample, so every
        # figure is a lower bound
        lower = lat["missing_escalations"] > 0 or lat["drain_seconds_to_catch_up"] is None
        bound = "≥ " if lower else ""
        caught = lat["drain_seconds_to_catch_up"]
        rows.append(
            (
                f"(c) latency at {lat['target_rate']:,.0f}/s",
                f"{lat['offered_events']:,} events offered; "
                f"{lat['injected_safety_failures']} injected safety failures, "
                f"{lat['missing_escalations']} escalations never read; worker "
                + (
                    f"caught up {caught:.1f} s after the load stopped"
                    if caught is not None
                    else "had NOT caught up when the drain ended (figures are lower bounds)"
                ),
            )
        )
        for i, w in enumerate(lat["windows"]):
            rows.append(
                (
                    f"    window {i + 1}",
                    f"offered {w['offered']:,.0f} events/s, worker CPU {w['cpu_utilisation']:.0%} of a core"
                    + (" (join and aggregate workers together)" if lat.get("roles") == "split" else ""),
                )
            )
            for name in ("escalations", "defects"):
                x = w[name]
                if not x["n"]:
                    rows.append((f"      {name} p50/p99/max", "none read (n=0)"))
                    continue
                rows.append(
                    (
                        f"      {name} p50/p99/max",
                        f"{bound}{x['p50_ms']:,.0f} / {bound}{x['p99_ms']:,.0f} / "
                        f"{bound}{x['max_ms']:,.0f} ms (n={x['n']})",
                    )
                )
        for name in ("escalations", "defects"):
            x = lat[name]
            rows.append(
                (
                    f"    all windows: {name}",
                    f"p50 {bound}{x['p50_ms']:,.0f} ms, p99 {bound}{x['p99_ms']:,.0f} ms, "
                    f"max {bound}{x['max_ms']:,.0f} ms (n={x['n']})",
                )
            )
    if "memory" in r:
        m = r["memory"]
        rows.append(
            (
                "(d) memory per pending turn",
                f"{m['bytes_per_pending_turn']:,.0f} B (empty chat text; "
                f"{m['turns']:,} turns; input record {m['input_record_bytes_mean']:.0f} B, "
                f"entry as JSON {m['entry_json_bytes']} B)",
            )
        )
        for t in m["top_allocations"][:4]:
            rows.append(("", f"{t['bytes_per_turn']:7.0f} B  {t['where']}"))
    if "embedded" in r:
        e = r["embedded"]
        for phase, what in (("cold", "fresh process"), ("warm", "detector caches filled")):
            x = e[phase]
            rows.append(
                (
                    f"(e) embedded pipeline, {phase}",
                    f"{x['events_per_second']:,.0f} events/s ({x['cpu_us_per_event']:.1f} CPU µs/event; "
                    f"{what}; {e['runs'][0][phase]['events']:,} records)  "
                    "runs: "
                    + ", ".join(format(run[phase]["events_per_second"], ",.0f") for run in e["runs"]),
                )
            )
    code = r.get("code", {})
    if code:
        rows.append(
            (
                "code",
                f"HEAD {code['head'][:12]}, working tree diff sha1 {code['diff_sha1'][:12]} "
                f"({len(code['modified'])} modified/untracked files)",
            )
        )
    rows.append(
        (
            "machine",
            f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}; load average before "
            f"{r['load_average_before']}, after {r['load_average_after']}",
        )
    )
    rows.append(("wall time", f"{r['wall_seconds']:.0f} s"))
    rows.append(("command", r["command"]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
