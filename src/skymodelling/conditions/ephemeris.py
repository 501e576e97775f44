"""Vectorised Sun and Moon ephemeris and per-pointing geometry at APO.

Everything is computed with ERFA through astropy's own machinery (the
``astrom`` context of its ICRS to AltAz transformation) and the built-in
ephemerides (ERFA ``epv00`` for the Earth and Sun, ``moon98`` for the Moon),
so nothing is downloaded. Altitudes are geometric: no refraction
(``pressure=0``). What all fibres of an exposure share is computed once per
unique time; what depends on the pointing is computed per row with array
operations.

Frames used for the returned angles:

* ``*_RA``/``*_DEC``: astrometric directions in ICRS axes (J2000 equator), the
  Sun's geocentric and the Moon's topocentric from APO, so they compare
  directly with catalogue coordinates (aberration, <0.006 deg, ignored).
* ``*_ALT``/``*_AZ``: observed at APO without refraction, azimuth from north
  through east.
* ``ECL_*``: true ecliptic and equinox of date (as astropy's
  ``GeocentricTrueEcliptic``) when a time is given, else mean ecliptic and
  equinox of J2000.
"""

from __future__ import annotations

import functools

import erfa
import numpy as np

from .site import SECONDS_PER_DAY, tai_seconds_to_time
from .sunrise import (
    SUNSET_HORIZON_DEG,
    _as_time,
    _astrom,
    _mjd,
    _night_of,
    _observe,
    _quiet,
    sun_set_rise,
)

__all__ = [
    "sun_moon_ephemeris",
    "target_altaz",
    "airmass",
    "angular_separation",
    "ecliptic_coords",
    "galactic_coords",
    "sun_set_rise",
    "night_conditions",
    "SUNSET_HORIZON_DEG",
]

#: Astronomical unit in km (IAU 2012).
AU_KM = 149597870.7
#: Units of the non-angle columns of :func:`night_conditions`.
_UNITS = {
    "MOOND": "km",
    "MOON_PHASE": "rad",
    "MOON_ILL": None,
    "SUN_SET": "d",
    "SUN_RISE": "d",
    "HOUR": "h",
    "MONTH": None,
}
#: Rows per block when gathering the per-time ``astrom`` structure (~50 MB).
_BLOCK = 200_000


def _unit_vectors(ra_deg, dec_deg):
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    return cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)


def _lonlat(x, y, z):
    lon = np.degrees(np.arctan2(y, x)) % 360.0
    return lon, np.degrees(np.arctan2(z, np.hypot(x, y)))


def _rotate(mats, inv, x, y, z):
    """Apply ``mats[inv]`` (one 3x3 per unique time) to vectors, row by row."""
    return tuple(mats[inv, i, 0] * x + mats[inv, i, 1] * y + mats[inv, i, 2] * z for i in range(3))


def _true_ecliptic_matrix(jd1, jd2):
    """ICRS to true ecliptic and equinox of date (as astropy), IAU 2006/2000A."""
    gamb, phib, psib, epsa = erfa.pfw06(jd1, jd2)
    dpsi, deps = erfa.nut06a(jd1, jd2)
    rnpb = erfa.fw2m(gamb, phib, psib + dpsi, epsa + deps)
    return erfa.rx(erfa.obl06(jd1, jd2) + deps, rnpb)


@functools.cache
def _galactic_matrix():
    from astropy.coordinates import ICRS, CartesianRepresentation, Galactic

    basis = ICRS(CartesianRepresentation(np.eye(3)))
    return basis.transform_to(Galactic()).cartesian.xyz.value


def angular_separation(ra1, dec1, ra2, dec2):
    """Angle between two directions, in degrees (Vincenty formula).

    Works for any spherical pair (RA/Dec, az/alt, lon/lat); arrays broadcast.

    Examples
    --------
    >>> round(float(angular_separation(10.0, 20.0, 10.0, 25.0)), 9)
    5.0
    """
    lon = np.radians(np.asarray(ra2, dtype=float) - ra1)
    d1, d2 = np.radians(dec1), np.radians(dec2)
    s1, c1, s2, c2 = np.sin(d1), np.cos(d1), np.sin(d2), np.cos(d2)
    cl = np.cos(lon)
    num = np.hypot(c2 * np.sin(lon), c1 * s2 - s1 * c2 * cl)
    return np.degrees(np.arctan2(num, s1 * s2 + c1 * c2 * cl))


