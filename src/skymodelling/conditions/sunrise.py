"""Sunset and sunrise at APO, found for many nights at once.

This module also holds the small astrometric context shared with
:mod:`skymodelling.conditions.ephemeris` (time conversion, silencing of the
expected far-future warnings, and the ERFA ``astrom`` structure for APO),
because the ephemeris module builds on it.

The search evaluates the geometric (unrefracted) altitude of the Sun's centre
on a 10-minute grid covering every needed night, locates the sign changes of
``altitude - horizon`` and refines each crossing by bisection, all vectorised
over nights. Nights run from local noon to local noon (APO mean solar time),
so each holds exactly one sunset and one sunrise for any horizon the Sun
crosses. Within a night the Sun's apparent (CIRS) direction and UT1 are
interpolated linearly between the two noons (error below 0.001 deg, i.e. well
under a second of time), while the Earth rotation angle is exact.
"""

from __future__ import annotations

import contextlib
import warnings

import erfa
import numpy as np

from .site import APO_LONGITUDE_DEG, apo_location, offline_astropy

__all__ = ["sun_set_rise", "SUNSET_HORIZON_DEG"]

#: Standard sunset/sunrise horizon for the Sun's centre with no refraction
#: model: the upper limb touching the horizon under standard refraction (34')
#: with a 16' solar radius, as used by the almanacs (USNO, PyEphem, astroplan).
SUNSET_HORIZON_DEG = -0.8333

#: Grid steps per night (10-minute spacing) and bisection steps (0.04 s).
_GRID_STEPS = 144
_BISECTIONS = 14
#: Offset from MJD (TT) of a local date to its local mean noon.
_NOON_OFFSET = 0.5 - APO_LONGITUDE_DEG / 360.0


@contextlib.contextmanager
def _quiet():
    """Silence the warnings expected for dates past the IERS/leap-second tables.

    Far-future UTC dates make ERFA warn "dubious year" (leap seconds unknown)
    and astropy warn that polar motion falls back to its 50-year mean (an
    arcsecond effect). Both are harmless here; anything else still warns.
    """
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dubious year", category=erfa.ErfaWarning)
        warnings.filterwarnings(
            "ignore", message="Tried to get polar motions", category=AstropyWarning
        )
        yield


def _as_time(time):
    """Return ``time`` as an astropy Time; numbers are taken as MJD in UTC."""
    from astropy.time import Time

    offline_astropy()
    if isinstance(time, Time):
        return time
    with _quiet():
        return Time(np.asarray(time, dtype=float), format="mjd", scale="utc")


def _mjd(time, scale: str) -> np.ndarray:
    """MJD of ``time`` in ``scale`` as float64 (precision ~1 microsecond)."""
    with _quiet():
        t = getattr(time, scale)
        return (t.jd1 - 2400000.5) + t.jd2


def _astrom(time):
    """ERFA ``astrom`` (ICRS to observed, APO, no refraction) for each time.

    Uses the current astropy ``erfa_astrom`` provider, exactly as astropy's
    ICRS to AltAz transformation with ``pressure=0`` does, with the built-in
    (ERFA ``epv00``) solar-system ephemeris so nothing is downloaded.
    """
    import astropy.units as u
    from astropy.coordinates import AltAz, solar_system_ephemeris
    from astropy.coordinates.erfa_astrom import erfa_astrom

    frame = AltAz(obstime=time, location=apo_location(), pressure=0 * u.hPa)
    with _quiet(), solar_system_ephemeris.set("builtin"):
        return erfa_astrom.get().apco(frame)


def _observe(ra_rad, dec_rad, astrom):
    """Observed (alt, az) in degrees of ICRS directions (radians), via ERFA."""
    ri, di = erfa.atciqz(ra_rad, dec_rad, astrom)
    az, zd = erfa.atioq(ri, di, astrom)[:2]
    return 90.0 - np.degrees(zd), np.degrees(az)


def _night_start(night):
    """TT MJD of local mean noon beginning night ``night`` (local date MJD)."""
    return night + _NOON_OFFSET


def _night_of(mjd_tt):
    """Local date (MJD, integer) of the noon-to-noon night containing each time."""
    return np.floor(mjd_tt - _NOON_OFFSET).astype(np.int64)


class _SunAltitude:
    """Cheap, accurate Sun altitude inside a set of noon-to-noon nights."""

    def __init__(self, nights: np.ndarray):
        from astropy.time import Time

        self.anchors = np.union1d(nights, nights + 1)
        start = _night_start(self.anchors)
        t = Time(start, format="mjd", scale="tt")
        self.astrom = _astrom(t)
        sun = -self.astrom["eh"]
        ri, di = erfa.atciqz(*erfa.c2s(sun), self.astrom)
        self.cirs = erfa.s2c(ri, di)
        self.dut = start - _mjd(t, "ut1")  # TT - UT1, days

    def __call__(self, night: np.ndarray, frac: np.ndarray) -> np.ndarray:
        """Altitude (deg) at fraction ``frac`` of the way through ``night``."""
        j0 = np.searchsorted(self.anchors, night)
        f = frac[..., None]
        vec = (1.0 - f) * self.cirs[j0] + f * self.cirs[j0 + 1]
        ri, di = erfa.c2s(vec)
        ut1 = _night_start(night) + frac - ((1.0 - frac) * self.dut[j0] + frac * self.dut[j0 + 1])
        astrom = self.astrom[j0]
        astrom["eral"] = erfa.era00(2400000.5, ut1) + astrom["along"]
        zd = erfa.atioq(ri, di, astrom)[1]
        return 90.0 - np.degrees(zd)


