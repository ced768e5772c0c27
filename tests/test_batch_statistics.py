"""The vectorised bootstrap statistics (``MetricDef.batch_statistic`` / ``batch_statistic_at``) of
BBQ, StereoSet, WinoBias and calibration give, resample by resample, what the per-resample pandas
statistic gives: on the mock model's unit tables, on hand-made tables with edge cases (a group
with no rows of one condition, every answer "unknown", all correct, NaN values, resamples holding
only one condition), for every breakdown group and threshold row; and a report computed with them
equals one computed without them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import trustslm
from trustslm.probes.bbq import BBQProbe
from trustslm.probes.calibration import CalibrationProbe
from trustslm.probes.perturbation import PerturbationConsistencyProbe
from trustslm.probes.stereoset import StereoSetProbe
from trustslm.probes.winobias import WinoBiasProbe
from trustslm.scoring.metrics import at_level, compute_metrics, resampled_values
from trustslm.scoring.resample import count_where, group_means, group_sums, mean_where, row_means, row_sums

PROBES = {"fairness.bbq": BBQProbe, "fairness.stereoset": StereoSetProbe, "fairness.winobias": WinoBiasProbe,
          "truthfulness.calibration": CalibrationProbe}
B = 100  # resamples of a whole table
B_GROUP = 20  # of a breakdown group's sub-table (the pandas reference is the slow part)
RESAMPLES = 40  # the audits' bootstrap


def _pandas_values(defn, frame, idx):
    return np.array([float(defn.statistic(frame.iloc[row])) for row in idx])


def _assert_batch_equals_pandas(defn, frame, idx):
    batch = np.asarray(defn.batch_statistic(frame, idx), dtype=float)
    assert batch.shape == (len(idx),)
    np.testing.assert_allclose(batch, _pandas_values(defn, frame, idx), rtol=0, atol=1e-12, equal_nan=True)
    # and the bootstrap takes it (no per-resample pandas evaluation)
    np.testing.assert_array_equal(resampled_values(defn, frame, idx), batch)


def _check_all_rows(probe_cls, units, rng, *, extra_idx=None):
    """Every metric with a custom statistic, on the whole table (``extra_idx``: more resamples of
    it), on each breakdown group's sub-table (as compute_metrics cuts it) and at each level."""
    checked = 0
    for defn in probe_cls.metrics:
        if defn.statistic is None and defn.statistic_at is None:
            continue
        n = len(units)
        idx = rng.integers(0, n, size=(B, n))
        if extra_idx is not None:
            idx = np.vstack([idx, extra_idx])
        if defn.statistic is not None:
            _assert_batch_equals_pandas(defn, units, idx)
            checked += 1
            for col in defn.by:
                for value in units[col].dropna().unique():
                    sub = units[units[col] == value].reset_index(drop=True)
                    _assert_batch_equals_pandas(defn, sub, rng.integers(0, len(sub), size=(B_GROUP, len(sub))))
                    checked += 1
        for level in defn.at:
            _assert_batch_equals_pandas(at_level(defn, level), units, idx[-B_GROUP:] if extra_idx is None
                                        else np.vstack([idx[:B_GROUP], extra_idx]))
            checked += 1
    return checked


@pytest.fixture(scope="module")
def mock_report():
    return trustslm.audit("mock", probes=list(PROBES), bootstrap_resamples=RESAMPLES, progress=False)


def test_every_custom_statistic_has_a_batch_path():
    for probe_cls in (*PROBES.values(), PerturbationConsistencyProbe):
        for defn in probe_cls.metrics:
            if defn.statistic is not None:
                assert defn.batch_statistic is not None, (probe_cls.kind, defn.name)
            if defn.statistic_at is not None:
                assert defn.batch_statistic_at is not None, (probe_cls.kind, defn.name)


@pytest.mark.parametrize("probe_id", list(PROBES))
def test_batch_statistics_equal_pandas_on_the_mock_units(mock_report, probe_id):
    units = mock_report._units[probe_id]
    assert len(units) > 20
    assert _check_all_rows(PROBES[probe_id], units, np.random.default_rng(1)) > 0