def airmass(alt):
    """Relative air mass for altitude ``alt`` (deg), Kasten & Young (1989).

    ``X = 1 / (sin h + 0.50572 (h + 6.07995)^-1.6364)``, evaluated at the
    given geometric altitude. It matches sec(z) near the zenith and stays
    finite at the horizon (X = 37.92). NaN below the horizon.

    Examples
    --------
    >>> round(float(airmass(90.0)), 4), round(float(airmass(30.0)), 3)
    (0.9997, 1.994)
    """
    alt = np.asarray(alt, dtype=float)
    h = np.where(alt >= 0, alt, np.nan)
    return 1.0 / (np.sin(np.radians(h)) + 0.50572 * (h + 6.07995) ** -1.6364)


def galactic_coords(ra, dec):
    """Galactic (GAL_LON, GAL_LAT) in degrees of ICRS ``ra``, ``dec`` (deg).

    Examples
    --------
    >>> lon, lat = galactic_coords(192.85948, 27.12825)  # north galactic pole
    >>> round(float(lat), 4)
    90.0
    """
    x, y, z = _unit_vectors(ra, dec)
    m = _galactic_matrix()
    return _lonlat(*(m[i, 0] * x + m[i, 1] * y + m[i, 2] * z for i in range(3)))


def ecliptic_coords(ra, dec, time=None):
    """Ecliptic (ECL_LON, ECL_LAT) in degrees of ICRS ``ra``, ``dec`` (deg).

    Parameters
    ----------
    ra, dec : array_like
        ICRS coordinates (deg).
    time : `~astropy.time.Time` or array_like, optional
        If given (numbers: MJD UTC), geocentric true ecliptic and equinox of
        each date, as astropy's ``GeocentricTrueEcliptic`` (the frame of
        ``SUN_ECL_LON``; annual aberration, <0.006 deg, ignored); the
        rotation is computed once per unique time. If omitted, mean ecliptic
        and equinox of J2000.

    Examples
    --------
    >>> lon, lat = ecliptic_coords(90.0, 23.4392911)
    >>> round(float(lon), 3), round(float(lat), 3)
    (90.0, 0.0)
    """
    x, y, z = _unit_vectors(ra, dec)
    if time is None:
        m = erfa.ecm06(2451545.0, 0.0)
        return _lonlat(*(m[i, 0] * x + m[i, 1] * y + m[i, 2] * z for i in range(3)))
    t = _as_time(time)
    key = np.asarray(_mjd(t, "tt"))
    uniq, first, inv = np.unique(key.ravel(), return_index=True, return_inverse=True)
    with _quiet():
        tt = t.reshape(-1)[first].tt
    mats = _true_ecliptic_matrix(tt.jd1, tt.jd2)
    inv = np.broadcast_to(inv.reshape(key.shape), np.broadcast_shapes(np.shape(x), key.shape))
    return _lonlat(*_rotate(mats, inv, x, y, z))


def _altaz_rows(ra, dec, astrom, inv):
    """Observed (alt, az) of each row, with ``astrom[inv]`` gathered in blocks."""
    ra_r, dec_r = np.radians(ra).ravel(), np.radians(dec).ravel()
    inv = inv.ravel()
    alt, az = np.empty(ra_r.size), np.empty(ra_r.size)
    for start in range(0, ra_r.size, _BLOCK):
        s = slice(start, start + _BLOCK)
        alt[s], az[s] = _observe(ra_r[s], dec_r[s], astrom[inv[s]])
    return alt.reshape(np.shape(ra)), az.reshape(np.shape(ra))


def target_altaz(ra, dec, time):
    """Observed altitude and azimuth (deg) of ICRS pointings at APO.

    Equivalent to ``SkyCoord(ra, dec).transform_to(AltAz(obstime=time,
    location=apo_location(), pressure=0))`` (no refraction), but the
    astrometric context is built once per unique time and then applied to
    all rows with ERFA's vectorised ``atciqz``/``atioq``.

    Parameters
    ----------
    ra, dec : array_like
        ICRS coordinates (deg).
    time : `~astropy.time.Time` or array_like
        Scalar or broadcastable with ``ra``; numbers are MJD (UTC).

    Returns
    -------
    alt, az : ndarray
        Altitude and azimuth (north through east), deg.

    Examples
    --------
    >>> alt, az = target_altaz(180.0, 32.78, 56000.25)
    >>> round(float(alt), 2), round(float(az), 2)
    (70.09, 83.72)
    """
    t = _as_time(time)
    key = np.asarray(_mjd(t, "tt"))
    _, first, inv = np.unique(key.ravel(), return_index=True, return_inverse=True)
    astrom = _astrom(t.reshape(-1)[first])
    ra, dec, inv = np.broadcast_arrays(
        np.asarray(ra, dtype=float), np.asarray(dec, dtype=float), inv.reshape(key.shape)
    )
    return _altaz_rows(ra, dec, astrom, inv)


