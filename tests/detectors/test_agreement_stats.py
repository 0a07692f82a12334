"""AgreementStats against scikit-learn, statsmodels, Gwet's published example and a direct numpy AC1."""

from __future__ import annotations

import json
import math
import random
import warnings
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from detectors.agreement_breakdown import AgreementBreakdown
from detectors.agreement_stats import (
    AgreementStats,
    cohen_kappa_with_se,
    gwet_ac1_with_se,
    table_labels,
    wilson_interval,
)

TOL = 1e-9
Z = 1.959963984540054


def _close(x: float, y: float, tol: float = TOL) -> bool:
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol


def _table(a: list[str], b: list[str]) -> tuple[list[str], np.ndarray]:
    labels = sorted(set(a) | set(b))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    return labels, table


def _numpy_ac1(table: np.ndarray, q: int) -> tuple[float, float]:
    """Gwet (2008), eqs. for AC1 and its variance in the expanded three-term form, written independently."""
    n = table.sum()
    p = table / n
    p_a = np.trace(p)
    pi = (p.sum(axis=1) + p.sum(axis=0)) / 2
    p_e = (pi * (1 - pi)).sum() / (q - 1)
    g = (p_a - p_e) / (1 - p_e)
    term1 = p_a * (1 - p_a)
    term2 = np.sum(np.diag(p) * (1 - pi)) / (q - 1) - p_a * p_e
    weights = (1 - (pi[:, None] + pi[None, :]) / 2) ** 2
    term3 = np.sum(p * weights) / (q - 1) ** 2 - p_e**2
    var = (term1 - 4 * (1 - g) * term2 + 4 * (1 - g) ** 2 * term3) / (n * (1 - p_e) ** 2)
    return float(g), float(math.sqrt(max(var, 0.0)))