def _bbq_units(rng, n=120):
    units = pd.DataFrame({
        "id": [str(i) for i in range(n)],
        "category": rng.choice(["Age", "Race", "Gender", "SES"], n),
        "condition": rng.choice(["ambig", "disambig"], n),
        "correct": rng.integers(0, 2, n).astype(float),
        "unknown": rng.integers(0, 2, n).astype(float),
        "biased": rng.integers(0, 2, n).astype(float),
    })
    units.loc[units["category"] == "SES", "condition"] = "ambig"  # a group with no disambiguated rows
    units.loc[units["category"] == "Gender", "unknown"] = 1.0  # always "unknown": raw bias 0
    units.loc[units["category"] == "Gender", "biased"] = 0.0
    units.loc[units["category"] == "Race", "correct"] = 1.0  # all correct
    units.loc[units.index[:5], "condition"] = "ambig"
    units.loc[units.index[5:10], "condition"] = "disambig"
    return units


def test_bbq_edge_cases():
    rng = np.random.default_rng(2)
    units = _bbq_units(rng)
    only_ambig = rng.integers(0, 5, size=(20, len(units)))  # resamples without disambiguated rows
    only_disambig = rng.integers(5, 10, size=(20, len(units)))
    assert _check_all_rows(BBQProbe, units, rng, extra_idx=np.vstack([only_ambig, only_disambig])) > 4
    # NaN outcomes are left out of the means, as pandas leaves them; a missing condition is in none
    nan_units = units.copy()
    nan_units.loc[nan_units.index[::7], "biased"] = np.nan
    nan_units.loc[nan_units.index[::11], "correct"] = np.nan
    nan_units.loc[nan_units.index[::13], "unknown"] = np.nan
    nan_units["condition"] = nan_units["condition"].astype("string")
    nan_units.loc[nan_units.index[::17], "condition"] = pd.NA
    _check_all_rows(BBQProbe, nan_units, rng, extra_idx=only_ambig)


def test_winobias_edge_cases():
    rng = np.random.default_rng(3)
    n = 80
    units = pd.DataFrame({"id": [str(i) for i in range(n)], "type": rng.choice([1, 2], n),
                          "stereotype": rng.choice(["pro", "anti"], n), "correct": rng.integers(0, 2, n).astype(float)})
    units.loc[units["type"] == 2, "stereotype"] = "pro"  # type 2: no anti rows (gap NaN)
    units.loc[units.index[:4], ["type", "stereotype", "correct"]] = [1, "anti", 1.0]
    only_anti = rng.integers(0, 4, size=(10, n))
    _check_all_rows(WinoBiasProbe, units, rng, extra_idx=only_anti)
    units.loc[units.index[::9], "correct"] = np.nan
    _check_all_rows(WinoBiasProbe, units, rng, extra_idx=only_anti)


def test_stereoset_edge_cases():
    rng = np.random.default_rng(4)
    n = 150
    units = pd.DataFrame({
        "id": [str(i) for i in range(n)], "type": rng.choice(["intrasentence", "intersentence"], n),
        "bias_type": rng.choice(["gender", "race", "religion"], n), "target": rng.choice(list("abcdefghijk"), n),
        "pro": rng.integers(0, 2, n).astype(float), "related": rng.integers(0, 3, n) / 2,
    })
    units.loc[units["target"] == "a", ["pro", "related"]] = [1.0, 1.0]
    units["pro100"], units["related100"] = units["pro"] * 100, units["related"] * 100
    units["term"] = pd.factorize(units["target"])[0]
    one_term = np.flatnonzero(units["target"] == "a")
    extra = rng.choice(one_term, size=(10, n))  # resamples of one term: SS 100, ICAT 0
    _check_all_rows(StereoSetProbe, units, rng, extra_idx=extra)
    units.loc[units.index[::6], "pro"] = np.nan  # left out of the term means (a term may have none)
    units.loc[units["target"] == "b", "related"] = np.nan
    _check_all_rows(StereoSetProbe, units, rng, extra_idx=extra)


def test_calibration_edge_cases():
    rng = np.random.default_rng(5)
    n = 60
    confidence = rng.uniform(0.25, 1.0, n)
    confidence[:3] = [1.0, 0.9, 0.3]  # on a threshold
    units = pd.DataFrame({"id": [str(i) for i in range(n)], "category": "all", "confidence": confidence,
                          "correct": rng.integers(0, 2, n).astype(float)})
    units["bin"] = np.minimum(9, np.ceil(np.round(units["confidence"] * 10, 9)).astype(int) - 1)
    low = np.flatnonzero(units["confidence"] < 0.5)
    extra = rng.choice(low, size=(10, n))  # nothing answered above 0.5: selective accuracy NaN
    _check_all_rows(CalibrationProbe, units, rng, extra_idx=extra)
    units["correct"] = 1.0  # all correct
    _check_all_rows(CalibrationProbe, units, rng, extra_idx=extra)