def _ephemeris(t):
    """Per-time Sun/Moon dictionary plus the ``astrom`` and ecliptic matrices."""
    t = t.reshape(-1)
    astrom = _astrom(t)
    with _quiet():
        tdb, tt = t.tdb, t.tt
    helio, bary = erfa.epv00(tdb.jd1, tdb.jd2)
    moon = erfa.moon98(tdb.jd1, tdb.jd2)["p"]  # geocentric, au
    sun = -helio["p"]  # geocentric, au
    moon_topo = moon + bary["p"] - astrom["eb"]  # from APO, au
    sun_lon, sun_lat = erfa.c2s(-astrom["eh"])
    moon_lon, moon_lat = erfa.c2s(moon_topo)
    sun_alt, sun_az = _observe(sun_lon, sun_lat, astrom)
    moon_alt, moon_az = _observe(moon_lon, moon_lat, astrom)
    ecl = _true_ecliptic_matrix(tt.jd1, tt.jd2)
    to_sun, to_earth = sun - moon, -moon
    phase = np.arctan2(
        np.linalg.norm(np.cross(to_sun, to_earth), axis=-1), np.sum(to_sun * to_earth, axis=-1)
    )
    sun_ra, sun_dec = _lonlat(*sun.T)
    moon_ra, moon_dec = _lonlat(*moon_topo.T)
    eph = {
        "SUN_RA": sun_ra,
        "SUN_DEC": sun_dec,
        "SUN_ALT": sun_alt,
        "SUN_AZ": sun_az,
        "SUN_ECL_LON": _lonlat(*np.einsum("nij,nj->in", ecl, sun))[0],
        "MOON_RA": moon_ra,
        "MOON_DEC": moon_dec,
        "MOON_ALT": moon_alt,
        "MOON_AZ": moon_az,
        "MOOND": np.linalg.norm(moon, axis=-1) * AU_KM,
        "MOON_ILL": 0.5 * (1.0 + np.cos(phase)),
        "MOON_PHASE": phase,
        "SUN_MOON_SEP": angular_separation(sun_az, sun_alt, moon_az, moon_alt),
    }
    return eph, astrom, ecl


def sun_moon_ephemeris(time) -> dict[str, np.ndarray]:
    """Sun and Moon positions and lunar phase seen from APO at each time.

    Parameters
    ----------
    time : `~astropy.time.Time` or array_like
        Times of any shape; numbers are MJD (UTC).

    Returns
    -------
    dict of ndarray
        Arrays of the shape of ``time``:

        - ``SUN_RA``, ``SUN_DEC``: geocentric astrometric (ICRS axes), deg.
        - ``SUN_ALT``, ``SUN_AZ``: observed, no refraction, deg.
        - ``SUN_ECL_LON``: geocentric longitude in the true ecliptic and
          equinox of date (astropy ``GeocentricTrueEcliptic``), deg.
        - ``MOON_RA``, ``MOON_DEC``: topocentric astrometric from APO (ICRS
          axes, comparable with catalogue coordinates), deg.
        - ``MOON_ALT``, ``MOON_AZ``: observed, no refraction, deg.
        - ``MOOND``: geocentric Earth-Moon distance, km.
        - ``MOON_ILL``: illuminated fraction (0-1), geocentric.
        - ``MOON_PHASE``: phase angle Sun-Moon-Earth, geocentric, radians:
          0 at full Moon, pi at new Moon; ``MOON_ILL = (1 + cos MOON_PHASE)/2``
          (the alpha of Krisciunas & Schaefer 1991, in radians).
        - ``SUN_MOON_SEP``: Sun-Moon angle seen from APO, deg.

    Examples
    --------
    >>> eph = sun_moon_ephemeris([56000.25, 56014.25])
    >>> eph["MOON_ILL"].round(2)
    array([0.59, 0.26])
    """
    t = _as_time(time)
    eph = _ephemeris(t)[0]
    return {name: value.reshape(np.shape(t)) for name, value in eph.items()}