def _stream(
    rng: random.Random,
    n: int,
    classes: list[str],
    accuracy: float,
    weights: list[float] | None = None,
    b_never: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    b_classes = [c for c in classes if c not in b_never]
    b_weights = [w for c, w in zip(classes, weights, strict=True) if c not in b_never] if weights else None
    a, b = [], []
    for _ in range(n):
        truth = rng.choices(b_classes, weights=b_weights)[0]
        a.append(truth if rng.random() < accuracy else rng.choices(classes, weights=weights)[0])
        b.append(truth)
    return a, b


KINDS = [
    "binary",
    "three",
    "five",
    "skewed_98_2",
    "skewed_multi",
    "b_never_uses_a_label",
    "disjoint",
    "constant_b",
    "one_class_only",
]


def _make(kind: str, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(f"{kind}-{seed}")
    n = rng.choice([2, 3, 10, 57, 200, 1000])
    accuracy = rng.random()
    if kind == "binary":
        return _stream(rng, n, ["pass", "fail"], accuracy)
    if kind == "three":
        return _stream(rng, n, ["a", "b", "c"], accuracy)
    if kind == "five":
        return _stream(rng, n, [f"c{i}" for i in range(5)], accuracy)
    if kind == "skewed_98_2":
        return _stream(rng, max(n, 300), ["pass", "fail"], 0.5 + accuracy / 2, weights=[98, 2])
    if kind == "skewed_multi":
        return _stream(rng, max(n, 300), ["a", "b", "c", "d"], accuracy, weights=[90, 6, 3, 1])
    if kind == "b_never_uses_a_label":
        return _stream(rng, n, ["output_1", "output_2", "tie"], accuracy, b_never=frozenset({"tie"}))
    if kind == "disjoint":
        return [rng.choice("xy") for _ in range(n)], [rng.choice("pq") for _ in range(n)]
    if kind == "constant_b":
        return [rng.choice(["pass", "fail"]) for _ in range(n)], ["pass"] * n
    if kind == "one_class_only":
        return ["pass"] * n, ["pass"] * n
    raise AssertionError(kind)


CASES = [(kind, seed) for kind in KINDS for seed in range(6)]


def _feed(a: list[str], b: list[str], **params) -> AgreementStats:
    stats = AgreementStats(**params)
    for x, y in zip(a, b, strict=True):
        assert stats.update(x, y) is stats
    return stats


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_kappa_and_its_interval_match_sklearn_and_statsmodels(kind, seed):
    a, b = _make(kind, seed)
    stats = _feed(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = float(cohen_kappa_score(a, b))
        result = cohens_kappa(_table(a, b)[1])
    assert _close(stats.cohen_kappa, expected), (stats.cohen_kappa, expected)
    if math.isnan(expected):
        assert math.isnan(stats.cohen_kappa_se) and all(math.isnan(x) for x in stats.cohen_kappa_interval)
        return
    # statsmodels' var_kappa rounds where it is 0 (to -1e-17, std nan, or to 1.5e-18, std 1.2e-9, with a
    # constant rater): compare the variance; ours is exact, so 0 there, and the interval undefined
    assert abs(stats.cohen_kappa_se**2 - float(result.var_kappa)) <= TOL, (
        stats.cohen_kappa_se,
        result.var_kappa,
    )
    if stats.cohen_kappa_se == 0.0:
        assert all(math.isnan(x) for x in stats.cohen_kappa_interval)
    else:
        assert _close(stats.cohen_kappa_se, float(result.std_kappa))
        low, high = stats.cohen_kappa_interval
        assert _close(low, max(float(result.kappa_low), -1.0))
        assert _close(high, min(float(result.kappa_upp), 1.0))


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_ac1_matches_a_direct_numpy_implementation(kind, seed):
    a, b = _make(kind, seed)
    stats = _feed(a, b)
    labels, table = _table(a, b)
    if len(labels) < 2:
        assert math.isnan(stats.gwet_ac1) and math.isnan(stats.gwet_ac1_se)
        return
    ac1, se = _numpy_ac1(table, len(labels))
    assert _close(stats.gwet_ac1, ac1) and _close(stats.gwet_ac1_se, se), (
        stats.gwet_ac1,
        ac1,
        stats.gwet_ac1_se,
        se,
    )
    low, high = stats.gwet_ac1_interval
    if se == 0.0:  # a zero-width Wald interval would read as certainty: undefined instead
        assert math.isnan(low) and math.isnan(high)
    else:
        assert _close(low, max(ac1 - Z * se, -1.0)) and _close(high, min(ac1 + Z * se, 1.0))


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_percent_agreement_and_wilson_interval_match_statsmodels(kind, seed):
    a, b = _make(kind, seed)
    stats = _feed(a, b)
    agree = sum(x == y for x, y in zip(a, b, strict=True))
    assert stats.percent_agreement == pytest.approx(agree / len(a), abs=TOL)
    low, high = proportion_confint(agree, len(a), alpha=0.05, method="wilson")
    assert stats.percent_agreement_interval == pytest.approx((low, high), abs=TOL)


def test_gwet_handbook_example_published_values():
    """Gwet's 3x3 'abstractors' table; irrCAC (Gwet's own package) prints AC1 0.8493305 (se 0.04321747)
    and Cohen's kappa 0.7964094 (se 0.05891072)."""
    counts = {"Ectopic": {"Ectopic": 13}, "AIU": {"AIU": 20, "NIU": 7}, "NIU": {"AIU": 4, "NIU": 56}}
    stats = AgreementStats()
    for a, row in counts.items():
        for b, count in row.items():
            for _ in range(count):
                stats.update(a, b)
    assert stats.n == 100
    assert stats.gwet_ac1 == pytest.approx(0.8493305, abs=5e-8)
    assert stats.gwet_ac1_se == pytest.approx(0.04321747, abs=5e-9)
    assert stats.cohen_kappa == pytest.approx(0.7964094, abs=5e-8)
    assert stats.cohen_kappa_se == pytest.approx(0.05891072, abs=5e-9)
    assert stats.percent_agreement == pytest.approx(0.89)


def test_hand_worked_two_by_two():
    """40 pairs: both fail 10, a fail/b pass 5, a pass/b fail 5, both pass 20 (worked by hand)."""
    stats = AgreementStats()
    for a, b, count in [("fail", "fail", 10), ("fail", "pass", 5), ("pass", "fail", 5), ("pass", "pass", 20)]:
        for _ in range(count):
            stats.update(a, b)
    # p_o = 30/40 = 0.75; marginals 15/40 and 25/40 for both raters
    p_e_kappa = (15 / 40) ** 2 + (25 / 40) ** 2  # 0.53125
    assert stats.cohen_kappa == pytest.approx((0.75 - p_e_kappa) / (1 - p_e_kappa))  # 0.4666...
    # AC1: pi = (0.375, 0.625), p_e = 2 * 0.375 * 0.625 / 1 = 0.46875
    assert stats.gwet_ac1 == pytest.approx((0.75 - 0.46875) / (1 - 0.46875))  # 0.5294...


def test_fixed_categories_set_q_and_reject_other_labels():
    a, b = _make("skewed_98_2", 1)
    observed = _feed(a, b)
    fixed = _feed(a, b, categories=["pass", "fail", "unsure"])
    assert fixed.cohen_kappa == observed.cohen_kappa  # kappa does not depend on unused categories
    _, table = _table(a, b)
    padded = np.zeros((3, 3))
    padded[:2, :2] = table
    ac1, se = _numpy_ac1(padded, 3)
    assert fixed.gwet_ac1 == pytest.approx(ac1, abs=TOL) and fixed.gwet_ac1_se == pytest.approx(se, abs=TOL)
    with pytest.raises(ValueError, match="not in categories"):
        fixed.update("pass", "maybe")
    # one label only, but a two-label scale: AC1 is defined (= percent agreement), kappa is not
    one = _feed(["pass"] * 5, ["pass"] * 5, categories=["pass", "fail"])
    assert one.gwet_ac1 == 1.0 and math.isnan(one.cohen_kappa)


@pytest.mark.parametrize("bad", [[], ["x"], ["a", "a"], [1, 2]])
def test_bad_categories_raise(bad):
    with pytest.raises(ValueError):
        AgreementStats(categories=bad)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "0.95"])
def test_bad_confidence_level_raises(level):
    with pytest.raises(ValueError):
        AgreementStats(confidence_level=level)


def test_empty_is_undefined():
    stats = AgreementStats()
    assert stats.n == 0 and stats.confusion == {}
    for name in ("percent_agreement", "cohen_kappa", "cohen_kappa_se", "gwet_ac1", "gwet_ac1_se"):
        assert math.isnan(getattr(stats, name))
    for name in ("percent_agreement_interval", "cohen_kappa_interval", "gwet_ac1_interval"):
        assert all(math.isnan(x) for x in getattr(stats, name))


def test_merge_equals_one_stream_and_checks_params():
    a, b = _make("three", 4)
    half = len(a) // 2
    left, right = _feed(a[:half], b[:half]), _feed(a[half:], b[half:])
    whole = _feed(a, b)
    assert left.merge(right) is left
    assert left.confusion == whole.confusion and left.n == whole.n
    assert left.summary() == whole.summary()
    with pytest.raises(ValueError):
        left.merge(AgreementStats(confidence_level=0.9))
    assert right.n == len(a) - half  # the merged-in tracker is untouched


def test_summary_is_complete_and_json_serialisable():
    a, b = _make("binary", 2)
    summary = _feed(a, b).summary()
    assert set(summary) == {
        "n",
        "percent_agreement",
        "percent_agreement_interval",
        "cohen_kappa",
        "cohen_kappa_se",
        "cohen_kappa_interval",
        "gwet_ac1",
        "gwet_ac1_se",
        "gwet_ac1_interval",
    }
    json.dumps(summary)


@pytest.mark.parametrize(
    ("successes", "n"), [(0, 1), (1, 1), (0, 50), (50, 50), (3, 200), (117, 250), (1, 3)]
)
def test_wilson_interval_matches_statsmodels(successes, n):
    assert wilson_interval(successes, n) == pytest.approx(
        proportion_confint(successes, n, alpha=0.05, method="wilson"), abs=TOL
    )
    assert wilson_interval(successes, n, 0.8) == pytest.approx(
        proportion_confint(successes, n, alpha=0.2, method="wilson"), abs=TOL
    )


def test_wilson_interval_of_nothing_is_undefined():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_perfect_agreement_over_a_few_pairs_has_no_interval_rather_than_a_zero_wide_one() -> None:
    stats = AgreementStats()
    for label in ["pass"] * 7 + ["fail"] * 3:
        stats.update(label, label)
    assert stats.cohen_kappa == 1.0 and stats.gwet_ac1 == 1.0
    assert all(math.isnan(v) for v in (*stats.cohen_kappa_interval, *stats.gwet_ac1_interval))
    low, high = stats.percent_agreement_interval  # Wilson: still informative at n = 10
    assert 0.6 < low < 1.0 and high == 1.0


def test_kappa_and_ac1_are_the_same_whatever_the_hash_seed():
    # summed over a set of labels, their last digits followed PYTHONHASHSEED with three labels or more:
    # two runs of the same input published different figures
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import random\n"
        "from detectors.agreement_stats import cohen_kappa_with_se, gwet_ac1_with_se\n"
        "out = []\n"
        "for seed in range(60):\n"
        "    rng = random.Random(seed)\n"
        "    labels = [f'l{k}' for k in range(rng.randrange(3, 12))]\n"
        "    confusion = {}\n"
        "    for _ in range(rng.randrange(20, 3000)):\n"
        "        a = rng.choice(labels)\n"
        "        b = a if rng.random() < 0.6 else rng.choice(labels)\n"
        "        confusion.setdefault(a, {})[b] = confusion.get(a, {}).get(b, 0) + 1\n"
        "    out.append((cohen_kappa_with_se(confusion), gwet_ac1_with_se(confusion)))\n"
        "print(repr(out))\n"
    )
    root = Path(__file__).resolve().parents[2]
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(runs) == 1


