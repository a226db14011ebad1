import numpy as np

from spikewatch.scaling import MAX_ABS_SCALED, OnlineScaler


def test_scaler_matches_batch_statistics():
    rng = np.random.default_rng(0)
    rows = rng.normal(5.0, 3.0, size=(200, 3))
    scaler = OnlineScaler(3)
    for block in np.array_split(rows, 7):
        scaler.update(block)
    assert np.allclose(scaler.mean, rows.mean(axis=0))
    assert np.allclose(scaler.std, rows.std(axis=0, ddof=1))


def test_constant_channel_scales_to_zero():
    scaler = OnlineScaler(2)
    rows = np.array([[1.0, 7.0]] * 10)
    scaler.update(rows)
    scaled = scaler.transform(rows)
    assert np.isfinite(scaled).all()
    assert np.all(scaled == 0.0)


def test_single_row_is_finite():
    scaler = OnlineScaler(1)
    scaler.update(np.array([[3.0]]))
    assert np.isfinite(scaler.transform(np.array([[3.0], [1e12]]))).all()


def test_jump_after_constant_is_clipped():
    scaler = OnlineScaler(1)
    scaler.update(np.full((50, 1), 2.0))
    scaler.update(np.array([[2.0 + 1e-3]]))
    scaled = scaler.transform(np.array([[1e6]]))
    assert scaled[0, 0] == MAX_ABS_SCALED
