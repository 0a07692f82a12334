"""Labelling SLAs (``CONVOWATCH_VENDOR_SLA``): what each vendor is held to, and judging a scorecard by it.

The file (built-in default: ``streams/vendor_sla.yaml``) sets the evaluation window, default targets and
per-vendor overrides; it is validated at start-up and an error names the file and the key. Each SLA is
judged on a vendor's :class:`~detectors.vendor_scorecard.Scorecard` only once there is enough evidence
(``min_samples``, ``min_gold_samples``, a full window for throughput); until then it is not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from detectors.label_tally import DEFAULT_TURNAROUND_BOUNDS, Scorecard
from schemas.common import Identifier
from streams.exceptions import ConfigError
from streams.taxonomy import Severity, not_valid_yaml

#: The ``sla`` label values: one per target kind.
SLAS = ("labels_per_hour", "turnaround", "gold_accuracy", "judge_agreement", "consensus_agreement")


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
    """One SLA judged on one scorecard: ``breached`` is None when there is not enough evidence."""

    sla: str
    target: float
    value: float
    samples: int
    breached: bool | None
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
    if sla == "labels_per_hour":
        value = card.labels_per_hour
        judged = card.full_window and math.isfinite(value)
        return Verdict(sla, target, value, card.labels, value < target if judged else None, {})
    if sla == "turnaround":
        q = targets.turnaround_quantile
        within = card.within(target)
        detail = {"quantile": q, "share_within": within / card.labels if card.labels else math.nan}
        judged = card.labels >= targets.min_samples
        # "quantile q of the turnarounds is at most the limit": at least q of the labels within it
        breached = within < q * card.labels - 1e-9 if judged else None
        return Verdict(sla, target, card.quantile(q), card.labels, breached, detail)
    pair = {"gold_accuracy": card.gold, "judge_agreement": card.judge, "consensus_agreement": card.consensus}
    agreeing, total = pair[sla]
    needed = targets.min_gold_samples if sla == "gold_accuracy" else targets.min_samples
    value = agreeing / total if total else math.nan
    return Verdict(sla, target, value, total, value < target if total >= needed else None, {})


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