def _fce_variance(confusion: dict[str, dict[str, int]]) -> Fraction:
    """Fleiss, Cohen and Everitt's (1969) kappa variance as printed, in exact rational arithmetic."""
    n = sum(sum(row.values()) for row in confusion.values())
    labels = set(confusion) | {b for row in confusion.values() for b in row}
    p = {(a, b): Fraction(c, n) for a, row in confusion.items() for b, c in row.items()}
    row_p = {k: sum((v for (a, _), v in p.items() if a == k), Fraction(0)) for k in labels}
    col_p = {k: sum((v for (_, b), v in p.items() if b == k), Fraction(0)) for k in labels}
    p_o = sum((v for (a, b), v in p.items() if a == b), Fraction(0))
    p_e = sum(row_p[k] * col_p[k] for k in labels)
    k = (p_o - p_e) / (1 - p_e)
    diagonal = sum(v * (1 - (row_p[a] + col_p[a]) * (1 - k)) ** 2 for (a, b), v in p.items() if a == b)
    off = sum(v * (col_p[a] + row_p[b]) ** 2 for (a, b), v in p.items() if a != b)
    return (diagonal + (1 - k) ** 2 * off - (k - p_e * (1 - k)) ** 2) / (n * (1 - p_e) ** 2)


def _gwet_variance(confusion: dict[str, dict[str, int]]) -> Fraction:
    """Gwet's (2008) AC1 variance, in exact rational arithmetic (q: the labels seen)."""
    n = sum(sum(row.values()) for row in confusion.values())
    labels = set(confusion) | {b for row in confusion.values() for b in row}
    q = len(labels)
    p = {(a, b): Fraction(c, n) for a, row in confusion.items() for b, c in row.items()}
    pi = {k: sum((v for (a, b), v in p.items() for x in (a, b) if x == k), Fraction(0)) / 2 for k in labels}
    p_o = sum((v for (a, b), v in p.items() if a == b), Fraction(0))
    p_e = sum(v * (1 - v) for v in pi.values()) / (q - 1)
    g = (p_o - p_e) / (1 - p_e)
    total = sum(
        v * ((1 if a == b else 0) - 2 * (1 - g) * (1 - (pi[a] + pi[b]) / 2) / (q - 1)) ** 2
        for (a, b), v in p.items()
    )
    return (total - (p_o - 2 * (1 - g) * p_e) ** 2) / (n * (1 - p_e) ** 2)


