"""describe_file / format_description on each product, plus plugmap and fitsutil helpers."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling.errors import BossFileError
from skymodelling.io.fitsutil import header_float, header_int, native
from skymodelling.io.frames import write_spcframe, write_spframe
from skymodelling.io.inspect import describe_file, format_description
from skymodelling.io.platelist import write_platelist
from skymodelling.io.plugmap import (
    PLUGMAP_COLUMNS,
    empty_plugmap,
    is_sky,
    plugmap_hdu,
    read_plugmap,
)
from skymodelling.io.spfluxcalib import write_spfluxcalib
from skymodelling.io.traceset import TraceSet

NFIB, NPIX = 500, 100


def _frame_args():
    pm = empty_plugmap(NFIB)
    pm["FIBERID"] = np.arange(1, NFIB + 1)
    pm["OBJTYPE"] = np.where(np.arange(NFIB) < 40, "SKY", "QSO")
    coeff = np.zeros((NFIB, 2))
    coeff[:, 0], coeff[:, 1] = 3.7, 0.01
    header = {"PLATEID": 4055, "MJD": 55359, "EXPOSURE": 116475, "CAMERAS": "r1",
              "EXPTIME": 900.0}
    img = np.ones((NFIB, NPIX), np.float32)
    ts = TraceSet("legendre", 0, NPIX - 1, coeff)
    return header, img, pm, ts


def test_describe_frames(tmp_path):
    header, img, pm, ts = _frame_args()
    spf = tmp_path / "spFrame-r1-00116475.fits.gz"
    write_spframe(spf, header, img, img, img.astype(np.int32), ts, ts, pm, img)
    info = describe_file(spf)
    assert info["product"] == "spFrame" and info["camera"] == "r1"
    assert (info["exposure"], info["plate"], info["mjd"]) == (116475, 4055, 55359)
    assert (info["n_fibers"], info["n_sky_fibers"], info["exptime"]) == (500, 40, 900.0)
    assert info["wavelength_range_A"] == pytest.approx([10 ** 3.69, 10 ** 3.71])
    assert "40 sky" in format_description(info)

    ivar = img.copy()
    ivar[:, :10] = 0
    loglam = ts.evaluate(NPIX)
    spc = tmp_path / "spCFrame-r1-00116475.fits"
    write_spcframe(spc, header, img, ivar, img, loglam, img, pm, img)
    info = describe_file(spc)
    assert info["product"] == "spCFrame"
    assert info["wavelength_range_A"][0] == pytest.approx(10 ** loglam[0, 10])
    # content wins when the name misleads, and unnamed files are recognised too
    odd = tmp_path / "something.fits"
    odd.write_bytes(spc.read_bytes())
    assert describe_file(odd)["product"] == "spCFrame"


def test_describe_other_products(tmp_path):
    calib = tmp_path / "spFluxcalib-b2-00116475.fits.gz"
    write_spfluxcalib(calib, np.ones((NFIB, NPIX)), {"WAVEMIN": 3554.0, "WAVEMAX": 6302.0})
    info = describe_file(calib)
    assert (info["camera"], info["exposure"], info["shape"]) == ("b2", 116475, [500, 100])
    assert (info["WAVEMIN"], info["WAVEMAX"]) == (3554.0, 6302.0)
    assert "3554-6302" in format_description(info)

    plist = tmp_path / "platelist.fits"
    write_platelist(plist, Table({"PLATE": [1, 2, 3], "MJD": [55100, 55200, 55300],
                                  "RUN2D": ["v5_7_0"] * 3,
                                  "PLATEQUALITY": ["good", "bad", "good"]}))
    info = describe_file(plist)
    assert (info["n_plates"], info["n_bad"], info["mjd_range"]) == (3, 1, [55100, 55300])
    assert info["run2d"] == ["v5_7_0"]
    assert "1 bad" in format_description(info)

    spec = importlib.util.find_spec("pydl")
    if spec is not None:
        real = Path(next(iter(spec.submodule_search_locations)), "pydlspec2d", "tests", "t",
                    "spPlate-4055-55359-0020.fits")
        if real.is_file():
            info = describe_file(real)
            assert info["product"] == "spPlate" and len(info["exposures"]) == 24
            assert info["exposures"][0] == {"camera": "b1", "expid": 116475,
                                            "flat": 116481, "arc": 116482}
            assert "NEXP 24" in format_description(info)


def test_describe_errors(tmp_path):
    with pytest.raises(BossFileError, match="no such file"):
        describe_file(tmp_path / "spPlate-4055-55359.fits")
    other = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(other)
    with pytest.raises(BossFileError, match="not a recognised BOSS product.*image.fits"):
        describe_file(other)


def test_plugmap(tmp_path):
    pm = empty_plugmap(4)
    assert pm.colnames == [c[0] for c in PLUGMAP_COLUMNS]
    assert pm["BOSS_TARGET1"].dtype == np.int64 and pm["CALIBFLUX"].shape == (4, 5)
    pm["OBJTYPE"] = ["SKY", "GALAXY", "SKY", "NA"]
    pm["FIBERID"] = [1, 2, 3, 4]
    hdu = plugmap_hdu(pm)
    assert hdu.header["EXTNAME"] == "PLUGMAP"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "pm.fits")
    with fits.open(tmp_path / "pm.fits") as hdul:
        back = read_plugmap(hdul[1])
        sub = read_plugmap(hdul[1], rows=[2, 3])
        assert hdul[1].data["RA"].dtype == np.dtype(">f8")
    assert back["OBJTYPE"].tolist() == ["SKY", "GALAXY", "SKY", "NA"]
    assert back["RA"].dtype.isnative and back["OBJID"].shape == (4, 5)
    assert is_sky(back).tolist() == [True, False, True, False]
    assert sub["FIBERID"].tolist() == [3, 4]
    del pm["FIBERID"]
    with pytest.raises(BossFileError, match="FIBERID"):
        read_plugmap(plugmap_hdu(pm), path="x.fits")


def test_fitsutil_helpers():
    h = fits.Header({"SEEING50": 0.0, "AIRMASS": 1.25, "EXPOSURE": 116475, "TXT": "abc"})
    assert math.isnan(header_float(h, "SEEING50")) and math.isnan(header_float(h, "NOPE"))
    assert header_float(h, "SEEING50", missing=()) == 0.0
    assert header_float(h, "AIRMASS") == 1.25 and math.isnan(header_float(h, "TXT"))
    assert header_int(h, "EXPOSURE") == 116475 and header_int(h, "NOPE") == -1
    a = native(np.arange(4, dtype=">i4"))
    assert a.dtype == np.int32 and a.dtype.isnative and a.tolist() == [0, 1, 2, 3]
    rec = native(np.zeros(2, dtype=[("A", ">f8"), ("B", "S3")]))
    assert rec.dtype["A"].isnative
