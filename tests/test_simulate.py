"""The simulator: readers accept its tree, truth is consistent, runs are deterministic."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from truth_helpers import smoothed_transmission

from skymodelling import read_truth
from skymodelling.cli import main
from skymodelling.io import paths, sppixmask
from skymodelling.io.frames import read_spcframe, read_spframe
from skymodelling.io.platelist import read_platelist
from skymodelling.io.spfluxcalib import read_spfluxcalib
from skymodelling.io.spplate import read_spplate
from skymodelling.simulate import camera as cammod
from skymodelling.simulate.truth import read_exposures
from skymodelling.sky.extinction import transmission
from skymodelling.sky.units import ab_magnitude


@pytest.mark.slow
def test_own_readers_accept_every_file(sim_tree):
    platelist = read_platelist(paths.find_platelist(sim_tree))
    assert len(platelist) == 2 + 3
    n_frames = 0
    for spplate_path in sorted(sim_tree.glob("v5_7_0/*/spPlate-*.fits")):
        sp = read_spplate(spplate_path)
        assert sp.complete and sp.nexp == 12
        assert sp.plate in set(platelist["PLATE"])
        folder = spplate_path.parent
        for e in sp.exposures:
            frame = read_spframe(paths.find_frame(folder, "spFrame", e.camera, e.expid))
            cframe = read_spcframe(paths.find_frame(folder, "spCFrame", e.camera, e.expid))
            calib, hdr = read_spfluxcalib(paths.find_frame(folder, "spFluxcalib", e.camera,
                                                           e.expid))
            assert frame.camera == e.camera and frame.expid == e.expid
            assert frame.flux.dtype == np.float32 and frame.flux.dtype.isnative
            assert np.allclose(frame.loglam, cframe.loglam[:, :frame.npix], atol=1e-9)
            assert calib.shape == frame.flux.shape
            n_frames += 1
    assert n_frames == 24


def test_sky_fibres_and_masks(sim_tree):
    folder = next(sim_tree.glob("v5_7_0/*"))
    sp = read_spplate(next(folder.glob("spPlate-*.fits")), data=True)
    sky = np.char.strip(np.asarray(sp.plugmap["OBJTYPE"]).astype(str)) == "SKY"
    ids = np.asarray(sp.plugmap["FIBERID"])[sky]
    assert (ids <= 500).sum() >= 30 and (ids > 500).sum() >= 30
    e = sp.exposures[0]
    frame = read_spframe(paths.find_frame(folder, "spFrame", e.camera, e.expid))
    # one unplugged sky fibre carries NOPLUG over all pixels; BRIGHTSKY marks sky lines
    noplug = sppixmask.test(frame.mask, "NOPLUG").all(axis=1)
    frame_sky = np.char.strip(np.asarray(frame.plugmap["OBJTYPE"]).astype(str)) == "SKY"
    assert noplug.any()
    assert sppixmask.test(frame.mask[frame_sky], "BRIGHTSKY").any()
    assert sppixmask.test(frame.mask, "FULLREJECT").any()
    cframe = read_spcframe(paths.find_frame(folder, "spCFrame", e.camera, e.expid))
    assert sppixmask.test(cframe.mask, "COMBINEREJ").any()
    assert not sppixmask.test(frame.mask, "COMBINEREJ").any()


def test_truth_table(sim_tree):
    table = read_exposures(sim_tree)
    row = table[0]
    truth = read_truth(sim_tree, int(row["PLATE"]), int(row["EXPID"]), "r2")
    assert set(truth.colnames) >= {"FIBERID", "WAVE", "SKY", "CONT", "LINES"}
    assert truth["FIBERID"].min() > 500
    assert np.allclose(truth["SKY"], truth["CONT"] + truth["LINES"], rtol=1e-5, atol=1e-5)
    assert np.all(truth["CONT"] > 0) and np.all(truth["LINES"] >= 0)
    assert truth.meta["EXPID"] == row["EXPID"]
    assert 90 < truth.meta["OI5577"] < 400


def test_noiseless_calibration_relation(noiseless_tree):
    """(HDU0 + HDU6) x R / C x f / T(X) is the truth for the reference exposure.

    For the reference exposure the simulator's aperture factor equals the
    original's f = 1.027356, so the sky is recovered exactly once the
    atmospheric transmission in its calibration is divided out.
    """
    exposures = read_exposures(noiseless_tree)
    ref = exposures[exposures["REFERENCE"]][0]
    assert ref["KAPPA"] == pytest.approx(cammod.DIFFUSE_CORRECTION)
    folder = paths.plate_dir(noiseless_tree, "v5_7_0", int(ref["PLATE"]))
    for cam in paths.CAMERAS:
        truth = read_truth(noiseless_tree, int(ref["PLATE"]), int(ref["EXPID"]), cam)
        rows = truth["FIBERID"] - 1 - paths.fiberid_offset(cam)
        frame = read_spframe(paths.find_frame(folder, "spFrame", cam, int(ref["EXPID"])),
                             rows=rows)
        calib, _ = read_spfluxcalib(paths.find_frame(folder, "spFluxcalib", cam,
                                                     int(ref["EXPID"])), rows=rows)
        r_factor = 1e-4 / frame.wave_traceset.native_dloglam(frame.npix, rows=rows)
        wave = 10**frame.loglam
        good = (calib > 0.2 * calib.max()) & (frame.ivar > 0)
        good &= ~sppixmask.test(frame.mask, ["NOPLUG", "BADSKYFIBER"])
        sky = ((frame.flux + frame.sky) * r_factor / np.where(good, calib, 1.0)
               * cammod.DIFFUSE_CORRECTION
               * transmission(wave * (1 + ref["HELIO_RV"] / 299792.458), float(ref["AIRMASS"])))
        assert np.allclose(truth["WAVE"], wave)
        rel = np.abs(sky[good] / np.asarray(truth["SKY"])[good] - 1)
        assert np.median(rel) < 1e-4 and np.percentile(rel, 99.9) < 1e-3


def test_truth_magnitude_matches_sky_model(sim_tree):
    """The instrument chain conserves the model's broadband brightness (r, per arcsec2)."""
    from astropy.table import Table

    exposures = read_exposures(sim_tree)
    row = exposures[0]
    plate, expid = int(row["PLATE"]), int(row["EXPID"])
    sky = Table.read(sim_tree / "truth" / f"{plate:04d}" / f"sky-{plate:04d}-{expid:08d}.fits",
                     hdu="CONTINUUM")
    lines = Table.read(sim_tree / "truth" / f"{plate:04d}" / f"sky-{plate:04d}-{expid:08d}.fits",
                       hdu="LINES")
    cont = sum(np.asarray(sky[c], dtype=float) for c in sky.colnames if c != "WAVE")
    model_r = ab_magnitude(np.asarray(sky["WAVE"]), cont, "sdss2010-r",
                           line_wave=np.asarray(lines["WAVE"]), line_flux=np.asarray(lines["FLUX"]))
    truth = read_truth(sim_tree, plate, expid, "r1")
    wave = np.asarray(truth["WAVE"][0], dtype=float)
    # the calibration divides out the telluric bands at the instrument's resolution
    tw, t_cal = smoothed_transmission(
        Table.read(sim_tree / "truth" / f"{plate:04d}" / f"sky-{plate:04d}-{expid:08d}.fits",
                   hdu="TELLURIC"), float(np.median(np.gradient(wave))) * 1.08)
    cont = cont / np.interp(np.asarray(sky["WAVE"]), tw, t_cal)
    line_flux = np.asarray(lines["FLUX"]) / np.interp(np.asarray(lines["WAVE"]), tw, t_cal)
    # r lies in the red camera above 5650 A only partly: compare i instead, fully covered
    model_i = ab_magnitude(np.asarray(sky["WAVE"]), cont, "sdss2010-i",
                           line_wave=np.asarray(lines["WAVE"]), line_flux=line_flux)
    per_arcsec2 = np.median(np.asarray(truth["SKY"], dtype=float), axis=0) * 1e-17 / np.pi
    helio = 1 + row["HELIO_RV"] / 299792.458
    sim_i = ab_magnitude(wave * helio, per_arcsec2, "sdss2010-i")
    assert sim_i == pytest.approx(model_i, abs=0.03)
    assert 17.0 < model_r < 22.0


