"""The defect taxonomy: dimension -> category, severity, high-risk flag, runbook, owner."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.common import QUALITY_DIMENSIONS
from streams.exceptions import ConfigError

Severity = Literal["critical", "high", "medium", "low"]
#: The severities, most severe first.
SEVERITIES: tuple[str, ...] = get_args(Severity)


class DimensionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str = Field(pattern=r"^[a-z0-9_]+$")
    severity: Severity
    high_risk: bool = False
    runbook_url: str | None = None
    owner: str | None = None


class Taxonomy(BaseModel):
    """Validated taxonomy (quality dimensions only). A quality dimension it leaves out falls back to
    category ``other``, severity ``medium``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    high_risk_topics: frozenset[str] = frozenset({"earnings", "identity", "fraud"})
    """Matched without regard to case: a turn's ``Earnings`` is ``earnings``."""
    dimensions: dict[str, DimensionPolicy]

    @field_validator("dimensions")
    @classmethod
    def _quality_dimensions_only(cls, dimensions: dict[str, DimensionPolicy]) -> dict[str, DimensionPolicy]:
        unknown = sorted(set(dimensions) - QUALITY_DIMENSIONS)
        if unknown:  # it would be accepted and never used: only quality dimensions raise defects
            raise ValueError(
                f"{', '.join(unknown)}: not a quality dimension (defects and escalations come from "
                f"{', '.join(sorted(QUALITY_DIMENSIONS))}, whose labels are pass or fail)"
            )
        return dimensions

    @field_validator("high_risk_topics")
    @classmethod
    def _casefold(cls, topics: frozenset[str]) -> frozenset[str]:
        return frozenset(t.casefold() for t in topics)

    def policy(self, dimension: str) -> DimensionPolicy:
        return self.dimensions.get(dimension, _FALLBACK)

    def teams(self) -> dict[str, str]:
        """Owning team per dimension, for the dimensions that name one."""
        return {dim: policy.owner for dim, policy in self.dimensions.items() if policy.owner}

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self.dimensions.values()} | {_FALLBACK.category})


_FALLBACK = DimensionPolicy(category="other", severity="medium")


def not_valid_yaml(where: str, exc: yaml.YAMLError) -> ConfigError:
    """The error for a configuration file that is not YAML, in one line naming the line and column (PyYAML's
    own message runs to four, quoting the line, which may hold anything)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or problem is None:
        return ConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}")
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return ConfigError(f"{where}: not valid YAML at line {mark.line + 1} column {mark.column + 1}: {detail}")


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Load ``path`` (or the built-in default); errors name the file and the key at fault."""
    if path is None:
        text = resources.files("streams").joinpath("taxonomy.yaml").read_text()
        where = "built-in taxonomy.yaml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read taxonomy file {path}: {exc.strerror}") from None
        where = str(path)
    try:
        data = yaml.safe_load(text)
        return Taxonomy.model_validate(data)
    except yaml.YAMLError as exc:
        raise not_valid_yaml(where, exc) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: key {key!r}: {first['msg']}") from None
