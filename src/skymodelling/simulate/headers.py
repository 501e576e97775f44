"""FITS header keywords of simulated frames and coadds, as BOSS writes them.

See the data-model notes, section 2.3 (frames) and section 5 (spPlate).
Weather keywords exist only from MJD ~55605 on; guider seeing is 0.0
(unavailable) on some early plates.
"""
from __future__ import annotations

import numpy as np

from .observations import FIRST_WEATHER_MJD, Exposure, PlateVisit

RUN2D = "v5_7_0"
CARD_ORDER_CAMERAS = ("b1", "b2", "r1", "r2")


def _date_obs(tai_seconds: float) -> str:
    from astropy.time import Time

    t = Time(tai_seconds / 86400.0, format="mjd", scale="tai")
    return t.isot[:19]


def weather(mjd: int, month: int, rng: np.random.Generator) -> dict:
    """APO weather keywords (units as the BOSS ICC writes them), or {} before MJD 55605."""
    if mjd < FIRST_WEATHER_MJD:
        return {}
    season = np.cos(2 * np.pi * (month - 7) / 12.0)  # +1 in July
    temp = 6.0 + 9.0 * season + rng.normal(0.0, 2.5)
    dew = temp - rng.uniform(4.0, 20.0)
    humidity = float(np.clip(100.0 * np.exp(17.6 * dew / (243 + dew) - 17.6 * temp / (243 + temp)),
                             3.0, 99.0))
    winds = abs(rng.normal(8.0, 5.0))
    windd = rng.uniform(0.0, 360.0)
    return {
        "AIRTEMP": round(temp, 2), "DEWPOINT": round(dew, 2), "HUMIDITY": round(humidity, 1),
        "PRESSURE": round(21.6 + rng.normal(0.0, 0.08), 3),
        "WINDD": round(windd, 1), "WINDS": round(winds, 1),
        "GUSTD": round((windd + rng.normal(0, 15)) % 360.0, 1),
        "GUSTS": round(winds * rng.uniform(1.2, 1.8), 1),
        "DUSTA": float(rng.integers(200, 8000)), "DUSTB": float(rng.integers(10, 800)),
        "WINDD25M": round((windd + rng.normal(0, 20)) % 360.0, 1),
        "WINDS25M": round(winds * rng.uniform(0.5, 0.9), 1),
    }


def exposure_header(visit: PlateVisit, exp: Exposure, *, ra: float, dec: float, alt: float,
                    az: float, airmass: float, helio_rv: float, weather_cards: dict,
                    seeing_available: bool, redden) -> dict:
    """Primary-header keywords shared by the four cameras of one exposure."""
    s50 = exp.seeing50 if seeing_available else 0.0
    cards = {
        "TELESCOP": "SDSS 2.5-M", "FLAVOR": "science", "BOSSVER": "2",
        "MJD": exp.mjd, "MJDLIST": str(exp.mjd),
        "TAI-BEG": round(exp.tai_beg, 2), "DATE-OBS": _date_obs(exp.tai_beg),
        "OBJSYS": "ICRS", "RA": round(ra, 6), "DEC": round(dec, 6),
        "RADEG": round(ra, 4), "DECDEG": round(dec, 4),
        "AZ": round(az, 5), "ALT": round(alt, 4), "AIRMASS": round(airmass, 5),
        "NAME": f"{visit.plate}-{visit.mjd}-01", "PLATEID": visit.plate,
        "TILEID": 10000 + visit.plate % 3000, "CARTID": 1 + visit.plate % 16, "MAPID": 1,
        "EXPOSURE": exp.expid, "EXPTIME": round(exp.exptime, 2),
        "NGUIDE": 33.0 if seeing_available else 0.0,
        "SEEING20": round(0.93 * s50, 5), "SEEING50": round(s50, 5),
        "SEEING80": round(1.08 * s50, 5),
        "RMSOFF20": round(0.011 * (s50 > 0), 6), "RMSOFF50": round(0.016 * (s50 > 0), 6),
        "RMSOFF80": round(0.022 * (s50 > 0), 6),
        "QUALITY": "excellent", "RUN2D": RUN2D, "VERS2D": RUN2D, "VERSCOMB": RUN2D,
        "TAI-END": round(exp.tai_end, 2),
        "PLUGFILE": f"plPlugMapM-{visit.plate}-{visit.mjd}-01.par",
        "HELIO_RV": float(helio_rv), "VACUUM": True, "SFLATTEN": True,
    }
    for i, value in enumerate(redden, start=1):
        cards[f"REDDEN{i:02d}"] = round(float(value), 4)
    cards.update(weather_cards)
    return cards