def _digest(root):
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_deterministic_whatever_the_workers(tmp_path, noiseless_tree):
    from skymodelling.simulate.tree import simulate_tree

    simulate_tree(tmp_path / "a", n_plates=1, n_exposures=1, seed=7, noiseless=True, workers=1)
    assert _digest(tmp_path / "a") == _digest(noiseless_tree)  # made with several workers
    simulate_tree(tmp_path / "b", n_plates=1, n_exposures=1, seed=8, noiseless=True, workers=2)
    assert _digest(tmp_path / "b") != _digest(noiseless_tree)


def test_simulate_refuses_non_empty_dir(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "something").write_text("x")
    assert main(["simulate", str(tmp_path / "raw"), "--plates", "1"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and str(tmp_path / "raw") in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_simulate_unwritable_parent(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o500)
    assert main(["simulate", str(parent / "raw")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_simulate_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["simulate", str(tmp_path / "afile" / "raw")]) == 2
    err = capsys.readouterr().err
    assert "afile" in err and "not a directory" in err


def test_unknown_option_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "x", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_inspect_missing_file(tmp_path, capsys):
    missing = tmp_path / "spFrame-b1-00000001.fits.gz"
    assert main(["inspect", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err


def test_inspect_spframe_json(sim_tree, capsys):
    f = next(sim_tree.glob("v5_7_0/*/spFrame-r2-*.fits.gz"))
    assert main(["inspect", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["product"] == "spFrame" and info["camera"] == "r2"
    assert info["n_fibers"] == 500 and 30 <= info["n_sky_fibers"] <= 70
    lo, hi = info["wavelength_range_A"]
    assert 5000 < lo < 5700 and 10300 < hi < 11300    # the real r1 traceset: ~5100-11000 A


def test_inspect_real_spplate(capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pydl")
    if spec is None:
        pytest.skip("pydl (test dependency) not installed")
    f = Path(spec.origin).parent / "pydlspec2d" / "tests" / "t" / "spPlate-4055-55359-0020.fits"
    assert main(["inspect", str(f), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["plate"] == 4055 and info["mjd"] == 55359
    assert len(info["exposures"]) == 24
    assert info["exposures"][0] == {"camera": "b1", "expid": 116475, "flat": 116481,
                                    "arc": 116482}
    assert info["exposures"][-1] == {"camera": "r2", "expid": 116480, "flat": 116481,
                                     "arc": 116482}


def test_plan_without_the_rejected_exposure():
    from skymodelling.simulate.observations import plan_observations

    with_rej = plan_observations(2, 2, np.random.default_rng(5))
    without = plan_observations(2, 2, np.random.default_rng(5), rejected=False)
    assert [len(v.exposures) for v in with_rej] == [3, 3]
    assert [sum(not e.listed for e in v.exposures) for v in with_rej] == [1, 1]
    assert [len(v.exposures) for v in without] == [2, 2]
    assert all(e.listed for v in without for e in v.exposures)
