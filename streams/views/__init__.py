"""Views of the aggregation stage: each keeps one family of aggregates (see ``streams.aggregate``)."""

from __future__ import annotations

from streams.aggregate import View
from streams.metrics import Metrics
from streams.taxonomy import Taxonomy
from streams.views.agreement import AgreementView


def default_views(metrics: Metrics, taxonomy: Taxonomy) -> list[View]:
    return [AgreementView(metrics)]
