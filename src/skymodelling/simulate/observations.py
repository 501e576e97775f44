"""Schedule simulated BOSS observations at Apache Point at real night time.

Each plate is observed on one night (its SDSS MJD) in a sequence of ~900 s
exposures while the Sun is below -12 degrees and the field is above 40
degrees altitude, so the header ALT, AZ and AIRMASS agree with RA, DEC and
the time.  One extra exposure per plate is taken but rejected from the coadd
(it has an spFrame and spFluxcalib, but no spCFrame and no EXPIDnn card), as
happens in real reductions.

The first plate is always plate 3985 observed on MJD 55320 with exposure
114439: the good-seeing exposure the original analysis used as its fixed
reference calibration (util/make_calib_file.py).  Simulating it means the
extract stage's default configuration works on simulated trees as on DR12.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conditions import ephemeris
from ..conditions.site import SECONDS_PER_DAY, offline_astropy

#: The original analysis's reference calibration exposure (plate 3985, MJD 55320).
REFERENCE_PLATE = 3985
REFERENCE_MJD = 55320
REFERENCE_EXPID = 114439
REFERENCE_RA, REFERENCE_DEC = 203.83751, 33.298225
REFERENCE_SEEING = 1.0
#: Weather keywords appear in BOSS headers from about this MJD on.
FIRST_WEATHER_MJD = 55605
#: Guider seeing is unavailable (0.0) on some plates up to this MJD.
LAST_NO_SEEING_MJD = 55247
#: Approximate number of exposure ids used per night (flats, arcs, science...).
EXPIDS_PER_NIGHT = 52
SUN_LIMIT_DEG = -12.0
MIN_ALT_DEG = 40.0


@dataclass
class Exposure:
    """One simulated science exposure (all four cameras)."""

    plate: int
    mjd: int
    expid: int
    flat: int
    arc: int
    tai_beg: float
    exptime: float
    listed: bool                # in the spPlate EXPIDnn cards (has spCFrames)
    seeing50: float             # arcsec, FWHM
    reference: bool = False     # the fixed-calibration reference exposure
    night_factor: float = 1.0   # airglow night-to-night and within-night variation
    conditions: dict = field(default_factory=dict)

    @property
    def tai_end(self) -> float:
        return self.tai_beg + self.exptime

    @property
    def tai_mid(self) -> float:
        return self.tai_beg + 0.5 * self.exptime


@dataclass
class PlateVisit:
    """A plate observed on one night."""

    plate: int
    mjd: int
    ra: float
    dec: float
    exposures: list[Exposure]
    quality: str = "good"

    @property
    def listed(self) -> list[Exposure]:
        return [e for e in self.exposures if e.listed]


def sdss_mjd(tai_seconds) -> np.ndarray:
    """SDSS night label: integer part of TAI MJD + 0.3 (constant through an APO night)."""
    return np.floor(np.asarray(tai_seconds) / SECONDS_PER_DAY + 0.3).astype(int)


def _random_field(rng) -> tuple[float, float]:
    """A field centre in the BOSS footprint (north or south galactic cap)."""
    if rng.uniform() < 0.75:
        return float(rng.uniform(115.0, 255.0)), float(rng.uniform(-2.0, 60.0))
    return float(rng.uniform(-40.0, 40.0) % 360.0), float(rng.uniform(-6.0, 32.0))


def _candidate_night(ra: float, rng, mjd_range) -> int:
    """An MJD in ``mjd_range`` when the field is up around midnight (+/- 3 h)."""
    # The Sun's right ascension grows ~0.9856 deg/day from 0 at the March equinox
    # (MJD 55275 = 2010-03-20); the field transits at local midnight when RA = RA_sun + 180.
    target_sun_ra = (ra - 180.0 + rng.uniform(-45.0, 45.0)) % 360.0
    day_of_cycle = target_sun_ra / 0.98565
    lo, hi = mjd_range
    n_years = int(rng.integers(0, max(int((hi - lo) / 365.25), 1)))
    mjd = int(55275 + day_of_cycle + 365.25 * n_years)
    while mjd > hi:
        mjd -= 365
    while mjd < lo:
        mjd += 365
    return mjd


def _observing_window(ra, dec, mjd: int, duration_s: float, rng) -> float | None:
    """A random start (TAI s) on SDSS night ``mjd`` when a sequence of ``duration_s`` fits.

    The Sun must stay below -12 degrees and the field above 40 degrees for
    the whole sequence.  Returns None when the night has no such window.
    """
    step = 300.0
    # SDSS night mjd covers TAI MJD [mjd - 0.3, mjd + 0.7); APO nights lie in [mjd, mjd+0.55].
    grid = (mjd + np.arange(0.0, 0.55, step / SECONDS_PER_DAY)) * SECONDS_PER_DAY
    time = _tai_time(grid)
    sun_alt = ephemeris.sun_moon_ephemeris(time)["SUN_ALT"]
    alt, _ = ephemeris.target_altaz(np.full(grid.size, ra), np.full(grid.size, dec), time)
    good = (sun_alt < SUN_LIMIT_DEG) & (alt > MIN_ALT_DEG)
    n_need = int(np.ceil(duration_s / step)) + 1
    # start indices whose following n_need grid points are all good
    run = np.convolve(good.astype(int), np.ones(n_need, dtype=int), mode="valid")
    starts = np.flatnonzero(run == n_need)
    if starts.size == 0:
        return None
    start = grid[int(rng.choice(starts))] + rng.uniform(0.0, step)
    return float(start)


def _tai_time(tai_seconds):
    from ..conditions.site import tai_seconds_to_time

    return tai_seconds_to_time(tai_seconds)


def plan_observations(n_plates: int, n_exposures: int, rng: np.random.Generator,
                      mjd_range=(55176, 56837), rejected: bool = True) -> list[PlateVisit]:
    """Plan ``n_plates`` plates of ``n_exposures`` listed exposures (plus one rejected,
    unless ``rejected`` is false).

    The first plate is the reference plate 3985 on MJD 55320 (no weather
    keywords yet); the second, when asked for, is observed after MJD 55605
    (with weather), so a small tree already contains both header vintages.
    """
    offline_astropy()
    visits: list[PlateVisit] = []
    used_plates = {REFERENCE_PLATE}
    used_mjds: set[int] = set()
    for index in range(n_plates):
        n_total = n_exposures + int(rejected)
        for _attempt in range(200):
            if index == 0:
                plate, ra, dec = REFERENCE_PLATE, REFERENCE_RA, REFERENCE_DEC
                night = REFERENCE_MJD
            else:
                plate = int(rng.integers(3586, 7566))
                if plate in used_plates:
                    continue
                ra, dec = _random_field(rng)
                lo = FIRST_WEATHER_MJD + 5 if index == 1 else mjd_range[0]
                night = _candidate_night(ra, rng, (lo, mjd_range[1]))
                if night in used_mjds:
                    continue
            exptimes = 900.0 + rng.uniform(0.0, 1.5, n_total)
            gaps = exptimes + rng.uniform(110.0, 260.0, n_total)
            start = _observing_window(ra, dec, night, float(gaps.sum()), rng)
            if start is not None:
                break
        else:  # pragma: no cover - the footprint and night choice make this very unlikely
            raise RuntimeError(f"could not schedule plate {index} after 200 attempts")
        used_plates.add(plate)
        used_mjds.add(night)
        tai_beg = start + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        mjd = int(sdss_mjd(tai_beg[0]))
        if index == 0:
            first_expid = REFERENCE_EXPID
            k_rejected = int(rng.integers(1, n_total)) if rejected else -1
        else:
            first_expid = REFERENCE_EXPID + (mjd - REFERENCE_MJD) * EXPIDS_PER_NIGHT + int(
                rng.integers(0, 30))
            k_rejected = int(rng.integers(0, n_total)) if rejected else -1
        expids = first_expid + np.arange(n_total)
        flat, arc = int(expids[-1] + 1), int(expids[-1] + 2)
        night_level = float(np.exp(rng.normal(0.0, 0.25)))
        seeing_night = float(np.clip(rng.lognormal(np.log(1.35), 0.2), 0.85, 2.4))
        exposures = []
        for k in range(n_total):
            seeing = float(np.clip(seeing_night * np.exp(rng.normal(0.0, 0.08)), 0.8, 2.6))
            is_ref = index == 0 and k == 0
            if is_ref:
                seeing = REFERENCE_SEEING
            exposures.append(Exposure(
                plate=plate, mjd=mjd, expid=int(expids[k]), flat=flat, arc=arc,
                tai_beg=float(tai_beg[k]), exptime=float(exptimes[k]), listed=k != k_rejected,
                seeing50=seeing, reference=is_ref,
                night_factor=night_level * float(np.exp(rng.normal(0.0, 0.05))),
            ))
        quality = "bad" if index % 3 == 2 else "good"
        visits.append(PlateVisit(plate, mjd, ra, dec, exposures, quality))
    return visits
