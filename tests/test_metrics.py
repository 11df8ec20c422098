import numpy as np
import pytest

from soundtwin.errors import SoundtwinError
from soundtwin.metrics import accuracy, eer, fit_logistic, logistic, min_dcf, roc_auc, threshold_at_far

rng = np.random.default_rng(0)


@pytest.mark.parametrize("n", [4, 50, 1000])
def test_separated_and_reversed(n):
    y = np.r_[np.ones(n), np.zeros(n)]
    s = np.r_[rng.uniform(1, 2, n), rng.uniform(-1, 0, n)]
    e, t = eer(s, y)
    assert e == 0.0 and s[y == 0].max() < t <= s[y == 1].min()
    assert roc_auc(s, y) == 1.0 and min_dcf(s, y) == 0.0 and accuracy(s, y, t) == 1.0
    assert eer(-s, y)[0] == 1.0 and roc_auc(-s, y) == 0.0


def test_hand_computed_example():
    s = np.array([0.9, 0.7, 0.6, 0.4, 0.3, 0.1])
    y = np.array([1, 1, 0, 1, 0, 0])
    # at t=0.5: FRR 1/3 (0.4), FAR 1/3 (0.6) -> EER 1/3
    assert eer(s, y)[0] == pytest.approx(1 / 3)
    assert roc_auc(s, y) == pytest.approx(8 / 9)
    assert accuracy(s, y, 0.5) == pytest.approx(4 / 6)
    # min DCF: best is to reject all (FRR 1 -> cost 0.01 normalised to 1) or threshold 0.65 (FRR 1/3)
    assert min_dcf(s, y) == pytest.approx(1 / 3)


def test_random_scores_near_half():
    y = rng.integers(0, 2, 20000)
    s = rng.standard_normal(20000)
    assert abs(eer(s, y)[0] - 0.5) < 0.02 and abs(roc_auc(s, y) - 0.5) < 0.02


def test_threshold_at_far():
    # enough impostors to count a 5 % rate (50 above the threshold): the lowest threshold that keeps it
    y = np.r_[np.ones(1000), np.zeros(1000)]
    s = np.r_[rng.normal(1, 1, 1000), np.arange(1000) / 1000.0]
    t = threshold_at_far(s, y, 0.05)
    assert np.mean(s[y == 0] >= t) <= 0.05
    lower = s[s < t].max()  # the next candidate threshold down lets more impostors in
    assert np.mean(s[y == 0] >= lower) > 0.05


def test_logistic_calibration_is_monotone_and_centered():
    y = np.r_[np.ones(500), np.zeros(500)]
    s = np.r_[rng.normal(1, 0.3, 500), rng.normal(-1, 0.3, 500)]
    a, b = fit_logistic(s, y)
    assert a > 0 and abs(logistic(0.0, a, b) - 0.5) < 0.1
    assert logistic(1.0, a, b) > 0.95 and logistic(-1.0, a, b) < 0.05


def test_bad_metric_input():
    with pytest.raises(SoundtwinError, match="both genuine"):
        eer(np.array([1.0, 2.0]), np.array([1, 1]))
    with pytest.raises(SoundtwinError, match="NaN"):
        eer(np.array([np.nan, 2.0]), np.array([1, 0]))