def _night_events(nights: np.ndarray, horizon_deg: float):
    """Sunset and following sunrise (TT MJD, NaN if none) for each night."""
    alt = _SunAltitude(nights)
    grid = np.arange(_GRID_STEPS + 1) / _GRID_STEPS
    g = alt(np.repeat(nights, grid.size), np.tile(grid, nights.size)) - horizon_deg
    g = g.reshape(nights.size, grid.size)
    above = g >= 0
    down = above[:, :-1] & ~above[:, 1:]
    up = ~above[:, :-1] & above[:, 1:]
    k = np.concatenate([down.argmax(axis=1), up.argmax(axis=1)])
    found = np.concatenate([down.any(axis=1), up.any(axis=1)])
    both = np.concatenate([nights, nights])
    lo = k / _GRID_STEPS
    hi = (k + 1) / _GRID_STEPS
    lo_above = np.concatenate([np.ones(nights.size, bool), np.zeros(nights.size, bool)])
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        same = (alt(both, mid) >= horizon_deg) == lo_above
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    event = np.where(found, _night_start(both) + 0.5 * (lo + hi), np.nan)
    return event[: nights.size], event[nights.size :]


def _tt_to_scale(mjd_tt: np.ndarray, scale: str) -> np.ndarray:
    """Convert TT MJD (NaN allowed) to MJD in another astropy time scale."""
    from astropy.time import Time

    out = np.full(mjd_tt.shape, np.nan)
    ok = np.isfinite(mjd_tt)
    if scale == "tt":
        out[ok] = mjd_tt[ok]
    elif ok.any():
        with _quiet():
            out[ok] = _mjd(Time(mjd_tt[ok], format="mjd", scale="tt"), scale)
    return out


def sun_set_rise(time, horizon_deg: float = SUNSET_HORIZON_DEG):
    """Sunset before and sunrise after each time, at APO.

    Parameters
    ----------
    time : `~astropy.time.Time` or array_like
        Times; numbers are MJD in UTC. Any shape.
    horizon_deg : float, optional
        Altitude of the Sun's centre defining the event, without refraction
        (deg). The default -0.8333 is the standard sunset (upper limb on the
        horizon with standard refraction); use -6, -12 or -18 for civil,
        nautical or astronomical twilight.

    Returns
    -------
    sun_set, sun_rise : ndarray
        MJD of the last time at or before ``time`` when the Sun's centre
        descended through ``horizon_deg``, and of the first time after
        ``time`` when it ascended through it. They are in the scale of
        ``time`` (TAI in, TAI out; UTC for plain numbers). NaN if the Sun does
        not cross that horizon within the day. Accuracy is about a second.

    Examples
    --------
    >>> from astropy.time import Time
    >>> sun_set, sun_rise = sun_set_rise(Time("2012-06-01T06:00", scale="utc"))
    >>> print(Time(sun_set, format="mjd", precision=0).iso)
    2012-06-01 02:06:10
    >>> print(Time(sun_rise, format="mjd", precision=0).iso)
    2012-06-01 11:55:58
    """
    t = _as_time(time)
    mjd_tt = np.atleast_1d(_mjd(t, "tt")).ravel()
    uniq, inv = np.unique(mjd_tt, return_inverse=True)
    night = _night_of(uniq)
    nights = np.unique(night)
    sets, rises = _night_events(nights, horizon_deg)
    pos = np.searchsorted(nights, night)
    before = uniq < sets[pos]  # before this night's sunset: need the previous
    after = uniq > rises[pos]  # after this night's sunrise: need the next
    extra = np.setdiff1d(np.concatenate([night[before] - 1, night[after] + 1]), nights)
    if extra.size:
        extra_sets, extra_rises = _night_events(extra, horizon_deg)
        nights = np.concatenate([nights, extra])
        order = np.argsort(nights)
        nights = nights[order]
        sets = np.concatenate([sets, extra_sets])[order]
        rises = np.concatenate([rises, extra_rises])[order]
    set_night = night - before
    rise_night = night + after
    sun_set = sets[np.searchsorted(nights, set_night)]
    sun_rise = rises[np.searchsorted(nights, rise_night)]
    scale = t.scale if t.scale in ("tt", "tai", "utc", "tdb", "tcg", "tcb", "ut1") else "utc"
    out = _tt_to_scale(np.concatenate([sun_set, sun_rise]), scale)
    shape = np.shape(t)
    return out[: uniq.size][inv].reshape(shape), out[uniq.size :][inv].reshape(shape)