def _random_confusions(count: int) -> list[dict[str, dict[str, int]]]:
    rng = random.Random(11)
    tables = []
    for _ in range(count):
        labels = [f"l{i}" for i in range(rng.randint(2, 5))]
        mode = rng.choice(["perfect", "constant_a", "constant_b", "random"])
        confusion: dict[str, dict[str, int]] = {}
        for _ in range(rng.randint(2, 80)):
            a, b = rng.choice(labels), rng.choice(labels)
            a, b = {"perfect": (a, a), "constant_a": ("l0", b), "constant_b": (a, "l0"), "random": (a, b)}[
                mode
            ]
            confusion.setdefault(a, {})[b] = confusion.get(a, {}).get(b, 0) + 1
        tables.append(confusion)
    return tables


@pytest.mark.parametrize("confusion", _random_confusions(300))
def test_standard_errors_are_those_of_exact_arithmetic(confusion):
    # computed in floats, a variance that is 0 came out 1e-17 or so: a standard error of 1e-8 and a
    # zero-width interval where the README promises NaN
    if len(table_labels(confusion)) == 1:  # both raters one and the same label: both undefined
        assert all(math.isnan(x) for x in (*cohen_kappa_with_se(confusion), *gwet_ac1_with_se(confusion)))
        return
    exact = {"kappa": _fce_variance(confusion), "ac1": _gwet_variance(confusion)}
    got = {"kappa": cohen_kappa_with_se(confusion)[1], "ac1": gwet_ac1_with_se(confusion)[1]}
    for name, variance in exact.items():
        assert (got[name] == 0.0) == (variance == 0), (name, confusion, got[name], variance)
        assert got[name] ** 2 == pytest.approx(float(variance), rel=1e-12, abs=0.0), (name, confusion)


