"""spFrame / spCFrame / spFluxcalib writers and readers on small synthetic files."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from skymodelling.errors import BossFileError
from skymodelling.io.frames import (
    CALIBRATED_BUNIT,
    SPCFRAME_EXTNAMES,
    read_frame,
    read_spcframe,
    read_spframe,
    write_spcframe,
    write_spframe,
)
from skymodelling.io.plugmap import empty_plugmap, is_sky
from skymodelling.io.spfluxcalib import read_spfluxcalib, write_spfluxcalib
from skymodelling.io.traceset import TraceSet

NFIB, NPIX = 500, 200


def _plugmap(offset=0):
    pm = empty_plugmap(NFIB)
    pm["FIBERID"] = np.arange(1, NFIB + 1) + offset
    pm["OBJTYPE"] = np.where(np.arange(NFIB) % 10 == 3, "SKY", "GALAXY")
    pm["RA"] = np.linspace(10, 11, NFIB)
    return pm


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    coeff = np.zeros((NFIB, 4))
    coeff[:, 0] = 3.75 + 1e-4 * rng.standard_normal(NFIB)
    coeff[:, 1] = 0.05
    coeff[:, 2] = 1e-3
    wave = TraceSet("legendre", 0.0, NPIX - 1.0, coeff, 99.5, 101.5, np.float32(1 / 3))
    disp = TraceSet("legendre", 0.0, NPIX - 1.0, np.c_[np.full(NFIB, 1.08), np.full(NFIB, .01)])
    header = fits.Header()
    header["PLATEID"] = 4055
    header["MJD"] = 55359
    header["EXPOSURE"] = 116475
    header["CAMERAS"] = "b1  "
    header["EXPTIME"] = 900.8
    header["HELIO_RV"] = 12.5
    return dict(
        header=header,
        flux=rng.standard_normal((NFIB, NPIX)).astype(np.float32),
        ivar=rng.random((NFIB, NPIX)).astype(np.float32),
        mask=rng.integers(0, 1 << 28, (NFIB, NPIX)).astype(np.int32),
        wave_traceset=wave, disp_traceset=disp, plugmap=_plugmap(),
        sky=rng.random((NFIB, NPIX)).astype(np.float32),
    )


def _assert_native(frame):
    for name in ("flux", "ivar", "mask", "loglam", "dispersion", "sky", "rows", "fiberid"):
        arr = getattr(frame, name)
        assert arr.dtype.isnative, name
    for name in frame.plugmap.colnames:
        assert frame.plugmap[name].dtype.isnative, name


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits"])
def test_spframe_round_trip(tmp_path, suffix):
    inp = _inputs()
    path = tmp_path / f"spFrame-b1-00116475{suffix}"
    write_spframe(path, **inp)
    with fits.open(path) as hdul:
        assert len(hdul) == 9
        assert all(h.name in ("", "PRIMARY") for h in hdul)  # spFrame: no EXTNAMEs
        assert isinstance(hdul[3], fits.BinTableHDU) and hdul[3].header["TDIM4"] == "(4, 500)"
        assert hdul[0].data.dtype == np.dtype(">f4") and hdul[2].data.dtype == np.dtype(">i4")
        np.testing.assert_array_equal(hdul[7].data, 0)
        np.testing.assert_array_equal(hdul[8].data, 1)
    frame = read_spframe(path)
    _assert_native(frame)
    assert frame.product == "spFrame"
    assert (frame.camera, frame.expid, frame.plate, frame.mjd) == ("b1", 116475, 4055, 55359)
    assert frame.exptime == pytest.approx(900.8)
    assert frame.flux.dtype == np.float32 and frame.mask.dtype == np.int32
    assert frame.loglam.dtype == np.float64 and frame.loglam.shape == (NFIB, NPIX)
    np.testing.assert_array_equal(frame.flux, inp["flux"])
    np.testing.assert_array_equal(frame.ivar, inp["ivar"])
    np.testing.assert_array_equal(frame.mask, inp["mask"])
    np.testing.assert_array_equal(frame.sky, inp["sky"])
    np.testing.assert_array_equal(frame.wave_traceset.coeff, inp["wave_traceset"].coeff)
    assert frame.wave_traceset.xjumpval == inp["wave_traceset"].xjumpval
    np.testing.assert_array_equal(frame.loglam, inp["wave_traceset"].evaluate(NPIX))
    np.testing.assert_array_equal(frame.dispersion, inp["disp_traceset"].evaluate(NPIX))
    np.testing.assert_array_equal(frame.fiberid, np.arange(1, NFIB + 1))
    assert list(frame.plugmap["OBJTYPE"][:4]) == ["GALAXY"] * 3 + ["SKY"]
    assert frame.plugmap["MAG"].shape == (NFIB, 5)


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits"])
def test_spframe_rows(tmp_path, suffix):
    inp = _inputs()
    path = tmp_path / f"spFrame-b1-00116475{suffix}"
    write_spframe(path, **inp)
    sky = is_sky(inp["plugmap"])
    rows = np.flatnonzero(sky)
    frame = read_spframe(path, rows, with_sky=False)
    assert frame.sky is None
    np.testing.assert_array_equal(frame.rows, rows)
    np.testing.assert_array_equal(frame.fiberid, rows + 1)
    np.testing.assert_array_equal(frame.flux, inp["flux"][rows])
    np.testing.assert_array_equal(frame.mask, inp["mask"][rows])
    np.testing.assert_array_equal(frame.loglam, inp["wave_traceset"].evaluate(NPIX)[rows])
    assert is_sky(frame.plugmap).all() and len(frame.plugmap) == len(rows)
    # a boolean mask and an unsorted index list work too
    np.testing.assert_array_equal(read_spframe(path, sky).flux, frame.flux)
    np.testing.assert_array_equal(read_spframe(path, [7, 2]).ivar, inp["ivar"][[7, 2]])
    empty = read_spframe(path, [])
    assert empty.flux.shape == empty.loglam.shape == (0, NPIX) and len(empty.plugmap) == 0
    with pytest.raises(IndexError):
        read_spframe(path, [NFIB])


def test_spcframe_round_trip(tmp_path):
    inp = _inputs()
    loglam = inp["wave_traceset"].evaluate(NPIX)
    disp = inp["disp_traceset"].evaluate(NPIX) * 0.8
    path = tmp_path / "spCFrame-b2-00116475.fits"
    inp["plugmap"] = _plugmap(offset=500)
    inp["header"]["CAMERAS"] = "b2"
    write_spcframe(path, inp["header"], inp["flux"], inp["ivar"], inp["mask"], loglam, disp,
                   inp["plugmap"], inp["sky"], x=np.full((NFIB, NPIX), 3.0))
    with fits.open(path) as hdul:
        assert tuple(h.name for h in hdul)[1:] == SPCFRAME_EXTNAMES[1:]
        assert hdul[0].header["BUNIT"] == CALIBRATED_BUNIT
        assert hdul[4].data.dtype == np.dtype(">f4")
    frame = read_spcframe(path, rows=np.arange(10, 20))
    _assert_native(frame)
    assert frame.product == "spCFrame" and frame.camera == "b2"
    assert frame.wave_traceset is None
    np.testing.assert_array_equal(frame.loglam, loglam[10:20])
    np.testing.assert_allclose(frame.dispersion, disp[10:20], rtol=1e-6)
    np.testing.assert_array_equal(frame.fiberid, np.arange(511, 521))
    assert read_frame(path).product == "spCFrame"


def test_read_frame_dispatch(tmp_path):
    path = tmp_path / "renamed.fits"
    write_spframe(path, **_inputs())
    assert read_frame(path, [0]).product == "spFrame"


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "spFrame-b1-00000001.fits.gz"
    with pytest.raises(BossFileError, match="no such file") as exc:
        read_spframe(missing)
    assert str(missing) in str(exc.value)

    good = tmp_path / "spFrame-b1-00116475.fits.gz"
    write_spframe(good, **_inputs())
    data = good.read_bytes()
    for frac in (0.05, 0.5, 0.97):
        bad = tmp_path / f"spFrame-b1-0011647{int(frac * 10)}.fits.gz"
        bad.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(BossFileError) as exc:
            read_spframe(bad)
        assert str(bad) in str(exc.value)

    raw = tmp_path / "spFrame-b1-00116476.fits"
    write_spframe(raw, **_inputs())
    data = raw.read_bytes()
    cut = tmp_path / "spFrame-b1-00116477.fits"
    cut.write_bytes(data[: len(data) - 2 * NFIB * NPIX * 4 - 50000])  # into HDU6 (sky)
    with pytest.raises(BossFileError, match=str(cut.name)):
        read_spframe(cut)
    assert read_spframe(cut, with_sky=False).sky is None  # HDUs 0-5 are intact

    junk = tmp_path / "spFrame-b1-00116478.fits"
    junk.write_bytes(b"not a fits file" * 100)
    with pytest.raises(BossFileError, match="not a readable FITS"):
        read_spframe(junk)


def test_structural_errors(tmp_path):
    inp = _inputs()
    full = tmp_path / "full.fits"
    write_spframe(full, **inp)
    with fits.open(full) as hdul:
        short = tmp_path / "short.fits"
        fits.HDUList([h.copy() for h in hdul[:5]]).writeto(short)
        wrong_rows = tmp_path / "rows.fits"
        hdus = [h.copy() for h in hdul]
        hdus[5] = fits.BinTableHDU(hdul[5].data[:499])
        fits.HDUList(hdus).writeto(wrong_rows)
        wrong_shape = tmp_path / "shape.fits"
        hdus = [h.copy() for h in hdul]
        hdus[1] = fits.ImageHDU(np.zeros((NFIB, NPIX + 1), np.float32))
        fits.HDUList(hdus).writeto(wrong_shape)
    with pytest.raises(BossFileError, match="HDU 5 .*missing.*5 HDU") as exc:
        read_spframe(short)
    assert "short.fits" in str(exc.value)
    with pytest.raises(BossFileError, match="plugmap"):
        read_spframe(wrong_rows)
    with pytest.raises(BossFileError, match="HDU 1"):
        read_spframe(wrong_shape)
    cframe = tmp_path / "cframe.fits"
    write_spcframe(cframe, inp["header"], inp["flux"], inp["ivar"], inp["mask"],
                   inp["wave_traceset"].evaluate(NPIX), np.ones((NFIB, NPIX)),
                   inp["plugmap"], inp["sky"])
    with pytest.raises(BossFileError, match="not a binary table"):
        read_spframe(cframe)
    with pytest.raises(ValueError, match="shape"):
        write_spframe(tmp_path / "x.fits", **{**inp, "ivar": inp["ivar"][:, :10]})


def test_spfluxcalib_round_trip(tmp_path):
    calib = np.random.default_rng(3).random((NFIB, NPIX)).astype(np.float32)
    header = {"WAVEMIN": 3554.2, "WAVEMAX": 6302.1, "CAMERAS": "b1", "EXPOSURE": 116475}
    path = tmp_path / "spFluxcalib-b1-00116475.fits.gz"
    write_spfluxcalib(path, calib, header)
    got, hdr = read_spfluxcalib(path)
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, calib)
    assert hdr["WAVEMIN"] == 3554.2 and hdr["WAVEMAX"] == 6302.1
    sub, _ = read_spfluxcalib(path, rows=[5, 9])
    np.testing.assert_array_equal(sub, calib[[5, 9]])
    with pytest.raises(BossFileError, match="no such file"):
        read_spfluxcalib(tmp_path / "nothing.fits.gz")
