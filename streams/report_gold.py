"""The golden items of the audit report's vendor section: the ones raters miss most, and the suspect ones.

A wrong expected answer lowers every vendor's and judge's gold accuracy alike; this table names the items
(report.json ``gold.items``, from :mod:`streams.views.gold_items`) so that a lead can tell them from a
vendor's mistakes before acting on a vendor's figure.
"""

from __future__ import annotations

from typing import Any

from streams.report_charts import Html, join, pct, table, tag
from streams.views.gold_items import MIN_RATERS, SUSPECT_TURNS

HEADERS = (
    "Turn",
    "Dimension",
    "Expected",
    "Labels scored",
    "Humans missed",
    "Judges missed",
    "Disagree",
    "By vendor (missed/scored)",
    "Suspect",
)


def gold_items(data: dict[str, Any]) -> Html:
    """The heading, a one-line summary and the table of ``data["gold_items"]`` (nothing without gold)."""
    gold = data.get("gold_items")
    if not gold or not gold["items_scored"]:
        return Html("")
    summary = (
        f"{gold['items_suspect']} of {gold['items_scored']} golden items (turn and dimension) scored in the "
        f"range are suspect: most of their labels, humans' and judges' alike (at least {MIN_RATERS}), "
        "miss the expected answer, which is then likelier wrong than every rater. They lower every vendor's "
        f"gold accuracy alike: check them before a vendor's. The {len(gold['items'])} items listed are "
        "the suspect ones first, then those missed most."
    )
    turns = gold.get("suspect_turns") or []
    if turns:
        summary += (
            f" The {len(turns)} golden turns with a suspect item, most suspect items first (at most "
            f"{SUSPECT_TURNS}): " + ", ".join(turns) + "."
        )
    cells = (
        (
            r["turn_id"],
            r["dimension"],
            r["expected"],
            r["scored"],
            f"{r['humans_missed']} of {r['humans_scored']}",
            f"{r['judges_missed']} of {r['judges_scored']}",
            pct(r["disagree_share"], 0),
            ", ".join(f"{v} {c['missed']}/{c['scored']}" for v, c in r["vendors"].items()) or "none",
            "suspect" if r["suspect"] else "",
        )
        for r in gold["items"]
    )
    return join(
        [
            tag("h3", "Golden items the raters miss"),
            tag("p", summary, class_="note"),
            table(HEADERS, cells),
        ]
    )
