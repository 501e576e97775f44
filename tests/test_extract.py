"""Stage extract: calibration, fibre mapping, masks, metadata, bad input, resumability."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling import open_dataset, read_truth
from skymodelling.cli import main
from skymodelling.config import Config
from skymodelling.io import paths, sppixmask
from skymodelling.io.frames import read_spcframe, read_spframe
from skymodelling.io.spfluxcalib import read_spfluxcalib, write_spfluxcalib
from skymodelling.io.spplate import read_spplate
from skymodelling.stages._common import read_failures
from skymodelling.stages.extract import OUTSIDE, output_path, run_extract


@pytest.fixture(scope="module")
def extracted(sim_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "out"
    summary = run_extract(sim_tree, out, workers=2)
    assert summary.n_failures == 0 and summary.n_done == 2
    return out


@pytest.fixture(scope="module")
def extracted_noiseless(noiseless_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract-nl") / "out"
    run_extract(noiseless_tree, out)
    return out


def _truth_row(raw, meta_row):
    truth = read_truth(raw, int(meta_row["PLATE"]), int(meta_row["IMG"]), str(meta_row["CAMERA"]))
    return truth[truth["FIBERID"] == meta_row["FIB"]][0]


def test_noiseless_flux_equals_truth(noiseless_tree, extracted_noiseless):
    ds = open_dataset(extracted_noiseless)
    assert len(ds) > 0
    errors = []
    for i in range(len(ds)):
        row, spec = ds.meta[i], ds.spectrum(i)
        truth = _truth_row(noiseless_tree, row)
        sky = np.interp(spec.WAVE, truth["WAVE"], truth["SKY"])
        good = spec.good
        errors.append(np.abs(spec.FLUX[good] / sky[good] - 1))
        assert np.all(spec.WAVE[good] >= (3650 if row["CAMERA"][0] == "b" else 5650))
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.005
    assert np.percentile(errors, 99) < 0.01


def test_telluric_ratio_recovers_band_ratio_under_smooth_differences():
    from skymodelling.stages.extract import telluric_ratio

    wave = np.linspace(5650.0, 10400.0, 4000)[None, :].repeat(3, axis=0) + np.arange(3)[:, None]
    band = lambda depth: 1.0 - depth * (np.exp(-0.5 * ((wave - 7620.0) / 15.0) ** 2)   # noqa
                                        + 0.8 * np.exp(-0.5 * ((wave - 9400.0) / 150.0) ** 2))
    smooth_exp = 3.0 * (1.0 + 0.3 * (wave - 8000.0) / 5000.0)       # seeing, time, extinction
    smooth_ref = 2.0 * (1.0 - 0.1 * (wave - 8000.0) / 5000.0)
    ratio = smooth_exp * band(0.6) / (smooth_ref * band(0.4))
    got = telluric_ratio(wave, ratio)
    want = band(0.6) / band(0.4)
    assert np.max(np.abs(got / want - 1)) < 0.01
    assert np.all(got[(wave > 7740) & (wave < 7860)] == 1.0)    # outside every window
    # unusable pixels and a window without pixels beyond its edge give 1
    ratio[:, :50] = 0.0
    cut = wave < 9000.0
    got = telluric_ratio(np.where(cut, wave, np.nan), np.where(cut, ratio, np.nan))
    assert np.all(got[:, :50] == 1.0) and np.all(got[~cut] == 1.0)


@pytest.mark.slow
def test_fixed_calibration_takes_the_exposures_telluric_bands(sim_tree, extracted, tmp_path):
    """The fixed reference corrects its own night's bands; with telluric_from_exposure the
    extracted sky follows the truth in the H2O band in exposures at another airmass."""
    config = Config().replace("extract", telluric_from_exposure=False)
    run_extract(sim_tree, tmp_path / "out", config)
    with_term, without = open_dataset(extracted), open_dataset(tmp_path / "out")
    ref_airmass = {}
    for ds in (with_term,):
        for i in range(len(ds)):
            if int(ds.meta["IMG"][i]) == config.extract.reference_expid:
                ref_airmass[str(ds.meta["CAMERA"][i])] = float(ds.meta["AIRMASS"][i])
    bias = {"with": [], "without": []}
    for name, ds in (("with", with_term), ("without", without)):
        for i in range(len(ds)):
            row = ds.meta[i]
            cam = str(row["CAMERA"])
            if cam[0] != "r" or abs(float(row["AIRMASS"]) - ref_airmass.get(cam, np.inf)) < 0.08:
                continue
            spec = ds.spectrum(i)
            truth = _truth_row(sim_tree, row)
            sky = np.interp(spec.WAVE, truth["WAVE"], truth["SKY"])
            sel = spec.good & (spec.WAVE > 9150.0) & (spec.WAVE < 9550.0)
            if sel.sum() > 100:
                bias[name].append(np.median(spec.FLUX[sel] / sky[sel]) - 1.0)
    assert len(bias["with"]) >= 20 and len(bias["with"]) == len(bias["without"])
    assert abs(np.median(bias["with"])) < 0.005
    assert np.median(np.abs(bias["without"])) > 3 * np.median(np.abs(bias["with"]))


def test_fibre_mapping_both_spectrographs(sim_tree, extracted):
    ds = open_dataset(extracted)
    for plate_dir in sorted(sim_tree.glob("v5_7_0/*")):
        sp = read_spplate(next(plate_dir.glob("spPlate-*.fits")), data=True)
        objtype = np.char.strip(np.asarray(sp.plugmap["OBJTYPE"]).astype(str))
        sky_ids = set(np.asarray(sp.plugmap["FIBERID"])[objtype == "SKY"].tolist())
        for cam in paths.CAMERAS:
            expected = {f for f in sky_ids if (f <= 500) == (cam[1] == "1")}
            for expid in sp.expids(cam):
                sel = ((ds.meta["PLATE"] == sp.plate) & (ds.meta["CAMERA"] == cam)
                       & (ds.meta["IMG"] == expid))
                assert set(ds.meta["FIB"][sel].tolist()) == expected
                assert np.all(ds.meta["SPECNO"][sel] == int(cam[1]))


def test_only_coadded_exposures(sim_tree, extracted):
    ds = open_dataset(extracted)
    for plate_dir in sorted(sim_tree.glob("v5_7_0/*")):
        sp = read_spplate(next(plate_dir.glob("spPlate-*.fits")))
        frames = {int(p.name[11:19]) for p in plate_dir.glob("spFrame-b1-*.fits.gz")}
        listed = set(sp.expids("b1"))
        assert listed < frames
        got = set(ds.meta["IMG"][ds.meta["PLATE"] == sp.plate].tolist())
        assert got == listed


def test_calibration_relation_exposure_mode(noiseless_tree, tmp_path):
    """--calibration exposure: FLUX = (HDU0 + HDU6) R / C with the exposure's spFluxcalib."""
    config = Config().replace("extract", calibration="exposure")
    run_extract(noiseless_tree, tmp_path / "out", config)
    ds = open_dataset(tmp_path / "out")
    i = int(np.flatnonzero(ds.meta["CAMERA"] == "b2")[3])
    row, spec = ds.meta[i], ds.spectrum(i)
    folder = next(noiseless_tree.glob(f"v5_7_0/{int(row['PLATE']):04d}"))
    frow = int(row["FIB"]) - 501
    frame = read_spframe(paths.find_frame(folder, "spFrame", "b2", int(row["IMG"])),
                         rows=[frow])
    calib, _ = read_spfluxcalib(paths.find_frame(folder, "spFluxcalib", "b2", int(row["IMG"])),
                                rows=[frow])
    loglam = frame.loglam[0]
    # R from the trace set at pixel edges, computed here independently of the package
    x = np.arange(frame.npix)
    r_factor = 1e-4 / np.abs(frame.wave_traceset.evaluate_at(x + 0.5, rows=[frow])[0]
                             - frame.wave_traceset.evaluate_at(x - 0.5, rows=[frow])[0])
    start = int(np.searchsorted(10**loglam, spec.WAVE[0] - 1e-6))
    window = slice(start, start + spec.WAVE.size)
    assert np.allclose(10**loglam[window], spec.WAVE)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ((frame.flux + frame.sky)[0] * r_factor / calib[0])[window]
        ivar_expected = (frame.ivar[0] / (r_factor / calib[0]) ** 2)[window]
    good = spec.good
    assert good.sum() > 2000     # 3560-6330 A: ~2590 native pixels of ~1.07 A
    assert np.allclose(spec.FLUX[good], expected[good], rtol=2e-5)
    assert np.allclose(spec.IVAR[good], ivar_expected[good], rtol=1e-4)


