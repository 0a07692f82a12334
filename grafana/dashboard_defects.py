"""The defects dashboard: defect rates and spikes by category and segment."""

from __future__ import annotations

from typing import Any

from panels import (
    CATEGORY,
    DEFECT_SPIKE,
    JOURNEY,
    MODEL_VERSION,
    SEGMENT,
    SOURCE,
    category_runbooks,
    dashboard,
    panel,
    target,
    ts,
)


def defects() -> dict[str, Any]:
    sel = f'{SEGMENT}, category=~"$category", source=~"$source"'
    rate = f"rate(convowatch_defects_total{{{sel}}}[$__rate_interval])"
    in_range = f"increase(convowatch_defects_total{{{sel}}}[$__range])"
    runbooks = [DEFECT_SPIKE, *category_runbooks()]
    return dashboard(
        "convowatch-defects",
        "convowatch / Defects by category and segment",
        "Where defects come from: category, dimension, journey, model version, channel and modality.",
        [
            ts(
                "Defects per minute by category",
                target(f"sum by (category) ({rate}) * 60", "{{category}}"),
                description="Defects per minute by taxonomy category (judge and human unless filtered).",
                links=runbooks,
            ),
            ts(
                "Defects per minute by dimension",
                target(f"sum by (dimension) ({rate}) * 60", "{{dimension}}"),
                description="The quality dimension that failed.",
                links=runbooks,
            ),
            ts(
                "Defects per minute by journey and model version",
                target(f"sum by (journey, model_version) ({rate}) * 60", "{{journey}} {{model_version}}"),
                description="Rollout comparison. Absolute counts: a growing traffic share raises them too.",
                links=runbooks,
            ),
            ts(
                "Defects per minute by channel and modality",
                target(f"sum by (channel, modality) ({rate}) * 60", "{{channel}} {{modality}}"),
                description="Voice/audio against chat/text.",
                links=runbooks,
            ),
            panel(
                "bargauge",
                "Defects in range by category and source",
                [target(f"sum by (category, source) ({in_range})", "{{category}} {{source}}", instant=True)],
                description="Defects in the selected time range.",
                links=runbooks,
            ),
            panel(
                "table",
                "Defects in range by segment",
                [
                    target(
                        f"sum by (journey, model_version, channel, modality, category) ({in_range})",
                        instant=True,
                        table=True,
                    )
                ],
                description="Every segment with defects in the selected time range; sort by a column.",
                links=runbooks,
                transformations=[
                    {
                        "id": "organize",
                        "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "defects"}},
                    }
                ],
            ),
        ],
        [JOURNEY, MODEL_VERSION, CATEGORY, SOURCE],
    )
