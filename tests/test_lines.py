"""Stage lines on extracted simulated spectra."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from skymodelling.config import Config
from skymodelling.errors import SkyModellingError
from skymodelling.simulate.truth import read_exposures
from skymodelling.sky.units import rayleigh_to_line_flux
from skymodelling.spectral.features import load_features
from skymodelling.stages.extract import run_extract
from skymodelling.stages.lines import measure_block, output_path, run_lines


@pytest.fixture(scope="module")
def measured(noiseless_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("lines") / "out"
    run_extract(noiseless_tree, out)
    summary = run_lines(out)
    assert summary.n_done == 1 and summary.n_failures == 0
    return out


def _table(out):
    path = next((out / "lines").glob("*/lines-*.fits"))
    return Table.read(path, hdu="LINES", mask_invalid=False, unit_parse_strict="silent")


def test_one_row_per_extracted_spectrum(measured):
    lines = _table(measured)
    meta = Table.read(next((measured / "extract").glob("*/sky-*.fits")), hdu="META",
                      unit_parse_strict="silent", mask_invalid=False)
    assert len(lines) == len(meta)
    for key in ("PLATE", "IMG", "CAMERA", "FIB", "ROW"):
        assert np.array_equal(lines[key], meta[key])
    blue = np.char.startswith(np.asarray(lines["CAMERA"]).astype(str), "b")
    assert np.all(np.isnan(lines["OI6300_FLUX"][blue]))
    assert np.all(np.isnan(lines["OI5577_FLUX"][~blue]))
    assert str(lines["SDSS_G"].unit) == "mag / arcsec2"


def test_oi5577_matches_the_simulated_intensity(noiseless_tree, measured):
    """The window measure of [OI] 5577 recovers the simulator's line within a few per cent.

    The +/-6 A window misses part of the grating's Lorentzian wing (a few per
    cent of the flux), so the measure is low by that much: a known limit of
    window measures that the decomposition stage removes.
    """
    lines = _table(measured)
    exposures = read_exposures(noiseless_tree)
    for row in exposures[exposures["LISTED"]]:
        expected = rayleigh_to_line_flux(row["OI5577"], 5578.9) * np.pi * 1e17
        sel = (lines["IMG"] == row["EXPID"]) & np.isfinite(lines["OI5577_FLUX"])
        measured_flux = np.median(lines["OI5577_FLUX"][sel])
        assert measured_flux == pytest.approx(expected, rel=0.08)
        assert measured_flux < expected  # the missed wing, never an excess


def test_vectorised_equals_one_by_one(measured):
    from astropy.io import fits

    path = next((measured / "extract").glob("*/sky-*.fits"))
    with fits.open(path) as hdul:
        wave, flux, ivar = (np.asarray(hdul[f"R2_{k}"].data, dtype=float)
                            for k in ("WAVE", "FLUX", "IVAR"))
    features = load_features()
    kw = dict(area_arcsec2=np.pi, min_coverage=0.99)
    all_rows = measure_block(wave, flux, ivar, "r", features, **kw)
    for i in (0, 7):
        one = measure_block(wave[i:i + 1], flux[i:i + 1], ivar[i:i + 1], "r", features, **kw)
        for name, values in one.items():
            assert np.allclose(values[0], all_rows[name][i], equal_nan=True, rtol=1e-10), name


def test_rerun_skips_and_changed_input_is_redone(noiseless_tree, measured, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(measured, out)
    assert run_lines(out).n_skipped == 1
    run_extract(noiseless_tree, out, Config().replace("extract", diffuse_correction=1.0))
    assert run_lines(out).n_done == 1


def test_bad_line_list_is_a_clear_error(measured, tmp_path):
    bad = tmp_path / "lines.csv"
    bad.write_text("NAME,KIND,CAMERA,WAVE\nX,line,b,5000\n")
    with pytest.raises(SkyModellingError, match="HALF_WIDTH"):
        run_lines(measured, Config().replace("lines", line_list=str(bad)))


def test_user_line_list(measured, tmp_path):
    custom = tmp_path / "lines.csv"
    custom.write_text("NAME,KIND,CAMERA,WAVE,HALF_WIDTH,SIDE_INNER,SIDE_OUTER\n"
                      "OI5577,line,b,5578.89,6,10,18\n")
    out = tmp_path / "out"
    import shutil

    shutil.copytree(measured / "extract", out / "extract")
    run_lines(out, Config().replace("lines", line_list=str(custom)))
    table = _table(out)
    assert "OI5577_FLUX" in table.colnames and "OI6300_FLUX" not in table.colnames


def test_no_extract_output(tmp_path):
    with pytest.raises(SkyModellingError, match="no complete extract output"):
        run_lines(tmp_path)


def test_output_path():
    assert output_path("OUT", 3985, 55320).as_posix() == "OUT/lines/3985/lines-3985-55320.fits"


def test_line_catalogue_says_what_decompose_fits(tmp_path):
    from skymodelling.errors import SkyModellingError
    from skymodelling.spectral.features import decomposition_lines
    from skymodelling.stages.decompose import output_names

    named = decomposition_lines()
    names = list(named["NAME"])
    assert "NAD" not in names and "O28607" not in names and {"NAD1", "NAD2"} <= set(names)
    out = output_names(named)
    assert out["NAD"] == ("NAD2", "NAD1") and out["NA5686"] == ("NA5683", "NA5688")
    assert list(out)[:len(names)] == names
    # a list without the columns: a clear error naming the file, not a KeyError
    from importlib import resources

    text = (resources.files("skymodelling.data") / "sky_features.csv").read_text()
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    old = tmp_path / "old.csv"
    old.write_text("\n".join(",".join(c for i, c in enumerate(r.split(",")) if i not in (8, 9))
                             for r in rows) + "\n")
    with pytest.raises(SkyModellingError, match=r"old\.csv.*lacks column\(s\) DECOMPOSE, GROUP"):
        decomposition_lines(old)
    bad = tmp_path / "bad.csv"
    bad.write_text(text.replace(",1,NAD,", ",1,NADX,", 1))
    with pytest.raises(SkyModellingError, match="GROUP NADX is not a feature"):
        decomposition_lines(bad)


def test_window_errors_of_resampled_spectra_include_the_pixels_correlation():
    """A window flux of a resampled spectrum sums correlated pixels: with the resampling's
    correlation its error is the scatter over noise draws, without it too small."""
    from skymodelling.spectral.features import band_mean, line_flux
    from skymodelling.spectral.resample import loglam_edges, loglam_grid, resample_flux

    rng = np.random.default_rng(8)
    nat = 10 ** (3.74 + 0.87e-4 * np.arange(400))
    ivar = np.full((3000, nat.size), 0.25)
    flux = 10.0 + rng.standard_normal(ivar.shape) / np.sqrt(ivar)
    edges = loglam_edges(loglam_grid(nat[3], nat[-3]))
    f, iv, corr = resample_flux(np.broadcast_to(nat, flux.shape), flux, ivar, edges,
                                correlation=True)
    wave = np.broadcast_to(0.5 * (edges[1:] + edges[:-1]), f.shape)
    w0 = float(wave[0, 180])
    for measure in (lambda c: line_flux(wave, f, iv, w0, 6.0, 10.0, 18.0, corr=c),
                    lambda c: band_mean(wave, f, iv, w0, 8.0, corr=c)):
        value, err, flag = measure(corr)
        _, err0, _ = measure(None)
        assert np.all(flag == 0)
        assert np.std(value) == pytest.approx(np.median(err), rel=0.06)
        assert np.median(err) / np.median(err0) > 1.1
