"""Stage mean: flux-conserving resampling, the clipped mean, and the stage on simulated trees."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import skymodelling
from skymodelling.cli import main
from skymodelling.config import Config, MeanConfig, load_config
from skymodelling.errors import SkyModellingError
from skymodelling.spectral.resample import loglam_edges, loglam_grid, pixel_edges, resample_flux
from skymodelling.stages._common import read_failures
from skymodelling.stages.enrich import run_enrich
from skymodelling.stages.extract import run_extract
from skymodelling.stages.mean import (
    FEWFIBERS,
    NOFIBER,
    arm_grid,
    clipped_mean,
    mean_dispersion,
    mean_spectrum,
    output_path,
    run_mean,
)

RNG = np.random.default_rng(11)


def _native_grid(nfib=20, npix=3000, lo=3.57, step=1.03e-4, rng=RNG):
    """BOSS-like native grids: log-uniform, each fibre shifted by up to a pixel."""
    shift = rng.uniform(0, 1, nfib)[:, None] * step
    return 10 ** (lo + shift + step * np.arange(npix)[None, :])


# ------------------------------------------------------------- resampling

def test_resampling_conserves_flux():
    wave = _native_grid(nfib=5)
    flux = RNG.uniform(0.5, 50.0, wave.shape)
    ivar = np.ones_like(flux)
    edges = loglam_edges(loglam_grid(3800.0, 5000.0))
    out, out_ivar = resample_flux(wave, flux, ivar, edges)
    assert np.all(out_ivar > 0)
    # integral of the piecewise-constant input between the outer output edges
    native = pixel_edges(wave)
    for i in range(wave.shape[0]):
        cum = np.concatenate([[0.0], np.cumsum(flux[i] * np.diff(native[i]))])
        expected = np.interp(edges[-1], native[i], cum) - np.interp(edges[0], native[i], cum)
        got = np.sum(out[i] * np.diff(edges))
        assert got == pytest.approx(expected, rel=1e-10)


def test_resampling_onto_the_native_grid_is_the_identity():
    wave = 10 ** (3.6 + 1e-4 * np.arange(200))
    flux = RNG.normal(10, 1, 200)
    ivar = RNG.uniform(1, 2, 200)
    out, out_ivar = resample_flux(wave, flux, ivar, pixel_edges(wave))
    np.testing.assert_allclose(out, flux, rtol=1e-12)
    np.testing.assert_allclose(out_ivar, ivar, rtol=1e-12)


def test_masked_pixel_masks_exactly_the_bins_it_overlaps():
    wave = _native_grid(nfib=1, npix=400)[0]
    flux = np.full(400, 3.0)
    ivar = np.ones(400)
    ivar[200] = 0.0
    flux[200] = 1e6   # must not leak
    edges = loglam_edges(loglam_grid(wave[10], wave[-10]))
    out, out_ivar = resample_flux(wave, flux, ivar, edges)
    native = pixel_edges(wave)
    overlaps = (np.minimum(edges[1:], native[201]) - np.maximum(edges[:-1], native[200])) > 0
    assert 1 <= overlaps.sum() <= 3
    assert np.array_equal(out_ivar == 0, overlaps)
    np.testing.assert_allclose(out[~overlaps], 3.0, rtol=1e-12)
    assert np.all(out[overlaps] == 0)


def test_variance_propagation_matches_monte_carlo():
    wave = _native_grid(nfib=1, npix=300)[0]
    sigma = 2.0
    edges = loglam_edges(loglam_grid(wave[5], wave[-5]))
    draws = np.array([resample_flux(wave, RNG.normal(0, sigma, 300), np.full(300, sigma**-2),
                                    edges)[0] for _ in range(2000)])
    _, ivar = resample_flux(wave, np.zeros(300), np.full(300, sigma**-2), edges)
    np.testing.assert_allclose(draws.var(axis=0), 1 / ivar, rtol=0.15)


@pytest.mark.parametrize("step", [0.9e-4, 1.03e-4, 2.3e-4])   # native finer and coarser
def test_noise_correlation_of_neighbouring_bins_matches_monte_carlo(step):
    """Bins that share a native pixel have correlated noise: the correlation that
    resample_flux reports is the one of many noise draws (lags 1 and 2)."""
    wave = _native_grid(nfib=1, npix=200, step=step)[0]
    ivar = RNG.uniform(0.5, 2.0, wave.size)
    edges = loglam_edges(loglam_grid(wave[5], wave[-5]))
    _, iv, corr = resample_flux(wave, np.zeros(wave.size), ivar, edges, correlation=True)
    noise = RNG.standard_normal((20000, wave.size)) / np.sqrt(ivar)
    draws, _ = resample_flux(np.broadcast_to(wave, noise.shape), noise,
                             np.broadcast_to(ivar, noise.shape), edges)
    d = (draws - draws.mean(axis=0)) * np.sqrt(iv)
    for lag in (1, 2):
        emp = np.mean(d[:, :-lag] * d[:, lag:], axis=0)
        np.testing.assert_allclose(corr[lag - 1, :-lag], emp, atol=0.04)
        assert np.all(corr[lag - 1, -lag:] == 0)
    # a native pixel spans two bins at most when it is narrower than them, three when wider
    assert (np.abs(corr[1]).max() > 0.1) == (step > 1e-4 * 1.5)
    assert corr[0].mean() > 0.1


def test_the_means_noise_correlation_is_that_of_its_fibres():
    """The mean of fibres on the same native pixels has their correlation; on shifted
    pixels, with unequal weights, it is that of many noise draws of the weighted mean."""
    from skymodelling.stages.mean import mean_correlation

    wave = np.repeat(_native_grid(nfib=1)[0][None, :], 6, axis=0)
    ivar = np.full(wave.shape, 4.0)
    loglam = loglam_grid(3800.0, 5000.0)
    res = mean_spectrum(wave, np.ones_like(wave), ivar, loglam)
    _, _, corr = resample_flux(wave[0], np.ones(wave.shape[1]), ivar[0], loglam_edges(loglam),
                               correlation=True)
    np.testing.assert_allclose(res.CORR, corr, atol=1e-12)
    shifted = _native_grid(nfib=4, npix=200)
    ivar = RNG.uniform(1.0, 4.0, shifted.shape)
    weights = np.array([1.0, 2.0, 0.5, 1.5])
    edges = loglam_edges(loglam_grid(shifted[:, 3].max(), shifted[:, -3].min()))
    _, iv, each = resample_flux(shifted, np.zeros_like(shifted), ivar, edges, correlation=True)
    w = np.broadcast_to(weights[:, None], iv.shape)
    mean_ivar = w.sum(axis=0) ** 2 / np.sum(w ** 2 / iv, axis=0)
    got = mean_correlation(w, iv, each, mean_ivar)
    ndraw = 6000
    noise = RNG.standard_normal((ndraw, *shifted.shape)) / np.sqrt(ivar)
    f, _ = resample_flux(np.broadcast_to(shifted, noise.shape).reshape(-1, shifted.shape[1]),
                         noise.reshape(-1, shifted.shape[1]),
                         np.broadcast_to(ivar, noise.shape).reshape(-1, shifted.shape[1]), edges)
    mean = np.einsum("f,dfj->dj", weights, f.reshape(ndraw, 4, -1)) / weights.sum()
    z = mean * np.sqrt(mean_ivar)
    for lag in (1, 2):
        emp = np.mean(z[:, :-lag] * z[:, lag:], axis=0)
        np.testing.assert_allclose(got[lag - 1, :-lag], emp, atol=0.05)
    assert np.mean(z ** 2) == pytest.approx(1.0, abs=0.03)


# ---------------------------------------------------------- the clipped mean

def test_mean_of_identical_fibres_reproduces_the_input():
    wave = np.repeat(_native_grid(nfib=1)[0][None, :], 15, axis=0)
    truth = 5 + 50 * np.exp(-0.5 * ((wave[0] - 4500) / 1.5) ** 2)
    flux = np.repeat(truth[None, :], 15, axis=0)
    ivar = np.full_like(flux, 4.0)
    loglam = loglam_grid(3800.0, 5000.0)
    res = mean_spectrum(wave, flux, ivar, loglam)
    single, single_ivar = resample_flux(wave[0], truth, ivar[0], loglam_edges(loglam))
    np.testing.assert_allclose(res.FLUX, single, rtol=1e-12)
    np.testing.assert_allclose(res.IVAR, 15 * single_ivar, rtol=1e-12)
    assert np.all(res.NUSED == 15) and np.all(res.MASK == 0)


def test_outlier_fibre_and_cosmic_ray_are_rejected():
    nfib, npix = 40, 2000
    sky = 10.0 + 200.0 * (np.arange(npix) % 300 == 0)   # continuum and bright lines
    sigma = np.sqrt(sky) * 0.5
    flux = sky + RNG.standard_normal((nfib, npix)) * sigma
    ivar = np.broadcast_to(sigma**-2, flux.shape).copy()
    flux[7] += 0.5 * sigma                       # a fibre bright everywhere (BADSKYFIBER-like)
    flux[12, 1000] += 300.0                      # an unflagged cosmic ray
    ivar[3, 500:600] = 0.0                       # a masked stretch
    res = clipped_mean(flux, ivar, config=MeanConfig())
    assert not res.fiber_ok[7] and res.fiber_ok.sum() == nfib - 1
    assert not res.used[12, 1000] and res.used[12, 999]
    assert not res.used[3, 550]
    assert res.NUSED[1000] <= nfib - 2 and res.NUSED[550] <= nfib - 2
    pull = (res.FLUX - sky) * np.sqrt(res.IVAR)
    assert abs(pull[1000]) < 4
    assert abs(np.mean(pull)) < 0.1
    # without rejection the outlier fibre would bias the mean by 0.5/40 sigma per pixel
    assert np.median(np.abs(pull)) == pytest.approx(0.674, abs=0.06)


def test_fibre_weights_avoid_the_poisson_bias_of_own_ivar_weights():
    """Inverse variances estimated from noisy counts bias an own-ivar-weighted mean low."""
    nfib, npix = 60, 4000
    expected = np.full((nfib, npix), 20.0)           # counts
    counts = RNG.poisson(expected).astype(float)
    ivar = 1.0 / np.maximum(counts, 1.0)             # variance from the data
    ours = clipped_mean(counts, ivar, config=MeanConfig())
    own = clipped_mean(counts, ivar, config=MeanConfig(weighting="ivar"))
    bias_ours = np.mean(ours.FLUX) / 20.0 - 1
    bias_own = np.mean(own.FLUX) / 20.0 - 1
    assert abs(bias_ours) < 0.003
    assert bias_own < -0.02


def test_fibre_masks():
    flux = np.ones((12, 4))
    ivar = np.ones((12, 4))
    ivar[:, 0] = 0.0
    ivar[3:, 1] = 0.0
    res = clipped_mean(flux, ivar, config=MeanConfig(min_fibers=10))
    assert res.MASK.tolist() == [NOFIBER, FEWFIBERS, 0, 0]
    assert res.IVAR[0] == 0 and res.NUSED.tolist() == [0, 3, 12, 12]


def test_config_validation(tmp_path):
    with pytest.raises(SkyModellingError):
        MeanConfig(weighting="median")
    path = tmp_path / "c.json"
    path.write_text('{"mean": {"min_fibers": 5}}')
    assert load_config(path).mean.min_fibers == 5


# ----------------------------------------------------------------- the stage

@pytest.fixture(scope="module")
def noiseless_out(noiseless_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("mean") / "out"
    run_extract(noiseless_tree, out)
    run_enrich(out)
    summary = run_mean(out)
    assert summary.n_done == 1 and summary.n_failures == 0
    return out


def test_stage_output_and_dataset(noiseless_out):
    ds = skymodelling.open_dataset(noiseless_out)
    means = ds.means
    meta = means.meta
    groups = {(int(r["IMG"]), str(r["CAMERA"])) for r in ds.meta}
    assert len(meta) == len(groups)
    assert {"NFIBERS", "NSKY", "MOON_SEP", "ZODI", "OI5577_FLUX", "SDSS_G"} <= set(meta.colnames)
    assert np.all(meta["NFIBERS"] >= 10) and np.all(meta["NFIBERS"] <= meta["NSKY"])
    assert np.all(np.isfinite(meta["MOON_SEP"]))
    blue = np.char.startswith(np.asarray(meta["CAMERA"]).astype(str), "b")
    assert np.all(np.isfinite(meta["OI5577_FLUX"][blue]))
    for i in range(len(meta)):
        spec = means.spectrum(i)
        cam = str(meta["CAMERA"][i])
        np.testing.assert_allclose(np.log10(spec.WAVE), arm_grid(cam[0]), atol=1e-12)
        assert spec.good.mean() > 0.95
        assert np.all(spec.NUSED[spec.good] > 0)
    path = output_path(noiseless_out, int(meta["PLATE"][0]), int(meta["MJD"][0]))
    with fits.open(path) as hdul:
        assert hdul[0].header["SMSTAGE"] == "mean" and hdul[0].header["ENRICHED"]
        assert "erg" in hdul["B1_FLUX"].header["BUNIT"]
        corr = hdul["B1_CORR"].data
        assert corr.shape[1:] == (2, hdul["B1_FLUX"].data.shape[1])
        assert 0.05 < np.median(corr[:, 0][corr[:, 0] != 0]) < 0.5
        assert hdul["MEANMETA"].columns["OI5577_FLUX"].unit == "10**-17 erg s-1 cm-2"


def test_mean_dispersion_is_the_plain_mean_of_the_used_fibres():
    wave = _native_grid(nfib=6, npix=400)
    disp = np.linspace(0.9, 1.2, 400)[None, :] * (1.0 + 0.05 * np.arange(6))[:, None]
    loglam = loglam_grid(3800.0, 3900.0)
    use = np.array([True, True, False, True, True, True])
    got = mean_dispersion(wave, disp, loglam, use)
    each = np.array([np.interp(loglam, np.log10(w), d) for w, d in zip(wave, disp, strict=True)])
    np.testing.assert_allclose(got, each[use].mean(axis=0), rtol=2e-3)
    assert not np.allclose(got, each.mean(axis=0), rtol=2e-3)   # the unused fibre is out
    # beyond every fibre's range: 0
    far = mean_dispersion(wave, disp, loglam_grid(4500.0, 4510.0))
    assert np.all(far == 0)


def test_stage_writes_the_mean_disp_of_the_fibres_used(noiseless_out):
    from skymodelling.stages.extract import output_path as extract_output

    means = skymodelling.open_dataset(noiseless_out).means
    meta = means.meta
    plate, mjd = int(meta["PLATE"][0]), int(meta["MJD"][0])
    with fits.open(output_path(noiseless_out, plate, mjd)) as hdul, \
            fits.open(extract_output(noiseless_out, plate, mjd)) as ext:
        emeta = Table.read(ext["META"], unit_parse_strict="silent")
        for i in np.flatnonzero(np.asarray(meta["CAMERA"]).astype(str) == "b1")[:2]:
            row = meta[i]
            disp = hdul["B1_DISP"].data[int(row["ROW"])]
            assert hdul["B1_DISP"].header["BUNIT"] == "Angstrom"
            assert disp.dtype.kind == "f" and disp.shape == hdul["B_WAVE"].data.shape
            sel = ((np.asarray(emeta["CAMERA"]).astype(str) == "b1")
                   & (np.asarray(emeta["IMG"]) == row["IMG"]))
            rows = np.asarray(emeta["ROW"])[sel]
            # the fibres that entered the mean (noiseless: all with unmasked pixels)
            rows = rows[np.any(ext["B1_IVAR"].data[rows] > 0, axis=1)]
            wave = hdul["B_WAVE"].data
            each = np.array([np.interp(wave, w, d) for w, d in
                             zip(ext["B1_WAVE"].data[rows], ext["B1_DISP"].data[rows],
                                 strict=True)])
            good = disp > 0
            good[:3] = good[-3:] = False   # fibres not covering the ends are left out there
            assert good.mean() > 0.95
            assert row["NFIBERS"] == rows.size
            np.testing.assert_allclose(disp[good], each.mean(axis=0)[good], rtol=2e-3)


def test_noiseless_mean_matches_the_resampled_truth(noiseless_tree, noiseless_out):
    """Each fibre's flux equals its truth: so does the mean, with the same weights."""
    means = skymodelling.open_dataset(noiseless_out).means
    row = means.meta[0]
    _check_against_truth(noiseless_tree, noiseless_out, int(row["PLATE"]), int(row["MJD"]),
                         int(row["IMG"]), str(row["CAMERA"]), exact=True)


