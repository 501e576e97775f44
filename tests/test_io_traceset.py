"""Trace-set evaluation, (de)serialisation, and the real BOSS r1 trace set shipped by pydl."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import legendre

from skymodelling.errors import BossFileError
from skymodelling.io.traceset import TraceSet, read_traceset, traceset_hdu


def _pydl_file(*parts) -> Path:
    spec = importlib.util.find_spec("pydl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pydl (test dependency) is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        pytest.skip(f"{path} not shipped by this pydl")
    return path


def _direct(ts, x, coeff):
    """Straightforward per-fibre evaluation, for comparison."""
    out = np.empty((coeff.shape[0], x.size))
    for i in range(coeff.shape[0]):
        xx = x.astype(float)
        if ts.has_jump:
            f = np.clip((xx - ts.xjumplo) / (ts.xjumphi - ts.xjumplo), 0, 1)
            xx = xx + f * ts.xjumpval
        t = 2 * (xx - 0.5 * (ts.xmin + ts.xmax)) / (ts.xmax - ts.xmin)
        out[i] = legendre.legval(t, coeff[i])
    return out


def test_evaluate_matches_direct_legendre_with_jump():
    rng = np.random.default_rng(0)
    coeff = rng.standard_normal((7, 5))
    ts = TraceSet("legendre", 0.0, 99.0, coeff, xjumplo=40.5, xjumphi=42.5, xjumpval=0.5)
    assert ts.has_jump
    x = np.arange(100)
    y = ts.evaluate(100)
    assert y.shape == (7, 100) and y.dtype == np.float64
    np.testing.assert_allclose(y, _direct(ts, x, coeff), rtol=0, atol=1e-12)
    # the jump changes the result after XJUMPLO only
    flat = TraceSet("legendre", 0.0, 99.0, coeff)
    np.testing.assert_array_equal(y[:, :41], flat.evaluate(100)[:, :41])
    assert not np.allclose(y[:, 45:], flat.evaluate(100)[:, 45:])
    # row selection and 2-D positions
    np.testing.assert_allclose(ts.evaluate(100, rows=[3, 1]), y[[3, 1]], atol=1e-12)
    xs = np.tile(np.linspace(0, 99, 13), (2, 1)) + np.array([[0.0], [0.25]])
    np.testing.assert_allclose(ts.evaluate_at(xs, rows=[0, 6]),
                               np.vstack([ts.evaluate_at(xs[0], rows=[0]),
                                          ts.evaluate_at(xs[1], rows=[6])]), atol=1e-12)
    dl = ts.native_dloglam(100, rows=[2])
    np.testing.assert_allclose(dl, np.abs(ts.evaluate_at(x + 0.5, [2]) -
                                          ts.evaluate_at(x - 0.5, [2])))


def test_degenerate_jump_is_ignored():
    coeff = np.array([[1.0, 2.0, 3.0]])
    zero = TraceSet("legendre", 0.0, 10.0, coeff, 0.0, 0.0, 0.0)
    assert not zero.has_jump
    assert np.isfinite(zero.evaluate(11)).all()
    plain = TraceSet("legendre", 0, 10, coeff)
    np.testing.assert_array_equal(zero.evaluate(11), plain.evaluate(11))


def test_hdu_round_trip_is_exact(tmp_path):
    coeff = np.random.default_rng(1).standard_normal((500, 6))
    ts = TraceSet("legendre", 0.0, 4127.0, coeff, 2062.5, 2064.5, np.float32(1 / 3))
    hdu = traceset_hdu(ts)
    assert [c.format for c in hdu.columns] == ["8A", "D", "D", "3000D", "E", "E", "E"]
    assert hdu.header["TDIM4"] == "(6, 500)"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "ts.fits")
    with fits.open(tmp_path / "ts.fits") as hdul:
        assert hdul[1].data["COEFF"].shape == (1, 500, 6)
        back = read_traceset(hdul[1])
    assert back.func == "legendre" and (back.xmin, back.xmax) == (0.0, 4127.0)
    assert (back.xjumplo, back.xjumphi, back.xjumpval) == (ts.xjumplo, ts.xjumphi, ts.xjumpval)
    np.testing.assert_array_equal(back.coeff, coeff)
    assert back.coeff.dtype.isnative
    np.testing.assert_array_equal(back.evaluate(4128), ts.evaluate(4128))
    nojump = traceset_hdu(TraceSet("legendre", 0, 10, coeff[:3, :2]))
    assert nojump.columns.names == ["FUNC", "XMIN", "XMAX", "COEFF"]
    assert read_traceset(nojump).xjumplo is None


def test_bad_tracesets():
    table = traceset_hdu(TraceSet("legendre", 0, 10, np.ones((2, 2))))
    table.data["FUNC"][0] = "poly"
    with pytest.raises(BossFileError, match="poly"):
        read_traceset(table, path="somefile.fits")
    with pytest.raises(BossFileError, match="somefile.fits.*not a binary table"):
        read_traceset(fits.ImageHDU(np.zeros((2, 2))), path="somefile.fits")
    with pytest.raises(ValueError, match="not supported"):
        TraceSet("chebyshev", 0, 10, np.ones((1, 2))).evaluate(3)


def test_real_boss_r1_traceset():
    path = _pydl_file("pydlutils", "tests", "t", "boss_traceset.fits")
    with fits.open(path) as hdul:
        ts = read_traceset(hdul[1])
        raw = hdul[1].data.copy()
    assert ts.coeff.shape == (500, 6) and (ts.xmin, ts.xmax) == (0.0, 4127.0)
    assert ts.has_jump and ts.xjumpval == pytest.approx(1 / 3)
    loglam = ts.evaluate(4128)
    wave = 10 ** loglam
    assert 5000 < wave.min() < 5200 and 10900 < wave.max() < 11100
    assert (np.diff(loglam, axis=1) > 0).all()
    dl = ts.native_dloglam(4128)
    assert 5e-5 < dl.min() and dl.max() < 1.2e-4 and 7.5e-5 < np.median(dl) < 8.3e-5
    np.testing.assert_allclose(loglam, _direct(ts, np.arange(4128), ts.coeff[:]), atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from pydl.pydlutils.trace import TraceSet as PydlTraceSet
            from pydl.pydlutils.trace import traceset2xy
        except Exception:  # noqa: BLE001 - optional cross-check
            return
        _, ypos = traceset2xy(PydlTraceSet(raw))
    np.testing.assert_allclose(loglam, ypos, rtol=0, atol=1e-10)