def test_masks(sim_tree, extracted):
    ds = open_dataset(extracted)
    cfg = Config().extract
    bad_bits = sppixmask.bitmask(cfg.mask_bits)
    n_bright_kept = n_noplug = 0
    for i in range(0, len(ds), 7):
        spec = ds.spectrum(i)
        flagged = (spec.MASK & bad_bits) != 0
        assert not np.any(spec.IVAR[flagged] > 0)
        assert not np.any(spec.IVAR[(spec.MASK & OUTSIDE) != 0] > 0)
        bright_only = (spec.MASK & sppixmask.bitmask("BRIGHTSKY")) != 0
        bright_only &= ~flagged & ((spec.MASK & OUTSIDE) == 0)
        n_bright_kept += int(np.sum(spec.IVAR[bright_only] > 0))
        if sppixmask.test(spec.MASK, "NOPLUG").all():
            n_noplug += 1
            assert not spec.good.any()
    assert n_bright_kept > 0, "BRIGHTSKY must never mask a sky pixel"
    # COMBINEREJ exists only in spCFrames: its pixels must be masked in the output
    row = ds.meta[0]
    folder = next(sim_tree.glob(f"v5_7_0/{int(row['PLATE']):04d}"))
    cam = str(row["CAMERA"])
    frow = int(row["FIB"]) - 1 - paths.fiberid_offset(cam)
    cframe = read_spcframe(paths.find_frame(folder, "spCFrame", cam, int(row["IMG"])),
                           rows=[frow])
    spec = ds.spectrum(0)
    combine = sppixmask.test(cframe.mask[0], "COMBINEREJ")
    start = int(np.searchsorted(10 ** cframe.loglam[0], spec.WAVE[0] - 1e-6))
    rej = np.flatnonzero(combine[start:start + spec.WAVE.size])
    assert not np.any(spec.IVAR[rej] > 0)