def camera_cards(camera: str, exp: Exposure) -> dict:
    """Keywords that differ between the cameras of one exposure."""
    return {
        "CAMERAS": f"{camera:<4s}",
        "FLATFILE": f"sdR-{camera}-{exp.flat:08d}.fit",
        "ARCFILE": f"sdR-{camera}-{exp.arc:08d}.fit",
    }


#: Per-frame cards that spcombine drops from the spPlate header.
_PER_FRAME = ("EXPOSURE", "CAMERAS", "QUALITY", "FLATFILE", "ARCFILE", "RDNOISE1", "RDNOISE2",
              "RDNOISE3", "GUSTD", "WINDD25M", "WINDS25M")
_AVERAGED = ("AZ", "ALT", "AIRTEMP", "DEWPOINT", "HUMIDITY", "PRESSURE", "WINDD", "WINDS",
             "GUSTS", "DUSTA", "DUSTB", "HELIO_RV", "SEEING20", "SEEING50", "SEEING80",
             "RMSOFF20", "RMSOFF50", "RMSOFF80", "AIRMASS")


def spplate_header(frame_headers: list[dict], visit: PlateVisit, coeff0: float,
                   npix: int) -> dict:
    """spPlate primary header from the headers of the frames it combines.

    ``frame_headers`` holds one dict per combined camera-frame, in EXPIDnn
    order (cameras b1, b2, r1, r2, each by exposure).
    """
    first = dict(frame_headers[0])
    cards = {k: v for k, v in first.items() if k not in _PER_FRAME}
    for key in _AVERAGED:
        values = [h[key] for h in frame_headers if key in h]
        if values:
            cards[key] = round(float(np.mean(values)), 6)
    cards["TAI-BEG"] = min(h["TAI-BEG"] for h in frame_headers)
    cards["TAI-END"] = max(h["TAI-END"] for h in frame_headers)
    cards["NEXP"] = len(frame_headers)
    listed = visit.listed
    best = max(listed, key=lambda e: 1.0 / e.seeing50)
    cards["BESTEXP"] = best.expid
    n = 0
    expt = {}
    for cam in CARD_ORDER_CAMERAS:
        cam_headers = [h for h in frame_headers if h["CAMERAS"].strip() == cam]
        for h in cam_headers:
            n += 1
            cards[f"EXPID{n:02d}"] = (f"{cam}-{h['EXPOSURE']:08d}-{int(h['FLATFILE'][7:15]):08d}"
                                      f"-{int(h['ARCFILE'][7:15]):08d}")
        cards[f"NEXP_{cam.upper()}"] = len(cam_headers)
        expt[cam] = round(sum(h["EXPTIME"] for h in cam_headers), 2)
        cards[f"EXPT_{cam.upper()}"] = expt[cam]
    cards["EXPTIME"] = min(expt.values())
    cards.update({"COEFF0": coeff0, "COEFF1": 1e-4, "CRVAL1": coeff0, "CD1_1": 1e-4,
                  "CRPIX1": 1, "CTYPE1": "LINEAR", "DC-FLAG": 1, "NWORDER": 2,
                  "WFITTYPE": "LOG-LINEAR", "BUNIT": "1E-17 erg/cm^2/s/Ang"})
    return cards
