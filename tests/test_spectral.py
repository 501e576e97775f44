"""Line strengths, continuum bands and sky magnitudes on synthetic spectra of known truth."""
from __future__ import annotations

import numpy as np
import pytest

from skymodelling.spectral.features import (
    MASKED,
    NOT_COVERED,
    band_mean,
    line_flux,
    load_features,
    measure_features,
    raw_window,
)
from skymodelling.spectral.photometry import AB_ZERO, BAND_BIT, C_A_PER_S, sky_magnitudes


def _grid(n, lo, hi, npix=4000, rng=None):
    """Rows of slightly different log-linear grids, as BOSS fibres have."""
    base = np.geomspace(lo, hi, npix)
    shift = 1 + (rng.uniform(-1, 1, n) * 5e-5 if rng is not None else np.zeros(n))
    return base[None, :] * shift[:, None]


def _flat_fnu(wave, mag):
    fnu = AB_ZERO * 10 ** (-0.4 * mag)
    return fnu * C_A_PER_S / wave**2 * np.pi / 1e-17


def test_flat_fnu_gives_the_ab_magnitude():
    wave = np.concatenate([_grid(1, 3650, 6350), _grid(1, 5650, 10400)])
    flux = _flat_fnu(wave, 20.5)
    mags = sky_magnitudes(wave, flux, np.ones_like(flux))
    blue, red = 0, 1
    assert mags["SDSS_G"][blue] == pytest.approx(20.5, abs=1e-3)
    assert mags["SDSS_I"][red] == pytest.approx(20.5, abs=1e-3)
    # Vega magnitudes: m_Vega = m_AB - (AB - Vega), Blanton & Roweis 2007
    assert mags["BESSELL_B"][blue] == pytest.approx(20.5 + 0.09, abs=1e-3)
    assert mags["BESSELL_I"][red] == pytest.approx(20.5 - 0.45, abs=1e-3)


def test_band_outside_the_camera_is_nan_and_flagged():
    wave = np.concatenate([_grid(1, 3650, 6350), _grid(1, 5650, 10400)])
    flux = _flat_fnu(wave, 21.0)
    mags = sky_magnitudes(wave, flux, np.ones_like(flux))
    for band in ("SDSS_U", "SDSS_R", "SDSS_I", "SDSS_Z", "BESSELL_U", "BESSELL_R"):
        assert np.isnan(mags[band][0]) and mags["MAG_FLAG"][0] & BAND_BIT[band]
    for band in ("SDSS_G", "SDSS_U", "SDSS_R", "BESSELL_B", "BESSELL_V"):
        assert np.isnan(mags[band][1]) and mags["MAG_FLAG"][1] & BAND_BIT[band]
    assert not mags["MAG_FLAG"][0] & BAND_BIT["SDSS_G"]


def test_masked_band_is_not_covered():
    wave = _grid(2, 3650, 6350)
    flux = _flat_fnu(wave, 21.0)
    ivar = np.ones_like(flux)
    ivar[1, (wave[1] > 4500) & (wave[1] < 4700)] = 0  # a big hole in g
    mags = sky_magnitudes(wave, flux, ivar)
    assert np.isfinite(mags["SDSS_G"][0]) and np.isnan(mags["SDSS_G"][1])


def test_gaussian_line_recovered_within_its_error():
    rng = np.random.default_rng(3)
    n = 400
    wave = _grid(n, 5400, 5800, npix=600, rng=rng)
    w0, sigma, true_flux, cont = 5578.9, 1.3, 250.0, 3.0
    peak = true_flux / (np.sqrt(2 * np.pi) * sigma)
    model = cont + peak * np.exp(-0.5 * ((wave - w0) / sigma) ** 2)
    noise_sigma = np.sqrt(0.05 * model + 0.01)
    flux = model + rng.normal(0, 1, model.shape) * noise_sigma
    ivar = 1 / noise_sigma**2
    value, error, flag = line_flux(wave, flux, ivar, w0, 6.0, 10.0, 18.0)
    assert np.all(flag == 0)
    pull = (value - true_flux) / error
    # the window holds all but 2e-6 of the Gaussian: measured = true within the errors
    assert abs(np.mean(pull)) < 0.15
    assert 0.85 < np.std(pull) < 1.15
    # continuum band mean
    mean, err, bflag = band_mean(wave, flux, ivar, 5450.0, 10.0)
    assert np.all(bflag == 0)
    assert abs(np.mean((mean - cont) / err)) < 0.15


def test_masked_and_uncovered_lines_are_flagged():
    wave = _grid(3, 5400, 5800, npix=600)
    flux = np.ones_like(wave)
    ivar = np.ones_like(wave)
    ivar[1, np.argmin(np.abs(wave[1] - 5578.9))] = 0
    value, error, flag = line_flux(wave, flux, ivar, 5578.9, 6.0, 10.0, 18.0)
    assert flag[0] == 0 and value[0] == pytest.approx(0.0, abs=1e-9)
    assert flag[1] & MASKED and np.isnan(value[1])
    value, error, flag = line_flux(wave, flux, ivar, 5795.0, 6.0, 10.0, 18.0)
    assert np.all(flag & NOT_COVERED) and np.all(np.isnan(value))


def test_raw_measures_are_the_originals():
    wave = _grid(2, 5000, 6000, npix=1000)
    flux = np.arange(2000, dtype=float).reshape(2, 1000)
    i = int(np.argmin(np.abs(wave[0] - 5500.0)))
    assert raw_window(wave, flux, 5500.0, 5, "sum")[0] == flux[0, i - 5:i + 6].sum()
    assert raw_window(wave, flux, 5500.0, 1, "mean")[0] == flux[0, i - 1:i + 2].mean()
    assert np.isnan(raw_window(wave, flux, 6500.0, 5)[0])
    ivar = np.ones_like(flux)
    ivar[0, i + 3] = 0  # the original set masked pixels to NaN before summing
    assert np.isnan(raw_window(wave, flux, 5500.0, 5, "sum", ivar)[0])
    assert np.isfinite(raw_window(wave, flux, 5500.0, 1, "mean", ivar)[0])


def test_bundled_feature_list_is_vacuum():
    features = load_features()
    oi = features[features["NAME"] == "OI5577"][0]
    assert oi["WAVE"] == pytest.approx(5578.89, abs=0.05)  # 5577.34 A in air
    assert set(features["KIND"]) == {"line", "continuum"}
    assert (features["CAMERA"] == "b").sum() > 10 and (features["CAMERA"] == "r").sum() > 10


def test_measure_features_columns():
    features = load_features()
    wave = _grid(5, 3650, 6350)
    flux = np.ones_like(wave)
    cols = measure_features(wave, flux, np.ones_like(wave), features, "b")
    assert "OI5577_FLUX" in cols and "OI5577_SUM" in cols and "C460B_CONT" in cols
    assert "OI6300_FLUX" not in cols
    assert np.allclose(cols["C460B_CONT"], 1.0) and np.allclose(cols["OI5577_FLUX"], 0.0)