def test_noplug_sky_fibre_is_masked(sim_tree, extracted):
    ds = open_dataset(extracted)
    noplug = [i for i in range(len(ds))
              if sppixmask.test(ds.spectrum(i).MASK, "NOPLUG").all()]
    assert noplug, "the simulator unplugs one sky fibre per plate"
    assert all(not ds.spectrum(i).good.any() for i in noplug)


def test_metadata(sim_tree, extracted):
    ds = open_dataset(extracted)
    meta = ds.meta
    for col in ("PLATE", "SPECNO", "IMG", "FIB", "XFOCAL", "YFOCAL", "FIBER_RA", "FIBER_DEC",
                "OBJTYPE", "MJD", "TAI-BEG", "TAI-END", "RA", "DEC", "CAMERAS", "AIRMASS", "ALT",
                "AZ", "EXPTIME", "SEEING20", "SEEING50", "SEEING80", "RMSOFF20", "RMSOFF50",
                "RMSOFF80", "DATE-OBS", "REDDEN01", "REDDEN05", "QUALITY", "AIRTEMP", "DEWPOINT",
                "DUSTA", "DUSTB", "DUSTC", "DUSTD", "GUSTD", "GUSTS", "HUMIDITY", "PRESSURE",
                "WINDD", "WINDS", "HELIO_RV"):
        assert col in meta.colnames, col
    assert np.all(meta["OBJTYPE"] == "SKY")
    assert str(meta["TAI-BEG"].unit) == "s" and str(meta["FIBER_RA"].unit) == "deg"
    early = meta["MJD"] < 55605
    assert early.any() and (~early).any()
    assert np.all(np.isnan(meta["AIRTEMP"][early])) and np.all(np.isfinite(meta["AIRTEMP"][~early]))
    assert np.all(np.isnan(meta["DUSTC"]))  # never written by the BOSS ICC
    with fits.open(ds.files[0]) as hdul:
        assert hdul[0].header["SMSTAGE"] == "extract" and "SMVERS" in hdul[0].header
        assert '"calibration":"fixed"' in hdul[0].header["SMCONFIG"]
        assert hdul["B1_FLUX"].header["BUNIT"].startswith("10**-17 erg")


