"""Labelling SLAs (``CONVOWATCH_VENDOR_SLA``): what each vendor is held to, and judging a scorecard by it.

The file (built-in default: ``streams/vendor_sla.yaml``) sets the evaluation window, default targets and
per-vendor overrides; it is validated at start-up and an error names the file and the key. Each SLA is
judged on a vendor's :class:`~detectors.label_tally.Scorecard` only once there is enough evidence
(``min_samples``, ``min_gold_samples``); until then it is not judged. Throughput is labels per hour over the
window, or since the vendor's first label if that is later (a new vendor), judged once that is
:data:`THROUGHPUT_WARM_UP_SECONDS` or the whole window: no labels is evidence too, so a vendor the scorecard
keeps after its labels have left the window (``VendorScorecard.hold``) is judged at 0 labels over it.

A window's figure is an estimate of the vendor's rate, re-judged every few minutes: compared as it is
with the target, sampling noise alone opened breach after breach for vendors that meet it (the default
targets, 14 days at 10 items an hour: a consensus agreement of 0.84 against 0.8 had 14 episodes). So a
breach opens only when the one-sided upper confidence bound of the figure, at ``confidence_level``, is
below the target (Wilson's for the ratios and the share of labels within the turnaround limit, at the
effective number of independent comparisons for gold and judge agreement, counted by label record; the
Poisson score bound for labels per hour), and closes only once the estimate itself is back on target: in
between, an open breach stays open and none opens. ``confidence_level: 0.5`` is the estimate itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import NormalDist

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from detectors.agreement_stats import wilson_interval
from detectors.label_tally import DEFAULT_TURNAROUND_BOUNDS, Scorecard
from detectors.vendor_scorecard import VendorScorecard
from schemas.common import Identifier
from streams.exceptions import ConfigError
from streams.taxonomy import Severity, not_valid_yaml

#: The ``sla`` label values: one per target kind.
SLAS = ("labels_per_hour", "turnaround", "gold_accuracy", "judge_agreement", "consensus_agreement")
#: A new vendor's labels per hour are judged once this much label time has passed since its first label (or
#: a whole window, if shorter): not on its first few minutes (2 labels 4 minutes apart are 30 an hour).
THROUGHPUT_WARM_UP_SECONDS = 3600.0


class Targets(BaseModel):
    """One vendor's targets; a ``None`` target is not enforced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_samples: int = Field(30, ge=1)
    min_gold_samples: int = Field(20, ge=1)
    min_labels_per_hour: float | None = Field(None, ge=0)
    max_turnaround_seconds: float | None = Field(86400.0, gt=0)
    turnaround_quantile: float = Field(0.9, gt=0, le=1)
    min_gold_accuracy: float | None = Field(0.9, ge=0, le=1)
    min_judge_agreement: float | None = Field(None, ge=0, le=1)
    min_consensus_agreement: float | None = Field(0.8, ge=0, le=1)
    confidence_level: float = Field(0.95, ge=0.5, lt=1)

    def target(self, sla: str) -> float | None:
        return {
            "labels_per_hour": self.min_labels_per_hour,
            "turnaround": self.max_turnaround_seconds,
            "gold_accuracy": self.min_gold_accuracy,
            "judge_agreement": self.min_judge_agreement,
            "consensus_agreement": self.min_consensus_agreement,
        }[sla]


@dataclass(frozen=True)
class Verdict:
    """One SLA judged on one scorecard: ``breached``, the target is missed beyond sampling noise (the upper
    confidence bound, ``detail["upper_bound"]``, is below it: a breach opens); ``met``, the estimate
    ``value`` is on target (an open breach closes); neither, not known either way; both None when there is
    not enough evidence."""

    sla: str
    target: float
    value: float
    samples: int
    breached: bool | None
    met: bool | None
    detail: dict[str, float]


class VendorSla(BaseModel):
    """The validated SLA file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket_seconds: int = Field(3600, gt=0)
    window_seconds: int = Field(86400, gt=0)
    evaluate_every_seconds: float = Field(300.0, gt=0)
    republish_seconds: float = Field(3600.0, gt=0)
    severity: Severity = "medium"
    runbook_url: str | None = None
    max_vendors: int = Field(50, ge=1)
    max_annotators: int = Field(100, ge=1)
    defaults: Targets = Targets()
    vendors: dict[Identifier, Targets] = {}

    @field_validator("window_seconds")
    @classmethod
    def _whole_buckets(cls, window: int, info: ValidationInfo) -> int:
        bucket = info.data.get("bucket_seconds")
        if bucket and window % bucket:
            raise ValueError(f"must be a multiple of bucket_seconds ({bucket})")
        return window

    def targets(self, vendor: str) -> Targets:
        """``vendor``'s targets: the defaults with the keys its override sets."""
        override = self.vendors.get(vendor)
        if override is None:
            return self.defaults
        return self.defaults.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})

    @property
    def turnaround_bounds(self) -> list[float]:
        """The scorecard's histogram bounds: the defaults plus every configured turnaround limit (so the
        turnaround SLA is judged exactly)."""
        limits = {t.max_turnaround_seconds for t in (self.defaults, *self.vendors.values())}
        return sorted({float(b) for b in DEFAULT_TURNAROUND_BOUNDS} | {x for x in limits if x is not None})

    def new_scorecard(self) -> VendorScorecard:
        """An empty scorecard windowed, binned and capped as this SLA file says."""
        return VendorScorecard(
            window_seconds=self.window_seconds,
            bucket_seconds=self.bucket_seconds,
            turnaround_bounds=self.turnaround_bounds,
            max_vendors=self.max_vendors,
            max_annotators=self.max_annotators,
        )

    def judge(self, vendor: str, card: Scorecard) -> list[Verdict]:
        """Every SLA with a target for ``vendor``, judged on ``card``."""
        targets = self.targets(vendor)
        verdicts = []
        for sla in SLAS:
            target = targets.target(sla)
            if target is not None:
                verdicts.append(_judge(sla, target, targets, card))
        return verdicts


