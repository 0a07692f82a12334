"""The defect taxonomy file: validated at start, errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.exceptions import ConfigError
from streams.taxonomy import load_taxonomy


def test_the_built_in_taxonomy_names_a_team_for_every_dimension() -> None:
    taxonomy = load_taxonomy()
    assert set(taxonomy.teams()) == set(taxonomy.dimensions)
    assert taxonomy.high_risk_topics == {"earnings", "identity", "fraud"}


def test_a_dimension_that_raises_no_defect_is_refused(tmp_path: Path) -> None:
    # accepted before, and silently never used: only quality dimensions (pass/fail) raise defects
    path = tmp_path / "taxonomy.yaml"
    path.write_text("dimensions:\n  toxicity: {category: unsafe, severity: high, high_risk: true}\n")
    with pytest.raises(ConfigError, match=rf"{path}: key 'dimensions'.*toxicity: not a quality dimension"):
        load_taxonomy(path)


def test_high_risk_topics_are_case_folded(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(
        "high_risk_topics: [Earnings, FRAUD]\ndimensions:\n  safety: {category: unsafe, severity: critical}\n"
    )
    assert load_taxonomy(path).high_risk_topics == {"earnings", "fraud"}


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        # a JSONL file given as the taxonomy: PyYAML's message ran to four lines, quoting the record
        (
            '{"turn_id": "t-1", "user_text": "my card number"}\n{"turn_id": "t-2"}\n',
            "line 2 column 1",
            "but found",
        ),
        ("dimensions: [safety\nteams: {}\n", "line 2 column 6", "(while parsing a flow sequence)"),
    ],
)
def test_a_file_that_is_not_yaml_is_a_one_line_error_naming_line_and_column(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_taxonomy(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not valid YAML at {where}: ")
    assert problem in message and "\n" not in message
    assert "card number" not in message