def test_zero_seeing_is_nan(tmp_path):
    from skymodelling.io.plugmap import empty_plugmap
    from skymodelling.stages.extract import frame_metadata

    header = fits.Header({"PLATEID": 1, "SEEING50": 0.0, "AIRMASS": 0.0, "AIRTEMP": 0.0})
    cols = frame_metadata(header, empty_plugmap(2), "b1", "v5_7_0")
    assert np.isnan(cols["SEEING50"]).all() and np.isnan(cols["AIRMASS"]).all()
    assert np.all(cols["AIRTEMP"] == 0.0)  # a real 0 C, not a missing value
    assert np.all(cols["MJD"] == -1) and np.isnan(cols["HUMIDITY"]).all()


# ------------------------------------------------------------------ bad input

def _linked_copy(src, dst):
    shutil.copytree(src, dst, copy_function=os.link)


def _replace(path, writer):
    """Rewrite a hard-linked file without touching the original."""
    tmp = path.with_name("new-" + path.name)
    writer(tmp)
    path.unlink()
    tmp.rename(path)


def _listed(raw):
    """The plate that is not the reference plate 3985, and its spPlate."""
    folder = next(f for f in sorted(raw.glob("v5_7_0/*")) if f.name != "3985")
    sp = read_spplate(next(folder.glob("spPlate-*.fits")))
    return folder, sp