def _judge(sla: str, target: float, targets: Targets, card: Scorecard) -> Verdict:
    level = targets.confidence_level
    z = NormalDist().inv_cdf(level)  # one-sided
    if sla == "labels_per_hour":
        value = card.labels_per_hour
        warm = card.full_window or card.covered_seconds >= THROUGHPUT_WARM_UP_SECONDS
        if not (warm and math.isfinite(value)):
            return Verdict(sla, target, value, card.labels, None, None, {})
        n, hours = card.labels, card.covered_seconds / 3600.0
        upper = (n + z * z / 2 + z * math.sqrt(n + z * z / 4)) / hours  # the Poisson score bound
        met = value >= target
        return Verdict(sla, target, value, n, not met and upper < target, met, _bound(upper, level))
    if sla == "turnaround":
        q = targets.turnaround_quantile
        within, n = card.within(target), card.labels
        detail = {"quantile": q, "share_within": within / n if n else math.nan}
        if n < targets.min_samples:
            return Verdict(sla, target, card.quantile(q), n, None, None, detail)
        # "quantile q of the turnarounds is at most the limit": at least q of the labels within it
        upper = _wilson_upper(within, n, level)
        met = within >= q * n - 1e-9
        detail |= _bound(upper, level)
        return Verdict(sla, target, card.quantile(q), n, not met and upper < q, met, detail)
    name = {"gold_accuracy": "gold", "judge_agreement": "judge", "consensus_agreement": "consensus"}[sla]
    agreeing, total = getattr(card, name)
    value = agreeing / total if total else math.nan
    if total < (targets.min_gold_samples if sla == "gold_accuracy" else targets.min_samples):
        return Verdict(sla, target, value, total, None, None, {})
    effective = card.effective_samples(name)  # gold and judge: fewer than compared, by label record
    upper = _wilson_upper(value * effective, effective, level)
    met = value >= target
    detail = {**_bound(upper, level), "effective_samples": effective}
    by_record = {"gold": card.gold_clusters, "judge": card.judge_clusters}.get(name)
    if by_record is not None:
        detail["records"] = by_record[0]
    return Verdict(sla, target, value, total, not met and upper < target, met, detail)


def silence_judged(verdicts: dict[str, list[Verdict]], breached: Iterable[str]) -> set[str]:
    """Of the vendors judged (``verdicts``) those the scorecard is to keep (``VendorScorecard.hold``) while
    its window holds none of their counts: those with a labels-per-hour target and labels in the window (so
    that, once their last label has left it, they are judged at 0 before they give up their slot: a vendor
    gone silent breaches unless its target is below what a window without labels can tell, about 3 labels
    a window at 95%), and those whose labels-per-hour breach is open, by name in ``breached`` (judged at 0
    for as long as they send nothing: only labels back on target close it)."""
    open_ = set(breached)
    return {
        vendor
        for vendor, judged in verdicts.items()
        for verdict in judged
        if verdict.sla == "labels_per_hour" and (verdict.samples > 0 or f"{vendor}|labels_per_hour" in open_)
    }


def _bound(upper: float, level: float) -> dict[str, float]:
    return {"upper_bound": upper, "confidence_level": level}


def _wilson_upper(successes: float, n: float, level: float) -> float:
    """The one-sided upper Wilson bound at ``level``: the two-sided interval's at ``2 level - 1``."""
    return wilson_interval(successes, n, 2 * level - 1)[1]


def load_vendor_sla(path: Path | None = None) -> VendorSla:
    """Load ``path`` (or the built-in default); errors name the file and the key at fault."""
    if path is None:
        text = resources.files("streams").joinpath("vendor_sla.yaml").read_text()
        where = "built-in vendor_sla.yaml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read vendor SLA file {path}: {exc.strerror}") from None
        where = str(path)
    try:
        data = yaml.safe_load(text)
        return VendorSla.model_validate({} if data is None else data)
    except yaml.YAMLError as exc:
        raise not_valid_yaml(where, exc) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"]) or "the document"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: key {key!r}: {message}") from None