@pytest.mark.parametrize(
    ("confusion", "kappa"),
    [
        ({"fail": {"pass": 3}, "pass": {"pass": 17}}, 0.0),  # humans never fail, the judge 3 of 20
        ({"fail": {"pass": 1}, "pass": {"pass": 199}}, 0.0),
        ({"pass": {"pass": 93, "fail": 7}}, 0.0),  # the judge never fails, humans 7 of 100
        ({"l3": {"l3": 11}, "l1": {"l1": 12}, "l0": {"l0": 14}, "l2": {"l2": 4}}, 1.0),  # 3e-9 in floats
        ({"pass": {"fail": 5}, "fail": {"pass": 5}}, -1.0),  # complete disagreement, balanced
    ],
)
def test_kappa_has_no_interval_where_its_standard_error_is_zero(confusion, kappa):
    stats = AgreementStats()
    for a, row in confusion.items():
        for b, count in row.items():
            for _ in range(count):
                stats.update(a, b)
    assert stats.cohen_kappa == kappa and stats.cohen_kappa_se == 0.0
    summary = stats.summary()
    assert all(math.isnan(x) for x in (*stats.cohen_kappa_interval, *summary["cohen_kappa_interval"]))
    if kappa != 0.0:  # AC1 is 1 or -1 there too
        assert stats.gwet_ac1 == kappa and stats.gwet_ac1_se == 0.0
        assert all(math.isnan(x) for x in summary["gwet_ac1_interval"])
    else:  # AC1 is not stuck where one rater is: it keeps its interval
        low, high = summary["gwet_ac1_interval"]
        assert low < stats.gwet_ac1 < high


def test_windows_and_segments_have_no_zero_width_kappa_interval():
    breakdown = AgreementBreakdown(segments=["journey"], windows={"1h": [3600, 300]})
    for i in range(200):  # humans never fail; the judge fails 1 of 200
        breakdown.update(10.0 * i, {"journey": "shop"}, "fail" if i == 50 else "pass", "pass")
    for stats in (breakdown.overall(), breakdown.window("1h"), breakdown.segment("journey")["shop"]):
        assert stats.cohen_kappa == 0.0
        assert all(math.isnan(x) for x in stats.cohen_kappa_interval), stats.cohen_kappa_interval
