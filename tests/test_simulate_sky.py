"""The simulated tree carries the independent sky: telluric bands, all lines, truth split."""
import numpy as np
import pytest
from astropy.table import Table

from skymodelling import read_truth
from skymodelling.simulate.truth import read_exposures, sky_truth_path


def _first(raw):
    row = read_exposures(raw)[0]
    return row, int(row["PLATE"]), int(row["EXPID"])


def test_sky_truth_lists_every_line_and_the_transmission(noiseless_tree):
    row, plate, expid = _first(noiseless_tree)
    path = sky_truth_path(noiseless_tree, plate, expid)
    lines = Table.read(path, hdu="LINES")
    tell = Table.read(path, hdu="TELLURIC")
    assert (np.asarray(lines["SPECIES"], dtype=str) == "OH").sum() > 5000
    a_band = (tell["WAVE"] > 7595) & (tell["WAVE"] < 7700)
    assert tell["TRANS"][a_band].min() < 0.3 and tell["TRANS"].max() <= 1.0
    from astropy.io import fits

    head = fits.getheader(noiseless_tree / "truth" / "exposures.fits")
    assert head["SKYMODEL"] == "independent" and head["SKYPWV"] > 0 and head["OHTROT"] > 0


def test_camera_truth_continuum_shows_the_a_band_and_lines_conserve_flux(noiseless_tree):
    row, plate, expid = _first(noiseless_tree)
    truth = read_truth(noiseless_tree, plate, expid, "r1")
    wave = np.asarray(truth["WAVE"][0], dtype=float)
    cont = np.median(np.asarray(truth["CONT"], dtype=float), axis=0)
    near = np.interp(7560.0, wave, cont)
    assert np.interp(7615.0, wave, cont) < 0.85 * near     # O2 A inside the continuum
    sky = np.asarray(truth["SKY"], dtype=float)
    assert sky == pytest.approx(np.asarray(truth["CONT"]) + np.asarray(truth["LINES"]),
                                rel=1e-5, abs=1e-6)
    # LINES integrate to the listed line fluxes (exact and bulk-rendered lines alike)
    lines = Table.read(sky_truth_path(noiseless_tree, plate, expid), hdu="LINES")
    helio = 1 + float(row["HELIO_RV"]) / 299792.458
    lw = np.asarray(lines["WAVE"]) / helio
    inside = (lw > wave[100]) & (lw < wave[-100])
    want = np.sum(np.asarray(lines["FLUX"])[inside]) * np.pi * 1e17
    lin = np.median(np.asarray(truth["LINES"], dtype=float), axis=0)
    got = np.sum((lin * np.gradient(wave))[100:-100])
    assert got == pytest.approx(want, rel=0.02)