def night_conditions(ra, dec, tai_mid):
    """Observing geometry of each spectrum from its pointing and mid-exposure time.

    The Sun/Moon ephemeris, sunset and sunrise are computed once per unique
    ``tai_mid`` and broadcast to the rows; only what depends on the pointing
    is computed per row.

    Parameters
    ----------
    ra, dec : array_like
        ICRS pointing of each row (deg).
    tai_mid : array_like
        Mid-exposure time, BOSS TAI seconds since MJD 0; broadcastable.

    Returns
    -------
    astropy.table.Table
        One row per input row (flattened), columns in degrees unless noted:
        ``OBS_ZENITH`` (target zenith distance, no refraction), ``ECL_LAT``,
        ``ECL_LON`` (true ecliptic of date), ``ECL_LON_SUN`` (``ECL_LON``
        minus ``SUN_ECL_LON``, wrapped to [-180, 180)), ``GAL_LAT``,
        ``GAL_LON``, ``MOOND`` (km), ``MOON_SEP``, ``MOON_ALT``, ``MOON_AZ``,
        ``MOON_ZENITH``, ``MOON_ILL``, ``MOON_PHASE`` (rad),
        ``SUN_SEP``, ``SUN_ALT``, ``SUN_AZ``, ``SUN_MOON_SEP``, ``SUN_SET``
        and ``SUN_RISE`` (TAI MJD of the sunset before and the sunrise after
        ``tai_mid``, Sun's centre at -0.8333 deg), ``HOUR`` (hours since
        ``SUN_SET``) and ``MONTH`` (1-12, calendar month of the local date at
        APO on whose evening the night began, so constant through a night).
        Separations from the target are measured in the observed frame, so
        the Sun and Moon are taken topocentrically.

    Examples
    --------
    >>> tab = night_conditions([150.0, 151.0], [20.0, 21.0], 56000.25 * 86400)
    >>> tab["MOON_SEP"].round(1).tolist(), int(tab["MONTH"][0])
    ([109.0, 108.4], 3)
    """
    from astropy.table import Table

    ra, dec, tai = np.broadcast_arrays(
        np.asarray(ra, dtype=float), np.asarray(dec, dtype=float), np.asarray(tai_mid, float)
    )
    ra, dec, tai = ra.ravel(), dec.ravel(), tai.ravel()
    uniq, inv = np.unique(tai, return_inverse=True)
    t = tai_seconds_to_time(uniq)
    eph, astrom, ecl = _ephemeris(t)
    sun_set, sun_rise = sun_set_rise(t)
    alt, az = _altaz_rows(ra, dec, astrom, inv)
    ecl_lon, ecl_lat = _lonlat(*_rotate(ecl, inv, *_unit_vectors(ra, dec)))
    gal_lon, gal_lat = galactic_coords(ra, dec)
    month = erfa.jd2cal(2400000.5, _night_of(_mjd(t, "tt")))[1]
    per_time = {name: eph[name][inv] for name in eph}
    cols = {
        "OBS_ZENITH": 90.0 - alt,
        "ECL_LAT": ecl_lat,
        "ECL_LON": ecl_lon,
        "ECL_LON_SUN": (ecl_lon - per_time["SUN_ECL_LON"] + 180.0) % 360.0 - 180.0,
        "GAL_LAT": gal_lat,
        "GAL_LON": gal_lon,
        "MOOND": per_time["MOOND"],
        "MOON_SEP": angular_separation(az, alt, per_time["MOON_AZ"], per_time["MOON_ALT"]),
        "MOON_ALT": per_time["MOON_ALT"],
        "MOON_AZ": per_time["MOON_AZ"],
        "MOON_ZENITH": 90.0 - per_time["MOON_ALT"],
        "MOON_ILL": per_time["MOON_ILL"],
        "MOON_PHASE": per_time["MOON_PHASE"],
        "SUN_SEP": angular_separation(az, alt, per_time["SUN_AZ"], per_time["SUN_ALT"]),
        "SUN_ALT": per_time["SUN_ALT"],
        "SUN_AZ": per_time["SUN_AZ"],
        "SUN_MOON_SEP": per_time["SUN_MOON_SEP"],
        "SUN_SET": sun_set[inv],
        "SUN_RISE": sun_rise[inv],
        "HOUR": (tai / SECONDS_PER_DAY - sun_set[inv]) * 24.0,
        "MONTH": month.astype(np.int8)[inv],
    }
    table = Table(cols, copy=False)
    for name in table.colnames:
        table[name].unit = _UNITS.get(name, "deg")
    return table
