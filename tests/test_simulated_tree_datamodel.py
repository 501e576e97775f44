"""An independent check of a simulated tree, written from the BOSS data-model notes.

Uses only astropy.io.fits and numpy, not the package's readers, so that a
reader and writer sharing the same misunderstanding cannot both pass.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import legendre

CAMERAS = ("b1", "b2", "r1", "r2")
NPIX = {"b": 4112, "r": 4128}
FRAME_KEYS = ("PLATEID", "MJD", "EXPOSURE", "CAMERAS", "FLAVOR", "EXPTIME", "TAI-BEG",
              "TAI-END", "DATE-OBS", "RA", "DEC", "ALT", "AZ", "AIRMASS", "SEEING20", "SEEING50",
              "SEEING80", "RMSOFF20", "RMSOFF50", "RMSOFF80", "REDDEN01", "REDDEN05", "QUALITY",
              "HELIO_RV", "VACUUM", "SFLATTEN", "FLATFILE", "ARCFILE", "PLUGFILE", "RDNOISE0")
WEATHER_KEYS = ("AIRTEMP", "DEWPOINT", "HUMIDITY", "PRESSURE", "WINDD", "WINDS", "GUSTD",
                "GUSTS", "DUSTA", "DUSTB")


def _plate_dirs(raw):
    return sorted(p for p in (raw / "v5_7_0").iterdir() if p.is_dir())


def _expids(header):
    cards = [header[k] for k in header if re.fullmatch(r"EXPID\d\d", k)]
    return [c.split("-") for c in cards]


def _traceset_loglam(tab, npix):
    """idlutils traceset2xy, from the data-model notes section 2.1."""
    coeff = tab["COEFF"][0]
    x = np.arange(npix, dtype=float)
    names = tab.columns.names
    if "XJUMPLO" in names:
        lo, hi, val = tab["XJUMPLO"][0], tab["XJUMPHI"][0], tab["XJUMPVAL"][0]
        if hi > lo and val != 0:
            x = x + np.clip((x - lo) / (hi - lo), 0, 1) * val
    xmin, xmax = tab["XMIN"][0], tab["XMAX"][0]
    t = 2 * (x - 0.5 * (xmin + xmax)) / (xmax - xmin)
    return np.array([legendre.legval(t, c) for c in coeff]), (xmin, xmax, names)


def test_layout_and_platelist(sim_tree):
    assert (sim_tree / "platelist.fits").is_file()
    with fits.open(sim_tree / "platelist.fits") as hdul:
        pl = hdul[1].data
        quality = np.char.strip(pl["PLATEQUALITY"].astype(str))
        assert "bad" in quality and "good" in quality
        for col in ("PLATE", "MJD", "RUN2D", "RACEN", "DECCEN", "TAI_BEG", "TAI_END",
                    "NEXP", "NEXP_B1", "N_SKY", "PLATEQUALITY"):
            assert col in pl.columns.names
    plates = _plate_dirs(sim_tree)
    assert len(plates) == 2
    for folder in plates:
        assert re.fullmatch(r"\d{4}", folder.name)
        spplates = list(folder.glob("spPlate-*.fits"))
        assert len(spplates) == 1
        assert re.fullmatch(rf"spPlate-{folder.name}-\d{{5}}\.fits", spplates[0].name)


@pytest.mark.slow
@pytest.mark.parametrize("plate_index", [0, 1])
def test_spplate_and_frames(sim_tree, plate_index):
    folder = _plate_dirs(sim_tree)[plate_index]
    spplate = next(folder.glob("spPlate-*.fits"))
    with fits.open(spplate) as hdul:
        h = hdul[0].header
        assert [x.name for x in hdul[1:7]] == ["IVAR", "ANDMASK", "ORMASK", "WAVEDISP",
                                               "PLUGMAP", "SKY"]
        assert hdul[0].data.shape == (1000, h["NAXIS1"])
        assert hdul[0].data.dtype.str == ">f4"
        expids = _expids(h)
        assert len(expids) == h["NEXP"] == 3 * 4
        for cam in CAMERAS:
            assert h[f"NEXP_{cam.upper()}"] == 3
        plug = hdul[5].data
        assert np.array_equal(plug["FIBERID"], np.arange(1, 1001))
        n_sky = int((np.char.strip(plug["OBJTYPE"].astype(str)) == "SKY").sum())
        assert 80 <= n_sky <= 126
        mjd = h["MJD"]
    listed = {int(e[1]) for e in expids}
    all_frames = {int(m.group(1)) for p in folder.glob("spFrame-b1-*.fits.gz")
                  if (m := re.search(r"-(\d{8})\.fits\.gz$", p.name))}
    assert listed < all_frames, "some spFrames must be missing from the spPlate"
    for cam, expid, flat, arc in expids:
        expid = int(expid)
        spframe = folder / f"spFrame-{cam}-{expid:08d}.fits.gz"
        spcframe = folder / f"spCFrame-{cam}-{expid:08d}.fits"
        calib = folder / f"spFluxcalib-{cam}-{expid:08d}.fits.gz"
        for f in (spframe, spcframe, calib):
            assert f.is_file(), f
        _check_frame_pair(spframe, spcframe, calib, cam, expid, mjd, int(flat), int(arc))
    for expid in all_frames - listed:
        assert not (folder / f"spCFrame-b1-{expid:08d}.fits").exists()
        assert (folder / f"spFluxcalib-b1-{expid:08d}.fits.gz").exists()


def _check_frame_pair(spframe, spcframe, calib, cam, expid, mjd, flat, arc):
    npix = NPIX[cam[0]]
    with fits.open(spframe) as fr, fits.open(spcframe) as cf, fits.open(calib) as fc:
        assert len(fr) == 9 and len(cf) == 9
        h = fr[0].header
        for key in FRAME_KEYS:
            assert key in h, key
        assert h["CAMERAS"].strip() == cam and h["EXPOSURE"] == expid and h["MJD"] == mjd
        assert h["FLATFILE"] == f"sdR-{cam}-{flat:08d}.fit"
        assert h["ARCFILE"] == f"sdR-{cam}-{arc:08d}.fit"
        weather = [k in h for k in WEATHER_KEYS]
        assert all(weather) if mjd >= 55614 else not any(weather)
        assert abs(h["TAI-END"] - h["TAI-BEG"] - h["EXPTIME"]) < 0.1
        for i in (0, 1, 6, 7, 8):
            assert fr[i].data.shape == (500, npix) and fr[i].data.dtype.str == ">f4"
        assert fr[2].data.dtype.str == ">i4"
        assert isinstance(fr[3], fits.BinTableHDU) and len(fr[3].data) == 1
        assert isinstance(fr[4], fits.BinTableHDU)
        assert all(not x.header.get("EXTNAME") for x in fr[1:])
        assert [x.name for x in cf[1:]] == ["IVAR", "MASK", "WAVELENGTH", "WAVEDISP", "PLUGMAP",
                                           "SKY", "X", "SUPERFLAT"]
        assert cf[0].header["BUNIT"] == "1E-17 erg/cm^2/s/Ang"
        # blue spCFrames are padded to 4128 pixels with zero flux and ivar
        assert cf[0].data.shape == (500, 4128)
        if cam[0] == "b":
            assert not cf[0].data[:, npix:].any() and not cf[1].data[:, npix:].any()
        plug = fr[5].data
        first = 1 if cam[1] == "1" else 501
        assert np.array_equal(plug["FIBERID"], np.arange(first, first + 500))
        # wavelength traceset equals the spCFrame loglam image
        loglam, (xmin, xmax, names) = _traceset_loglam(fr[3].data, npix)
        assert ("XJUMPLO" in names) == (cam[0] == "r")
        assert np.allclose(loglam, cf[3].data[:, :npix], atol=1e-9, rtol=0)
        assert np.all(np.diff(loglam, axis=1) > 0)
        wave = 10**loglam
        # the real pixel scale (docs/simulator.md): blue ~2840-7250 A, red ~5100-11000 A
        lo, hi = (2700, 7400) if cam[0] == "b" else (4950, 11300)
        assert lo < wave.min() and wave.max() < hi
        # spCFrame = spFrame x R / C (x a flux correction near 1)
        x = np.arange(npix, dtype=float)
        hi_ll, _ = _traceset_loglam_at(fr[3].data, x + 0.5)
        lo_ll, _ = _traceset_loglam_at(fr[3].data, x - 0.5)
        r_factor = 1e-4 / np.abs(hi_ll - lo_ll)
        c = fc[0].data.astype(float)
        assert c.shape == (500, npix)
        good = (c > 0.05 * c.mean(axis=1, keepdims=True)) & (fr[6].data != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = fr[6].data * r_factor / c
        ratio = cf[6].data[:, :npix][good] / expected[good]
        assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
        assert np.percentile(np.abs(ratio - 1), 99) < 0.05
        wmin, wmax = fc[0].header["WAVEMIN"], fc[0].header["WAVEMAX"]
        # (WAVEMIN/WAVEMAX bound the calibration to within the heliocentric shift, <1.5 A)
        assert np.all(c[(wave < wmin - 1.5) | (wave > wmax + 1.5)] == 0)


def _traceset_loglam_at(tab, x):
    coeff = tab["COEFF"][0]
    names = tab.columns.names
    x = np.asarray(x, dtype=float)
    if "XJUMPLO" in names:
        lo, hi, val = tab["XJUMPLO"][0], tab["XJUMPHI"][0], tab["XJUMPVAL"][0]
        x = x + np.clip((x - lo) / (hi - lo), 0, 1) * val
    xmin, xmax = tab["XMIN"][0], tab["XMAX"][0]
    t = 2 * (x - 0.5 * (xmin + xmax)) / (xmax - xmin)
    return np.array([legendre.legval(t, c) for c in coeff]), None


def test_headers_agree_with_time_and_pointing(sim_tree):
    """ALT/AZ/AIRMASS agree with RA/DEC and the time; the Sun is below -12 degrees."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_sun
    from astropy.time import Time

    apo = EarthLocation.from_geodetic(-105.820417 * u.deg, 32.780361 * u.deg, 2788 * u.m)
    for folder in _plate_dirs(sim_tree):
        for f in sorted(folder.glob("spFrame-r1-*.fits.gz")):
            h = fits.getheader(f)
            t_beg = Time(h["TAI-BEG"] / 86400.0, format="mjd", scale="tai")
            t_mid = Time((h["TAI-BEG"] + h["TAI-END"]) / 172800.0, format="mjd", scale="tai")
            frame = AltAz(obstime=t_beg, location=apo)
            altaz = SkyCoord(h["RA"] * u.deg, h["DEC"] * u.deg).transform_to(frame)
            assert altaz.alt.deg == pytest.approx(h["ALT"], abs=0.05)
            dz = abs(((altaz.az.deg - h["AZ"]) + 180) % 360 - 180)
            assert dz < 0.2
            alt_mid = SkyCoord(h["RA"] * u.deg, h["DEC"] * u.deg).transform_to(
                AltAz(obstime=t_mid, location=apo)).alt
            assert h["AIRMASS"] == pytest.approx(1 / np.sin(alt_mid.rad), rel=0.01)
            sun = get_sun(t_mid).transform_to(AltAz(obstime=t_mid, location=apo))
            assert sun.alt.deg < -12
            assert t_beg.isot[:19] == h["DATE-OBS"]
            # SDSS MJD labels the night: TAI MJD + 0.3, rounded down
            assert int(t_beg.mjd + 0.3) == h["MJD"]