@pytest.mark.slow
def test_bad_inputs_are_recorded_and_the_rest_proceeds(sim_tree, tmp_path, capsys):
    raw = tmp_path / "raw"
    _linked_copy(sim_tree, raw)
    folder, sp = _listed(raw)
    e1, e2, e3 = sp.expids("b1")
    # 1. missing spCFrame
    (folder / paths.spcframe_name("b1", e1)).unlink()
    # 2. truncated .fits.gz
    gz = folder / paths.spframe_name("r1", e1)
    data = gz.read_bytes()
    _replace(gz, lambda p: p.write_bytes(data[: len(data) // 2]))
    # 3. corrupt .fits.gz (garbage after the gzip magic)
    gz = folder / paths.spframe_name("r2", e2)
    _replace(gz, lambda p: p.write_bytes(b"\x1f\x8b" + os.urandom(5000)))
    # 4. a missing HDU and 5. a plugmap without OBJTYPE
    def without_hdus(p):
        with fits.open(folder / paths.spframe_name("b2", e2)) as hdul:
            fits.HDUList([h.copy() for h in hdul[:4]]).writeto(p)
    _replace(folder / paths.spframe_name("b2", e2), without_hdus)
    def no_objtype(p):
        with fits.open(folder / paths.spframe_name("b1", e3)) as hdul:
            plug = Table(hdul[5].data)
            plug.remove_column("OBJTYPE")
            hdus = [h.copy() for h in hdul]
            hdus[5] = fits.table_to_hdu(plug)
            fits.HDUList(hdus).writeto(p)
    _replace(folder / paths.spframe_name("b1", e3), no_objtype)
    # 6. an empty plate folder
    (raw / "v5_7_0" / "9999").mkdir()

    out = tmp_path / "out"
    code = main(["extract", str(raw), str(out)])
    assert code == 1
    failures = read_failures(out, "extract")
    reasons = {(int(r["PLATE"]), int(r["EXPID"]), str(r["CAMERA"])): str(r["REASON"])
               for r in failures}
    assert len(failures) == 6
    assert "no such file" in reasons[(sp.plate, e1, "b1")]
    assert "truncated" in reasons[(sp.plate, e1, "r1")] or "missing" in reasons[
        (sp.plate, e1, "r1")]
    assert "gzip" in reasons[(sp.plate, e2, "r2")]
    assert "HDU 5" in reasons[(sp.plate, e2, "b2")] or "HDU 6" in reasons[(sp.plate, e2, "b2")]
    assert "OBJTYPE" in reasons[(sp.plate, e3, "b1")]
    assert "no spPlate" in reasons[(9999, -1, "")]
    assert all(str(sp.plate) in f or "9999" in f for f in failures["FILE"])
    ds = open_dataset(out)
    # everything else was extracted: 24 camera-frames minus the 5 bad ones
    frames = {(int(r["PLATE"]), int(r["IMG"]), str(r["CAMERA"])) for r in ds.meta}
    assert len(frames) == 24 - 5
    assert "problems are listed" in capsys.readouterr().err


def test_bad_calibration_in_exposure_mode(sim_tree, tmp_path):
    raw = tmp_path / "raw"
    _linked_copy(sim_tree, raw)
    folder, sp = _listed(raw)
    e1, e2, _ = sp.expids("r2")
    calib_path = folder / paths.spfluxcalib_name("r2", e1)
    calib, header = read_spfluxcalib(calib_path)
    _replace(calib_path, lambda p: write_spfluxcalib(p, np.full_like(calib, np.nan), header))
    (folder / paths.spfluxcalib_name("r2", e2)).unlink()
    config = Config().replace("extract", calibration="exposure")
    summary = run_extract(raw, tmp_path / "out", config, plates=[sp.plate])
    failures = read_failures(tmp_path / "out")
    assert summary.n_failures == 2 == len(failures)
    assert {int(e) for e in failures["EXPID"]} == {e1, e2}
    assert any("zero or NaN" in r for r in failures["REASON"])
    # the fixed calibration reads them too (the exposures' telluric bands), and says how not to
    summary = run_extract(raw, tmp_path / "fixed", Config(), plates=[sp.plate])
    failures = read_failures(tmp_path / "fixed")
    assert summary.n_failures == 2 == len(failures)
    missing = failures[failures["EXPID"] == e2][0]
    assert paths.spfluxcalib_name("r2", e2)[:-3] in str(missing["FILE"])
    assert "telluric_from_exposure" in str(missing["REASON"])
    config = Config().replace("extract", telluric_from_exposure=False)
    summary = run_extract(raw, tmp_path / "no-telluric", config, plates=[sp.plate])
    assert summary.n_failures == 0


def test_strict_stops_at_first_problem(sim_tree, tmp_path, capsys):
    raw = tmp_path / "raw"
    _linked_copy(sim_tree, raw)
    folder, sp = _listed(raw)
    (folder / paths.spcframe_name("r1", sp.expids("r1")[0])).unlink()
    code = main(["extract", str(raw), str(tmp_path / "out"), "--strict",
                 "--plates", str(sp.plate)])
    assert code == 2
    assert "spCFrame" in capsys.readouterr().err
    assert not output_path(tmp_path / "out", sp.plate, sp.mjd).exists()


def test_missing_reference_is_a_clear_error(sim_tree, tmp_path, capsys):
    code = main(["extract", str(sim_tree), str(tmp_path / "out"), "--reference-expid", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "reference calibration not found" in err and "00000001" in err


def test_no_tree(tmp_path, capsys):
    assert main(["extract", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "no such directory" in capsys.readouterr().err


# --------------------------------------------------------------- resumability

def _outputs(out):
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted((out / "extract").rglob("*.fits"))}


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(sim_tree, extracted, tmp_path):
    out = tmp_path / "out"
    from conftest import kill_when

    done = kill_when(["extract", sim_tree, out, "--workers", "1"], out, "extract/*/*.done",
                     timeout=120)
    assert len(done) >= 1
    # nothing without a marker may look finished: only temporary files may be left
    for f in out.glob("extract/*/*"):
        assert f.name.endswith(".done") or f.name.startswith(".") or \
            (f.parent / (f.name + ".done")).exists()
    summary = run_extract(sim_tree, out)
    assert summary.n_skipped == len(done) and summary.n_done == 2 - len(done)
    assert _outputs(out) == _outputs(extracted)
    assert not list(out.glob("extract/*/.*"))
    # a rerun with nothing to do skips everything; a new setting redoes everything
    assert run_extract(sim_tree, out).n_skipped == 2
    changed = Config().replace("extract", diffuse_correction=1.0)
    assert run_extract(sim_tree, out, changed).n_done == 2


def test_partial_output_without_marker_is_redone(sim_tree, extracted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(extracted, out)
    target = next(out.glob("extract/*/sky-*.fits"))
    (target.parent / (target.name + ".done")).unlink()
    target.write_bytes(target.read_bytes()[:1000])
    summary = run_extract(sim_tree, out)
    assert summary.n_done == 1 and summary.n_skipped == 1
    assert _outputs(out) == _outputs(extracted)