def test_resample_helpers_by_hand():
    idx = np.array([[0, 0, 1], [2, 2, 2], [1, 2, 3]])
    values = np.array([1.0, 0.0, np.nan, 4.0])
    mask = np.array([True, True, True, False])
    np.testing.assert_array_equal(count_where(mask, idx), [3, 3, 2])
    np.testing.assert_allclose(mean_where(values, mask, idx), [2 / 3, np.nan, 0.0], equal_nan=True)
    np.testing.assert_allclose(mean_where(values, mask, idx, skipna=False), [2 / 3, np.nan, np.nan], equal_nan=True)
    codes = np.array([0, 1, -1, 1])
    np.testing.assert_array_equal(group_sums(None, codes, 2, idx), [[2, 1], [0, 0], [0, 2]])
    means, counts = group_means(values, codes, 2, idx)
    np.testing.assert_allclose(means, [[1, 0], [np.nan, np.nan], [np.nan, 2]], equal_nan=True)
    np.testing.assert_array_equal(counts, [[2, 1], [0, 0], [0, 2]])
    np.testing.assert_allclose(row_means(means, counts > 0), [0.5, np.nan, 2.0], equal_nan=True)
    np.testing.assert_array_equal(row_sums(np.arange(6.0).reshape(2, 3), np.array([1, 3])), [0.0, 12.0])


def test_resample_helpers_in_chunks_give_the_same(monkeypatch):
    import trustslm.scoring.resample as resample

    rng = np.random.default_rng(6)
    values, mask, codes = rng.uniform(size=30), rng.integers(0, 2, 30).astype(bool), rng.integers(-1, 4, 30)
    idx = rng.integers(0, 30, size=(50, 30))
    whole = (count_where(mask, idx), mean_where(values, mask, idx), group_sums(values, codes, 4, idx))
    monkeypatch.setattr(resample, "CHUNK_ELEMENTS", 70)  # chunks of 2 resamples
    for a, b in zip(whole, (count_where(mask, idx), mean_where(values, mask, idx), group_sums(values, codes, 4, idx))):
        np.testing.assert_array_equal(a, b)


def test_at_levels_do_not_reuse_the_overall_batch_statistic():
    from trustslm.scoring.metric_def import MetricDef

    defn = MetricDef(name="m", column="", higher_is_better=None, description="", statistic=lambda f: 0.0,
                     batch_statistic=lambda f, idx: np.zeros(len(idx)), at=(0.5,),
                     statistic_at=lambda f, level: float(f["x"].mean() + level))
    units = pd.DataFrame({"x": [0.0, 1.0, 1.0]})
    rows = compute_metrics(units, (defn,), seed=0, probe_id="p", resamples=50)
    at_row = next(r.metric for r in rows if r.metric.group == "threshold=0.5")
    assert at_row.ci_high > 0.5  # the level's own statistic, not the overall row's batch zeros


def test_report_is_the_same_with_and_without_batch_statistics(mock_report, monkeypatch):
    """Bitwise: the batch statistics add in the order the per-resample statistics add."""
    for cls in PROBES.values():
        monkeypatch.setattr(cls, "metrics", tuple(replace(d, batch_statistic=None, batch_statistic_at=None)
                                                  for d in cls.metrics))
    slow = trustslm.audit("mock", probes=list(PROBES), bootstrap_resamples=RESAMPLES, progress=False)
    fast_by_id = {r.probe_id: r for r in mock_report.results}
    assert sorted(fast_by_id) == sorted(r.probe_id for r in slow.results) == sorted(PROBES)
    for r in slow.results:
        fast = fast_by_id[r.probe_id]
        assert r.status == fast.status == "ok"
        assert len(r.metrics) == len(fast.metrics) > 4
        for a, b in zip(r.metrics, fast.metrics):
            assert (a.name, a.group, a.n, a.value, a.ci_low, a.ci_high, a.score) == \
                (b.name, b.group, b.n, b.value, b.ci_low, b.ci_high, b.score)
        assert r.score == fast.score
    assert slow.overall == mock_report.overall
