"""Per-key thresholds: running quantile, SPOT/DSPOT, the conformal false-alarm budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import genpareto

from spikewatch.checkpoint import load_checkpoint, save_checkpoint
from spikewatch.config import Config, config_from_dict
from spikewatch.errors import ConfigError
from spikewatch.thresholds import (
    DSPOT,
    SPOT,
    ConformalThreshold,
    RunningQuantile,
    build_threshold,
    conformal_p_values,
)
from spikewatch.thresholds.evt import fit_gpd, tail_quantile


def feed(threshold, scores, *, start=0.0, step=60.0, in_alert=None):
    """Learn ``scores`` one by one; return how many exceeded the threshold in force for each.

    Unless ``in_alert`` is given, an alert is open while the last two scores exceeded, as with
    the default ``alerts.open_after = 2``.
    """
    exceeded = 0
    run = 0
    for index, score in enumerate(scores):
        current = threshold.threshold()
        above = current is not None and score > current
        exceeded += above
        run = run + 1 if above else 0
        alert = run >= 2 if in_alert is None else in_alert
        threshold.learn(float(score), timestamp=start + index * step, in_alert=alert)
    return exceeded


# -- the generalised Pareto fit ------------------------------------------------------------


@pytest.mark.parametrize("shape", [-0.3, 0.0, 0.2, 0.6])
def test_gpd_fit_matches_scipy_maximum_likelihood(shape):
    excesses = genpareto.rvs(shape, scale=2.0, size=800, random_state=1)
    gamma, sigma = fit_gpd(excesses)
    expected_gamma, _, expected_sigma = genpareto.fit(excesses, floc=0)
    assert gamma == pytest.approx(expected_gamma, abs=2e-3)
    assert sigma == pytest.approx(expected_sigma, rel=2e-3)


def test_gpd_fit_few_peaks_is_exponential():
    assert fit_gpd(np.array([1.0, 2.0, 3.0])) == (0.0, 2.0)


def test_tail_quantile_matches_pareto_quantile():
    # P(X > t) = 0.02; the tail above t is GPD(γ = 0.2, σ = 1.5).
    z = tail_quantile(10.0, 0.2, 1.5, risk=1e-4, observations=10_000, peaks=200)
    assert z == pytest.approx(10.0 + genpareto.ppf(1 - 1e-4 / 0.02, 0.2, scale=1.5))
    assert tail_quantile(10.0, 0.0, 1.5, risk=1e-4, observations=10_000, peaks=200) == pytest.approx(
        10.0 + 1.5 * math.log(200)
    )


# -- running quantile ----------------------------------------------------------------------


def test_running_quantile_waits_for_min_history():
    threshold = RunningQuantile(quantile=0.9, history=20, min_history=5, margin=2.0)
    for value in range(4):
        threshold.learn(float(value))
        assert threshold.threshold() is None
    threshold.learn(4.0)
    assert threshold.ready
    assert threshold.threshold() == pytest.approx(np.quantile([0, 1, 2, 3, 4], 0.9) * 2.0)


def test_running_quantile_keeps_recent_history():
    threshold = RunningQuantile(quantile=0.5, history=4, min_history=1)
    # Each new value is below the current median, so none is winsorised on entry.
    for value in [100, 100, 100, 100, 4, 3, 2, 1]:
        threshold.learn(float(value))
    assert threshold.threshold() == pytest.approx(2.5)


def test_running_quantile_winsorises_scores_above_threshold():
    threshold = RunningQuantile(quantile=0.9, history=10, min_history=10)
    for value in range(10):
        threshold.learn(float(value))
    before = threshold.threshold()
    threshold.learn(1000.0)
    assert 1000.0 not in threshold.recent
    assert before in threshold.recent
    assert threshold.threshold() < 9.0  # the largest ordinary score; 1000 would lift it past


# -- SPOT and DSPOT ------------------------------------------------------------------------


def test_spot_realised_rate_near_risk_on_exponential_scores():
    rng = np.random.default_rng(0)
    spot = SPOT(risk=0.01, level=0.9, history=512, min_history=500)
    feed(spot, rng.exponential(size=500))
    assert spot.ready
    # The exponential's 0.99 quantile is log(100) = 4.6.
    assert spot.threshold() == pytest.approx(math.log(100), rel=0.15)
    exceeded = feed(spot, rng.exponential(size=10_000))
    assert 0.006 < exceeded / 10_000 < 0.015
    # Windows over the threshold outside an alert are normal and stay in the tail, so the
    # threshold does not sink.
    assert spot.threshold() == pytest.approx(math.log(100), rel=0.1)


def test_spot_alert_windows_do_not_enter_the_tail():
    rng = np.random.default_rng(1)
    spot = SPOT(risk=0.01, level=0.9, history=500, min_history=300)
    feed(spot, rng.exponential(size=300))
    before = (spot.threshold(), spot.peak_count, spot.observations)
    spot.learn(1e6, in_alert=True)
    assert (spot.threshold(), spot.peak_count, spot.observations) == before
    spot.learn(1e6, in_alert=False)
    assert spot.peak_count == before[1] + 1
    assert spot.threshold() > before[0]


def test_spot_constant_scores_alarm_on_any_rise():
    spot = SPOT(risk=0.001, level=0.98, history=300, min_history=260)
    feed(spot, np.full(260, 3.0))
    assert spot.threshold() == 3.0
    assert feed(spot, [3.0, 3.5]) == 1


def test_dspot_follows_a_drifting_level():
    rng = np.random.default_rng(2)
    n = 3000
    drifting = 0.2 * np.arange(n) + rng.exponential(size=n)
    spot = SPOT(risk=0.005, level=0.9, history=300, min_history=300)
    dspot = DSPOT(risk=0.005, level=0.9, depth=20, history=300, min_history=300)
    feed(spot, drifting[:300])
    feed(dspot, drifting[:300])
    spot_rate = feed(spot, drifting[300:]) / (n - 300)
    dspot_rate = feed(dspot, drifting[300:]) / (n - 300)
    # SPOT's tail is soon below the rising level; once its alert is open it stops learning.
    assert spot_rate > 0.5
    assert dspot_rate < 0.02


def test_spot_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    for threshold in (
        SPOT(risk=0.01, level=0.9, history=300, min_history=200),
        DSPOT(risk=0.01, level=0.9, depth=10, history=300, min_history=200),
    ):
        feed(threshold, rng.exponential(size=400))
        path = save_checkpoint(tmp_path / f"{threshold.kind}.ckpt", {"t": threshold.to_dict()})
        restored = type(threshold)(
            risk=0.01, level=0.9, history=300, min_history=200, **({"depth": 10} if threshold.kind == "dspot" else {})
        )
        restored.load_dict(load_checkpoint(path)["t"])
        tail = rng.exponential(size=100)
        assert feed(restored, tail) == feed(threshold, tail)
        assert restored.threshold() == threshold.threshold()


def test_spot_rejects_risk_above_tail():
    with pytest.raises(ValueError, match="risk = 0.05 must be in"):
        SPOT(risk=0.05, level=0.98, history=300, min_history=260)


# -- conformal p-values and the false-alarm budget -----------------------------------------


def test_p_values_small_means_anomalous():
    calibration = np.arange(1.0, 100.0)  # 99 scores
    assert conformal_p_values(calibration, 1000.0) == pytest.approx(1 / 100)
    assert conformal_p_values(calibration, -5.0) == pytest.approx(1.0)
    assert conformal_p_values(calibration, 50.0) == pytest.approx(51 / 100)


def test_p_values_scalar_and_batch_agree():
    calibration = np.random.default_rng(4).normal(size=200)
    scores = np.array([-3.0, 0.0, 0.5, 2.0, 9.0])
    batch = conformal_p_values(calibration, scores)
    assert isinstance(conformal_p_values(calibration, 0.5), float)
    assert batch.shape == scores.shape
    assert [conformal_p_values(calibration, s) for s in scores] == list(batch)


def test_conformal_exceedance_matches_p_value():
    rng = np.random.default_rng(5)
    threshold = ConformalThreshold(false_alarms_per_day=2.4, history=400, min_history=50)
    feed(threshold, rng.normal(size=400), step=3600.0)
    alpha = threshold.alpha
    assert alpha == pytest.approx(0.1)
    for score in rng.normal(scale=2.0, size=500):
        assert (score > threshold.threshold()) == (threshold.p_value(score) <= alpha)


def test_conformal_realised_rate_holds_budget():
    rng = np.random.default_rng(6)
    # One window every 5 minutes: 288 per day; a budget of 6 per day is α ≈ 0.021.
    threshold = ConformalThreshold(false_alarms_per_day=6.0, history=512, min_history=100)
    feed(threshold, rng.gamma(2.0, size=512), step=300.0)
    days = 40
    exceeded = feed(threshold, rng.gamma(2.0, size=288 * days), start=512 * 300.0, step=300.0)
    assert exceeded / days <= 6.0 * 1.2
    assert exceeded / days >= 6.0 * 0.6


def test_conformal_budget_too_small_for_history_never_alarms():
    threshold = ConformalThreshold(false_alarms_per_day=1.0, history=64, min_history=10)
    # One window per second: α ≈ 1.2e-5 needs about 86,000 calibration scores.
    feed(threshold, np.arange(64.0), step=1.0)
    assert threshold.threshold() == math.inf


def test_conformal_scores_in_alert_are_not_calibration():
    threshold = ConformalThreshold(false_alarms_per_day=10.0, window_interval_s=60.0, history=100, min_history=5)
    feed(threshold, np.zeros(20))
    feed(threshold, np.full(20, 50.0), start=20 * 60.0, in_alert=True)
    assert threshold.count == 20
    assert threshold.quantile_of(1.0) == 0.0


def test_conformal_measures_window_interval():
    threshold = ConformalThreshold(false_alarms_per_day=2.0, history=100, min_history=5)
    assert threshold.alpha is None
    feed(threshold, np.zeros(10), step=120.0)
    assert threshold.interval_s == 120.0
    assert threshold.alpha == pytest.approx(2.0 * 120.0 / 86400.0)


def test_conformal_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    threshold = ConformalThreshold(false_alarms_per_day=50.0, history=200, min_history=20)
    feed(threshold, rng.normal(size=150), step=600.0)
    path = save_checkpoint(tmp_path / "conformal.ckpt", {"t": threshold.to_dict()})
    restored = ConformalThreshold(false_alarms_per_day=50.0, history=200, min_history=20)
    restored.load_dict(load_checkpoint(path)["t"])
    assert restored.threshold() == threshold.threshold()
    assert restored.alpha == threshold.alpha


# -- construction from the configuration ---------------------------------------------------


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"kind": "quantile"}, RunningQuantile),
        ({"kind": "spot", "min_history": 256}, SPOT),
        ({"kind": "dspot", "min_history": 300}, DSPOT),
        ({"kind": "conformal"}, ConformalThreshold),
    ],
)
def test_build_threshold_from_config(settings, expected):
    config = Config().with_overrides({"threshold": settings})
    assert type(build_threshold(config.threshold)) is expected


def test_spot_config_needs_enough_calibration_scores():
    with pytest.raises(ConfigError, match="set min_history to at least 250"):
        config_from_dict({"threshold": {"kind": "spot", "min_history": 32}})
    with pytest.raises(ConfigError, match="threshold.risk = 0.05 must be below"):
        config_from_dict({"threshold": {"kind": "spot", "min_history": 300, "risk": 0.05}})


def test_threshold_of_other_kind_rejected():
    quantile = RunningQuantile(quantile=0.9, history=10, min_history=2)
    conformal = ConformalThreshold(false_alarms_per_day=1.0, history=10, min_history=2)
    with pytest.raises(ValueError, match="kind 'conformal' cannot load into a 'quantile'"):
        quantile.load_dict(conformal.to_dict())