def test_rerun_skips_and_changed_settings_redo(noiseless_out, capsys):
    assert main(["mean", str(noiseless_out)]) == 0
    assert "1 already complete" in capsys.readouterr().out
    strict = Config().replace("mean", min_fibers=10000)
    copy = noiseless_out.parent / "copy"
    shutil.copytree(noiseless_out / "extract", copy / "extract")
    summary = run_mean(copy, strict)
    assert summary.n_done == 1 and summary.n_spectra == 0 and summary.n_failures > 0
    failures = read_failures(copy, "mean")
    assert "min_fibers" in failures["REASON"][0]
    with pytest.raises(SkyModellingError):
        run_mean(copy, Config().replace("mean", min_fibers=10001), strict=True)


def _check_against_truth(raw, out, plate, mjd, expid, camera, exact=False):
    """(mean - mean of the resampled truths) * sqrt(IVAR), relative bias in the continuum."""
    path = out / "extract" / f"{plate:04d}" / f"sky-{plate:04d}-{mjd:05d}.fits"
    meta = Table.read(path, hdu="META", unit_parse_strict="silent", mask_invalid=False)
    sel = np.flatnonzero((np.asarray(meta["IMG"]) == expid)
                         & (np.asarray(meta["CAMERA"]).astype(str) == camera))
    with fits.open(path) as hdul:
        rows = np.asarray(meta["ROW"])[sel]
        arrays = [np.asarray(hdul[f"{camera.upper()}_{k}"].data[rows], dtype=float)
                  for k in ("WAVE", "FLUX", "IVAR")]
    loglam = arm_grid(camera[0])
    res = mean_spectrum(*arrays, loglam)
    truth = skymodelling.read_truth(raw, plate, expid, camera)
    index = {int(f): i for i, f in enumerate(truth["FIBERID"])}
    tw = np.array([truth["WAVE"][index[int(f)]] for f in meta["FIB"][sel]])
    ts = np.array([truth["SKY"][index[int(f)]] for f in meta["FIB"][sel]])
    tflux, tivar = resample_flux(tw, ts, np.ones_like(ts), loglam_edges(loglam))
    w = np.where(tivar > 0, res.weights, 0.0)
    ok = (res.NUSED >= 10) & (w.sum(axis=0) > 0) & np.all((tivar > 0) | ~res.used, axis=0)
    tmean = (w * tflux).sum(axis=0)[ok] / w.sum(axis=0)[ok]
    # the stage wrote the same mean
    with fits.open(output_path(out, plate, mjd)) as hdul:
        mm = Table.read(hdul["MEANMETA"], unit_parse_strict="silent", mask_invalid=False)
        k = np.flatnonzero((np.asarray(mm["IMG"]) == expid)
                           & (np.asarray(mm["CAMERA"]).astype(str) == camera))[0]
        stored = hdul[f"{camera.upper()}_FLUX"].data[int(mm["ROW"][k])]
    np.testing.assert_allclose(stored, res.FLUX, rtol=1e-6, atol=1e-6)
    if exact:  # extract's noiseless fluxes equal the truth to a few 1e-5 (its calibration
        # interpolation); the mean adds nothing to that
        np.testing.assert_allclose(res.FLUX[ok], tmean, rtol=1e-4)
    pull = (res.FLUX[ok] - tmean) * np.sqrt(res.IVAR[ok])
    continuum = tmean < 1.2 * np.median(tmean)
    bias = np.sum(res.FLUX[ok][continuum] - tmean[continuum]) / np.sum(tmean[continuum])
    return pull, bias


@pytest.fixture(scope="module")
def noisy_out(sim_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("mean-noisy") / "out"
    run_extract(sim_tree, out, workers=2)
    run_mean(out, workers=2)
    return out


@pytest.mark.slow
def test_noisy_mean_agrees_with_the_truth_within_errors(sim_tree, noisy_out):
    means = skymodelling.open_dataset(noisy_out).means
    pulls, biases = [], []
    for row in means.meta:
        pull, bias = _check_against_truth(sim_tree, noisy_out, int(row["PLATE"]),
                                          int(row["MJD"]), int(row["IMG"]),
                                          str(row["CAMERA"]))
        pulls.append(pull)
        biases.append(bias)
    pull = np.concatenate(pulls)
    print(f"pulls: n={pull.size} median|pull|={np.median(np.abs(pull)):.3f} "
          f"mean={pull.mean():.4f} std={pull.std():.3f}; continuum bias per spectrum "
          f"{np.min(biases):+.2e} to {np.max(biases):+.2e}, mean {np.mean(biases):+.2e}")
    assert np.median(np.abs(pull)) == pytest.approx(0.674, abs=0.05)
    assert abs(pull.mean()) < 0.1
    assert np.max(np.abs(biases)) < 0.005
