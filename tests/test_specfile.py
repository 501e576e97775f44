"""Spec-file reader (io/specfile.py) and the extract-format stage built on it (stages/specfiles.py).

Synthetic spec files (written here with the layout of the real ones) test the arithmetic
without external data; the real BOSS files of ../shared/realsky test the format and the
units (skipped when absent).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.optimize import curve_fit
from scipy.special import erf

from skymodelling import open_dataset
from skymodelling.cli import main
from skymodelling.config import Config
from skymodelling.errors import BossFileError
from skymodelling.io import sppixmask
from skymodelling.io.specfile import (
    SpecExposure,
    parse_extname,
    parse_specfile_name,
    read_specfile,
    wdisp_to_angstrom,
)
from skymodelling.spectral.resample import loglam_edges
from skymodelling.stages import _common
from skymodelling.stages.extract import OUTSIDE, output_path
from skymodelling.stages.mean import arm_grid
from skymodelling.stages.specfiles import exposure_on_grid, run_extract_specfiles

LINE_WAVE = (4359.6, 5578.9, 6302.0, 8401.0)   # synthetic lines, vacuum A
LINE_FLUX = 80.0                               # 1e-17 erg/s/cm2 each
BAD = sppixmask.bitmask(Config().extract.mask_bits)
BRIGHT = sppixmask.bitmask('BRIGHTSKY')


# ------------------------------------------------------------ synthetic files

def _native(camera: str):
    """A native BOSS-like pixel grid: linear in wavelength (~1 A blue, ~1.4 A red)."""
    if camera[0] == "b":
        return np.log10(np.linspace(3600.0, 6400.0, 2700))
    return np.log10(np.linspace(5600.0, 10450.0, 3400))


def _sky(loglam, wdisp):
    """Continuum + pixel-integrated Gaussian lines of flux LINE_FLUX, per Angstrom."""
    wave = 10.0 ** loglam
    edges = np.concatenate([[1.5 * wave[0] - 0.5 * wave[1]], 0.5 * (wave[1:] + wave[:-1]),
                            [1.5 * wave[-1] - 0.5 * wave[-2]]])
    flux = 3.0 + 0.0002 * (wave - 3600.0)
    sigma = wdisp_to_angstrom(wdisp, loglam)
    for w0 in LINE_WAVE:
        s = np.sqrt(2.0) * np.interp(w0, wave, sigma)
        frac = 0.5 * (erf((edges[1:] - w0) / s) - erf((edges[:-1] - w0) / s))
        flux = flux + LINE_FLUX * frac / np.diff(edges)
    return flux


def _exposure_hdu(camera: str, expid: int, mjd: int, airmass: float):
    loglam = _native(camera)
    n = loglam.size
    wdisp = np.full(n, 1.1)
    sky = _sky(loglam, wdisp)
    ivar = np.full(n, 4.0)
    mask = np.zeros(n, np.int32)
    core = np.abs(10.0 ** loglam - 5578.9) < 1.0     # the [OI] 5577 core, masked as in BOSS
    ivar[core] = 0.0
    mask[core] = sppixmask.bitmask(['FULLREJECT', 'BRIGHTSKY'])
    cols = [fits.Column(name="flux", format="E", array=np.zeros(n)),
            fits.Column(name="loglam", format="E", array=loglam),
            fits.Column(name="ivar", format="E", array=ivar),
            fits.Column(name="mask", format="J", array=mask),
            fits.Column(name="wdisp", format="E", array=wdisp),
            fits.Column(name="sky", format="E", array=sky),
            fits.Column(name="calib", format="E", array=np.ones(n)),
            fits.Column(name="x", format="E", array=np.full(n, 100.0))]
    hdu = fits.BinTableHDU.from_columns(cols, name=f"{camera.upper()}-{expid:08d}-"
                                                   f"{expid - 1:08d}-{expid - 2:08d}")
    tai = mjd * 86400.0 + 20000.0 + 1000.0 * (expid % 10)
    for key, value in {"EXPOSURE": expid, "MJD": mjd, "PLATEID": 4000, "TAI-BEG": tai,
                       "TAI-END": tai + 900.0, "AIRMASS": airmass, "EXPTIME": 900.0,
                       "SEEING50": 1.4, "HELIO_RV": -10.0, "CAMERAS": camera,
                       "RA": 150.0, "DEC": 20.0}.items():
        hdu.header[key] = value
    return hdu


def write_specfile(path, *, fiberid=733, mjd=56000, expids=(1001, 1002), lite=False):
    """A spec file with the layout of the real ones (a few synthetic exposures)."""
    primary = fits.PrimaryHDU()
    primary.header.update({"PLATEID": 4000, "MJD": mjd, "RUN2D": "v5_7_0", "HELIO_RV": -10.0})
    grid = 3.5529 + 1e-4 * np.arange(4000)
    coadd = fits.BinTableHDU.from_columns(
        [fits.Column(name=n, format="E", array=np.ones(grid.size)) for n in
         ("flux", "ivar", "wdisp", "model")]
        + [fits.Column(name="loglam", format="E", array=grid),
           fits.Column(name="sky", format="E", array=np.full(grid.size, 2.0))], name="COADD")
    spall = fits.BinTableHDU.from_columns(
        [fits.Column(name="FIBERID", format="J", array=[fiberid]),
         fits.Column(name="PLUG_RA", format="D", array=[150.1]),
         fits.Column(name="PLUG_DEC", format="D", array=[20.2]),
         fits.Column(name="XFOCAL", format="E", array=[-46.0]),
         fits.Column(name="YFOCAL", format="E", array=[12.5]),
         fits.Column(name="OBJTYPE", format="6A", array=["QSO"])], name="SPALL")
    hdus = [primary, coadd, spall, fits.BinTableHDU.from_columns(
        [fits.Column(name="LINEWAVE", format="D", array=[0.0])], name="SPZLINE")]
    if not lite:
        hdus += [_exposure_hdu(cam, e, mjd, 1.1 + 0.01 * i)
                 for cam in ("b2", "r2") for i, e in enumerate(expids)]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


@pytest.fixture()
def specdir(tmp_path):
    folder = tmp_path / "spec"
    folder.mkdir()
    write_specfile(folder / "spec-4000-56000-0733.fits", fiberid=733)
    write_specfile(folder / "spec-4000-56000-0802.fits", fiberid=802)
    return folder


# ------------------------------------------------------------------- names

def test_names_are_parsed():
    assert parse_extname("R1-00123456-00123455-00123454") == ("r1", 123456)
    assert parse_extname("SPALL") is None
    assert parse_specfile_name("spec-4000-56000-0733.fits.gz") == (4000, 56000, 733)
    assert parse_specfile_name("spPlate-4000-56000.fits") is None


# ----------------------------------------------------------------- reader

def test_reader_returns_every_exposure(specdir):
    spec = read_specfile(specdir / "spec-4000-56000-0733.fits")
    assert (spec.plate, spec.mjd, spec.fiberid) == (4000, 56000, 733)
    assert spec.cameras() == ["b2", "r2"]
    assert [(e.camera, e.expid) for e in spec.exposures] == [
        ("b2", 1001), ("b2", 1002), ("r2", 1001), ("r2", 1002)]
    e = spec.exposures[0]
    assert e.header["AIRMASS"] == pytest.approx(1.1)
    assert e.mask.dtype == np.int32 and e.sky.shape == e.loglam.shape
    assert spec.spall["PLUG_RA"] == pytest.approx(150.1) and spec.spall["OBJTYPE"] == "QSO"
    # wdisp is sigma in 1e-4 dex
    lam = 10.0 ** e.loglam[100]
    assert e.disp[100] == pytest.approx(1.1 * 1e-4 * np.log(10) * lam, rel=1e-6)


@pytest.mark.parametrize("kind", ["primary-only", "lite", "truncated", "not-fits",
                                  "missing-column"])
def test_reader_refuses_what_is_not_a_full_spec_file(tmp_path, kind):
    path = tmp_path / "spec-4000-56000-0001.fits"
    if kind == "primary-only":
        fits.PrimaryHDU().writeto(path)
        expect = "COADD"
    elif kind == "lite":
        write_specfile(path, lite=True)
        expect = "lite"
    elif kind == "truncated":
        write_specfile(tmp_path / "full.fits")
        path.write_bytes((tmp_path / "full.fits").read_bytes()[:60000])
        expect = "truncated"
    elif kind == "missing-column":
        write_specfile(path)
        with fits.open(path) as hdul:
            hdus = [h.copy() for h in hdul]
        ext = hdus[4]
        keep = [c for c in ext.columns if c.name != "wdisp"]
        hdus[4] = fits.BinTableHDU.from_columns(keep, header=ext.header, name=ext.name)
        fits.HDUList(hdus).writeto(path, overwrite=True)
        expect = "no 'wdisp' column"
    else:
        path.write_text("SIMPLE = nonsense\n")
        expect = "FITS"
    with pytest.raises(BossFileError, match=expect) as info:
        read_specfile(path)
    assert str(path) in str(info.value)


# -------------------------------------------------------------- resampling

def test_exposure_on_grid_conserves_flux_and_keeps_the_mask(specdir):
    spec = read_specfile(specdir / "spec-4000-56000-0733.fits")
    for e in spec.exposures:
        loglam = arm_grid(e.camera[0])
        g = exposure_on_grid(e, loglam, bad_bits=BAD)
        assert np.allclose(g["WAVE"], 10.0 ** loglam)
        edges = loglam_edges(loglam)
        width = np.diff(edges)
        for w0 in LINE_WAVE:
            if not (edges[0] + 30 < w0 < edges[-1] - 30):
                continue
            win = (10.0 ** loglam > w0 - 25) & (10.0 ** loglam < w0 + 25)
            if np.any(g["IVAR"][win] == 0):
                continue   # the masked [OI] 5577 core
            cont = 3.0 + 0.0002 * (10.0 ** loglam[win] - 3600.0)
            line = np.sum((g["FLUX"][win] - cont) * width[win])
            assert line == pytest.approx(LINE_FLUX, rel=2e-3), (e.camera, w0)
        # the masked 5577 core stays masked (IVAR 0, the BRIGHTSKY bit carried over)
        core = np.abs(g["WAVE"] - 5578.9) < 1.0
        if core.any():
            assert np.all(g["IVAR"][core] == 0) and np.all(g["MASK"][core] & BRIGHT)
        good = ~core & (g["MASK"] & OUTSIDE == 0)
        assert np.all(g["IVAR"][good] > 0)
        # the grid reaches beyond the native pixels of neither camera here
        assert not np.any(g["MASK"] & OUTSIDE)
        assert np.allclose(g["DISP"], wdisp_to_angstrom(1.1, loglam), rtol=1e-4)


# -------------------------------------------------------------------- stage

def test_stage_writes_extract_format_that_later_stages_accept(specdir, tmp_path):
    out = tmp_path / "out"
    summary = run_extract_specfiles(specdir, out)
    assert (summary.n_done, summary.n_spectra, summary.n_failures) == (1, 8, 0)
    target = output_path(out, 4000, 56000)
    assert _common.marker_info(target)["n_spectra"] == 8
    ds = open_dataset(out)
    meta = ds.meta
    assert sorted(set(np.asarray(meta["FIB"]).tolist())) == [733, 802]
    assert set(np.asarray(meta["SPECNO"]).tolist()) == {2}
    assert np.all(np.asarray(meta["PLATE"]) == 4000)
    b = np.asarray(meta["CAMERA"]).astype(str) == "b2"
    assert np.allclose(meta["FIBER_RA"], 150.1) and np.allclose(meta["XFOCAL"], -46.0)
    assert np.allclose(np.sort(np.asarray(meta["AIRMASS"][b])), [1.1, 1.1, 1.11, 1.11])
    assert np.all(np.asarray(meta["TAI-END"]) - np.asarray(meta["TAI-BEG"]) == 900.0)
    header = fits.getheader(target)
    assert header["SMSTAGE"] == "extract" and header["CALIB"] == "specfile"
    with fits.open(target) as hdul:
        assert hdul["B2_FLUX"].header["BUNIT"] == "10**-17 erg Angstrom-1 s-1 cm-2"
        assert hdul["R2_DISP"].header["BUNIT"] == "Angstrom"
        # the exposures' own (native) pixels, as extract writes a frame's
        red = [e for e in read_specfile(sorted(specdir.glob("spec-*.fits"))[0]).exposures
               if e.camera == "r2"]
        wave = hdul["R2_WAVE"].data
        n = red[0].loglam.size
        np.testing.assert_allclose(wave[0, :n], red[0].wave, rtol=1e-12)
        assert np.all(np.diff(wave, axis=1) > 0)
        assert np.all(hdul["R2_IVAR"].data[0, n:] == 0)
    # a rerun reuses the output
    again = run_extract_specfiles(specdir, out)
    assert (again.n_skipped, again.n_done) == (1, 0)
    # lines, mean (one or two "fibres" per exposure) and decompose accept it
    assert main(["lines", str(out)]) == 0
    # with the default min_fibers (for plates' sky fibres) every exposure is a problem,
    # and the record says what to do
    assert main(["mean", str(out)]) == 1
    record = "".join(p.read_text() for p in (out / "failures").glob("mean-*.csv"))
    assert "fewer than min_fibers = 10" in record and "made from spec files" in record
    assert main(["mean", str(out), "--min-fibers", "2"]) == 0
    means = open_dataset(out).means.meta
    assert len(means) == 4 and np.all(np.asarray(means["NFIBERS"]) == 2)
    assert main(["decompose", str(out)]) == 0
    dec = Table.read(next((out / "decompose").glob("*/decomp-*.fits")), hdu="DECOMPMETA")
    assert len(dec) == 4
    red = np.asarray(dec["CAMERA"]).astype(str) == "r2"
    # the line at 4359.6 A is Hg 4358, isolated: its flux comes back
    assert np.allclose(np.asarray(dec["HG4358_FLUX"])[~red], LINE_FLUX, rtol=0.03)
    # the one at 6302.0 A is [OI] 6300, fitted jointly with the OH line 2.3 A blueward of
    # it (absent here). These lines have no scattering wing and, both fibres sharing their
    # pixels, a profile of a Gaussian over two pixel boxes: the model's profile (with the
    # BOSS wing) differs from it, which moves a few per cent of the flux between the two
    # and adds about 3 % (the wing) to their sum (docs/decompose.md, known limitations)
    pair = np.asarray(dec["OI6300_FLUX"])[red] + np.asarray(dec["OH6298_FLUX"])[red]
    assert np.allclose(pair, LINE_FLUX, rtol=0.07)
    assert np.all(np.asarray(dec["OI6300_FLUX"])[red] > 0.85 * LINE_FLUX)


def test_cli_records_a_bad_file_and_strict_stops(specdir, tmp_path, capsys):
    (specdir / "spec-4000-56000-0900.fits").write_text("not a FITS file\n")
    out = tmp_path / "out"
    assert main(["extract-spec", str(specdir), str(out)]) == 1
    failures = _common.read_failures(out, "extract")
    assert len(failures) == 1 and "spec-4000-56000-0900.fits" in failures["FILE"][0]
    assert main(["extract-spec", str(specdir), str(tmp_path / "o2"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "skymodelling: error:" in err and "spec-4000-56000-0900.fits" in err
    assert main(["extract-spec", str(tmp_path / "nowhere"), str(out)]) == 2
    assert "no such directory" in capsys.readouterr().err


# --------------------------------------------------------------- real files

def _gauss(x, a, m, s, c, d):
    return a * np.exp(-0.5 * ((x - m) / s) ** 2) + c + d * (x - m)


def test_real_files_read_with_conditions(realsky_dir):
    files = sorted(realsky_dir.glob("spec-*.fits"))
    assert len(files) >= 2
    for path in files:
        spec = read_specfile(path)
        assert (spec.plate, spec.mjd, spec.fiberid) == parse_specfile_name(path.name)
        sp = 1 if spec.fiberid <= 500 else 2
        assert spec.cameras() == [f"b{sp}", f"r{sp}"]
        for e in spec.exposures:
            assert 1.0 <= e.header["AIRMASS"] < 3.0 and e.header["EXPTIME"] > 0
            assert np.all(np.diff(e.loglam) > 0)
            assert 0.6 < np.median(e.disp) < 2.0
        blue = [e for e in spec.exposures if e.camera[0] == "b"]
        g = exposure_on_grid(blue[0], arm_grid("b"))
        # the [OI] 5577 core (ivar 0 in the files) stays masked on the grid
        masked = blue[0].wave[(blue[0].ivar == 0) & (np.abs(blue[0].wave - 5578.9) < 3)]
        assert masked.size > 0
        nearest = np.abs(g["WAVE"][:, None] - masked[None, :]).argmin(axis=0)
        assert np.all(g["IVAR"][nearest] == 0)


def test_real_wdisp_is_sigma_in_units_of_1e4_dex(realsky_dir):
    """Isolated sky lines over the red camera are as wide as DISP (1e-4 dex reading) at every
    wavelength; the native-pixel reading would make the ratio grow by 28 % from 6300 to 8400 A."""
    spec = read_specfile(sorted(realsky_dir.glob("spec-*.fits"))[0])
    e = next(x for x in spec.exposures if x.camera[0] == "r")
    wave, ratios = e.wave, []
    for w0 in (6302.05, 7277.4, 8401.0):
        j = np.flatnonzero(np.abs(wave - w0) < 8)
        j = j[np.argmax(e.sky[j])]
        sel = np.abs(wave - wave[j]) < 6
        p, _ = curve_fit(_gauss, wave[sel], e.sky[sel], p0=[e.sky[j], wave[j], 1.3, 1.0, 0.0])
        box = np.diff(wave)[j] ** 2 / 12.0
        ratios.append(np.sqrt(p[2] ** 2 - box) / e.disp[j])
    assert all(0.95 < r < 1.2 for r in ratios), ratios
    assert max(ratios) / min(ratios) < 1.1, ratios


def test_real_files_through_lines_mean_decompose(realsky_dir, tmp_path):
    spec = tmp_path / "spec"
    spec.mkdir()
    src = sorted(realsky_dir.glob("spec-*.fits"))[-1]
    shutil.copy(src, spec / src.name)
    out = tmp_path / "out"
    assert main(["extract-spec", str(spec), str(out)]) == 0
    nexp = len(read_specfile(src).exposures)
    assert len(open_dataset(out).meta) == nexp
    assert main(["lines", str(out)]) == 0
    assert main(["mean", str(out), "--min-fibers", "1"]) == 0
    assert main(["decompose", str(out)]) == 0
    dec = Table.read(next((out / "decompose").glob("*/decomp-*.fits")), hdu="DECOMPMETA")
    assert len(dec) == nexp
    assert np.all(np.asarray(dec["NFOUND"]) > 0) and np.all(np.isfinite(dec["RCHI2"]))
    red = np.char.startswith(np.asarray(dec["CAMERA"]).astype(str), "r")
    assert red.any() and np.all(np.asarray(dec["NFOUND"])[red] > 50)   # the OH forest


def test_the_objects_combine_rejections_do_not_mask_the_sky():
    """COMBINEREJ (the object's coadd rejected the pixel) leaves a spec file's sky usable;
    FULLREJECT and ivar 0 mask it."""
    from skymodelling.stages.specfiles import SPEC_IGNORED_BITS, exposure_native

    assert "COMBINEREJ" in Config().extract.mask_bits and SPEC_IGNORED_BITS == ("COMBINEREJ",)
    n = 50
    mask = np.zeros(n, np.int32)
    mask[10] = sppixmask.bitmask(["COMBINEREJ", "BRIGHTSKY"])
    mask[20] = sppixmask.bitmask(["FULLREJECT"])
    ivar = np.ones(n)
    ivar[30] = 0.0
    e = SpecExposure("R2-1", "r2", 1, fits.Header(), 3.8 + 1e-4 * np.arange(n),
                     np.full(n, 2.0), ivar, mask, np.ones(n), np.ones(n))
    got = exposure_native(e, bad_bits=BAD)             # every bit it is given masks
    assert got["IVAR"][10] == 0 and got["IVAR"][20] == 0 and got["IVAR"][30] == 0
    row = specfile_rows_of(e)                          # extract-spec: not COMBINEREJ
    assert row["IVAR"][10] > 0 and row["IVAR"][20] == 0 and row["IVAR"][30] == 0


def specfile_rows_of(e):
    """The native row that extract-spec writes for one exposure (its default settings)."""
    from skymodelling.stages.specfiles import specfile_rows

    class _Spec:
        header = fits.Header()
        exposures = [e]
        spall = {}
        fiberid = 733
        plate, mjd = 4000, 56000
    return specfile_rows(_Spec(), Config())["r2"][1][0]
