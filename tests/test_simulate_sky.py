"""The simulated tree carries the independent sky: telluric bands, all lines, truth split."""
import numpy as np
import pytest
from astropy.table import Table
from truth_helpers import smoothed_transmission

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


def test_calibration_carries_the_bands_and_the_truth_is_calibrated(noiseless_tree):
    """The spFluxcalib vector carries the telluric bands, as real BOSS calibrations do (they
    rise 2.6 x in the O2 A band), so the calibrated truth continuum runs smoothly across
    the A band and the lines integrate to their fluxes divided by the smoothed bands."""
    from skymodelling.io import paths
    from skymodelling.io.frames import read_spframe
    from skymodelling.io.spfluxcalib import read_spfluxcalib

    row, plate, expid = _first(noiseless_tree)
    truth = read_truth(noiseless_tree, plate, expid, "r1")
    wave = np.asarray(truth["WAVE"][0], dtype=float)
    cont = np.median(np.asarray(truth["CONT"], dtype=float), axis=0)
    across = np.interp(7615.0, [7530.0, 7760.0], np.interp([7530.0, 7760.0], wave, cont))
    assert np.interp(7615.0, wave, cont) == pytest.approx(across, rel=0.08)
    folder = next(noiseless_tree.glob(f"v5_7_0/{plate:04d}"))
    fibre = int(truth["FIBERID"][0]) - 1
    calib, _ = read_spfluxcalib(paths.find_frame(folder, "spFluxcalib", "r1", expid),
                                rows=[fibre])
    frame = read_spframe(paths.find_frame(folder, "spFrame", "r1", expid), rows=[fibre])
    cwave = 10.0 ** frame.loglam[0]
    c = calib[0].astype(float)
    c_across = np.interp(7610.0, [7530.0, 7760.0], np.interp([7530.0, 7760.0], cwave, c))
    assert np.interp(7610.0, cwave, c) < 0.6 * c_across          # O2 A in the calibration
    sky = np.asarray(truth["SKY"], dtype=float)
    assert sky == pytest.approx(np.asarray(truth["CONT"]) + np.asarray(truth["LINES"]),
                                rel=1e-5, abs=1e-6)
    # LINES integrate to the listed line fluxes (exact and bulk-rendered lines alike) once
    # multiplied back by the transmission smoothed to the resolution (a Gaussian of ~1.08
    # pixels, computed here independently of the simulator)
    path = sky_truth_path(noiseless_tree, plate, expid)
    lines = Table.read(path, hdu="LINES")
    tw, smooth = smoothed_transmission(Table.read(path, hdu="TELLURIC"),
                                       float(np.median(np.gradient(wave))) * 1.08)
    helio = 1 + float(row["HELIO_RV"]) / 299792.458
    lw = np.asarray(lines["WAVE"], dtype=float) / helio
    inside = (lw > wave[100]) & (lw < wave[-100])
    want = np.sum(np.asarray(lines["FLUX"])[inside]) * np.pi * 1e17
    lin = np.median(np.asarray(truth["LINES"], dtype=float), axis=0)
    lin_ground = lin * np.interp(wave * helio, tw, smooth)
    got = np.sum((lin_ground * np.gradient(wave))[100:-100])
    assert got == pytest.approx(want, rel=0.02)
    # and the calibrated lines are brighter than the absorbed ones (by ~9 % over the camera)
    assert np.sum((lin * np.gradient(wave))[100:-100]) > 1.04 * want
