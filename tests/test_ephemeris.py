"""Tests of skymodelling.conditions.ephemeris against PyEphem and astropy."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.time import Time

from skymodelling.conditions.ephemeris import (
    airmass,
    angular_separation,
    ecliptic_coords,
    galactic_coords,
    night_conditions,
    sun_moon_ephemeris,
    sun_set_rise,
    target_altaz,
)
from skymodelling.conditions.site import tai_seconds_to_time

ephem = pytest.importorskip("ephem")

#: ephem.Date counts days from 1899 Dec 31 12:00 UT, i.e. MJD 15019.5.
EPHEM_MJD0 = 15019.5
N_RANDOM = 300
#: 2009-01-01 to 2015-12-31, in TAI seconds since MJD 0.
TAI_RANGE = (54832 * 86400.0, 57387 * 86400.0)


def _observer(mjd_utc, horizon_deg=0.0):
    obs = ephem.Observer()
    obs.lat, obs.lon, obs.elevation = "32:46:49.30", "-105:49:13.50", 2788.0
    obs.pressure = 0.0  # no refraction
    obs.horizon = np.radians(horizon_deg)
    obs.date = ephem.Date(mjd_utc - EPHEM_MJD0)
    return obs


def _wrap(angle_deg):
    return (np.asarray(angle_deg) + 180.0) % 360.0 - 180.0


@pytest.fixture(scope="module")
def random_rows():
    rng = np.random.default_rng(20240601)
    tai = rng.uniform(*TAI_RANGE, N_RANDOM)
    ra = rng.uniform(0.0, 360.0, N_RANDOM)
    dec = rng.uniform(-10.0, 70.0, N_RANDOM)
    return ra, dec, tai, night_conditions(ra, dec, tai)


@pytest.fixture(scope="module")
def ephem_reference(random_rows):
    """PyEphem values for the random rows (apparent topocentric, no refraction)."""
    ra, dec, tai, _ = random_rows
    mjd_utc = tai_seconds_to_time(tai).utc.mjd
    ref = {k: [] for k in ("moon_sep", "moon_alt", "moon_ill", "sun_alt", "sun_sep", "alt")}
    for r, d, m in zip(ra, dec, mjd_utc, strict=True):
        obs = _observer(m)
        moon, sun, star = ephem.Moon(obs), ephem.Sun(obs), ephem.FixedBody()
        star._ra, star._dec, star._epoch = np.radians(r), np.radians(d), ephem.J2000
        star.compute(obs)
        target = (star.az, star.alt)
        ref["moon_sep"].append(np.degrees(ephem.separation((moon.az, moon.alt), target)))
        ref["sun_sep"].append(np.degrees(ephem.separation((sun.az, sun.alt), target)))
        ref["moon_alt"].append(np.degrees(moon.alt))
        ref["sun_alt"].append(np.degrees(sun.alt))
        ref["alt"].append(np.degrees(star.alt))
        ref["moon_ill"].append(moon.moon_phase)
    return {k: np.array(v) for k, v in ref.items()}


@pytest.mark.parametrize(
    ("column", "key", "tolerance"),
    [
        ("MOON_SEP", "moon_sep", 0.1),
        ("MOON_ALT", "moon_alt", 0.1),
        ("MOON_ILL", "moon_ill", 0.01),
        ("SUN_ALT", "sun_alt", 0.05),
        ("SUN_SEP", "sun_sep", 0.05),
    ],
)
def test_against_pyephem(random_rows, ephem_reference, column, key, tolerance):
    table = random_rows[3]
    assert np.max(np.abs(table[column] - ephem_reference[key])) < tolerance


def test_target_zenith_against_pyephem(random_rows, ephem_reference):
    table = random_rows[3]
    assert np.max(np.abs(90.0 - table["OBS_ZENITH"] - ephem_reference["alt"])) < 0.01


@pytest.mark.parametrize("horizon", [-0.8333, -18.0])
def test_sun_set_rise_against_pyephem(horizon):
    rng = np.random.default_rng(7)
    mjd = rng.uniform(54832.0, 57387.0, 60)
    sun_set, sun_rise = sun_set_rise(mjd, horizon_deg=horizon)
    ref_set, ref_rise = [], []
    for m in mjd:
        obs = _observer(m, horizon)
        ref_set.append(obs.previous_setting(ephem.Sun(), use_center=True) + EPHEM_MJD0)
        ref_rise.append(obs.next_rising(ephem.Sun(), use_center=True) + EPHEM_MJD0)
    assert np.max(np.abs(sun_set - ref_set)) * 1440 < 2.0
    assert np.max(np.abs(sun_rise - ref_rise)) * 1440 < 2.0
    assert np.all((sun_set <= mjd) & (mjd < sun_rise))


def test_moon_radec_is_topocentric_icrs():
    """MOON_RA/DEC match astropy's topocentric Moon (GCRS at APO) within 0.01 deg."""
    from astropy.coordinates import get_body

    from skymodelling.conditions.site import apo_location

    t = Time(np.linspace(55000.0, 55030.0, 7), format="mjd", scale="utc")
    eph = sun_moon_ephemeris(t)
    moon = get_body("moon", t, location=apo_location())
    sep = angular_separation(eph["MOON_RA"], eph["MOON_DEC"], moon.ra.deg, moon.dec.deg)
    assert np.max(sep) < 0.01
    dist = moon.transform_to("gcrs").distance.km  # topocentric; within an Earth radius
    assert np.all(np.abs(eph["MOOND"] - dist) < 6400.0)


def test_target_altaz_matches_astropy():
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord

    from skymodelling.conditions.site import apo_location

    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 50), rng.uniform(-30, 89, 50)
    t = Time(rng.uniform(55000, 56000, 50), format="mjd", scale="tai")
    alt, az = target_altaz(ra, dec, t)
    ref = SkyCoord(ra, dec, unit="deg").transform_to(
        AltAz(obstime=t, location=apo_location(), pressure=0 * u.hPa)
    )
    assert np.max(np.abs(alt - ref.alt.deg)) < 1e-8
    assert np.max(np.abs(_wrap(az - ref.az.deg)) * np.cos(np.radians(alt))) < 1e-8


def test_coordinate_functions_match_astropy():
    from astropy.coordinates import GeocentricTrueEcliptic, SkyCoord

    rng = np.random.default_rng(4)
    ra, dec = rng.uniform(0, 360, 40), rng.uniform(-89, 89, 40)
    coords = SkyCoord(ra, dec, unit="deg")
    lon, lat = galactic_coords(ra, dec)
    assert np.max(angular_separation(lon, lat, coords.galactic.l.deg, coords.galactic.b.deg)) < 1e-8
    t = Time(56000.3, format="mjd", scale="utc")
    ref = coords.transform_to(GeocentricTrueEcliptic(equinox=t, obstime=t))
    lon, lat = ecliptic_coords(ra, dec, t)
    assert np.max(angular_separation(lon, lat, ref.lon.deg, ref.lat.deg)) < 0.006  # aberration
    lon, lat = ecliptic_coords(ra, dec)
    ref = coords.barycentricmeanecliptic
    assert np.max(angular_separation(lon, lat, ref.lon.deg, ref.lat.deg)) < 1e-6


def test_sun_ecliptic_longitude_matches_astropy():
    from astropy.coordinates import GeocentricTrueEcliptic, get_sun

    t = Time(np.linspace(55000, 55365, 13), format="mjd", scale="utc")
    eph = sun_moon_ephemeris(t)
    ref = get_sun(t).transform_to(GeocentricTrueEcliptic(equinox=t)).lon.deg
    assert np.max(np.abs(_wrap(eph["SUN_ECL_LON"] - ref))) < 0.006  # aberration


def test_angular_separation_and_airmass():
    assert angular_separation(0.0, 89.0, 180.0, 89.0) == pytest.approx(2.0)
    assert angular_separation(10.0, 0.0, 10.0 + 1e-9, 0.0) == pytest.approx(1e-9, rel=1e-6)
    assert angular_separation(0.0, 0.0, 180.0, 0.0) == pytest.approx(180.0)
    z = np.array([0.0, 30.0, 60.0])
    np.testing.assert_allclose(airmass(90.0 - z), 1.0 / np.cos(np.radians(z)), rtol=3e-3)
    assert airmass(0.0) == pytest.approx(37.92, abs=0.01)
    assert np.isnan(airmass(-1.0))


def test_phase_conventions():
    # 2012-05-06 03:35 UTC full Moon, 2012-05-20 23:47 UTC new Moon
    full, new = Time(["2012-05-06T03:35", "2012-05-20T23:47"], scale="utc")
    eph = sun_moon_ephemeris(Time([full, new]))
    assert eph["MOON_ILL"][0] > 0.99 and eph["MOON_PHASE"][0] < 0.1
    assert eph["MOON_ILL"][1] < 0.01 and eph["MOON_PHASE"][1] > np.pi - 0.1
    np.testing.assert_allclose(eph["MOON_ILL"], 0.5 * (1 + np.cos(eph["MOON_PHASE"])))


def test_exposure_spanning_local_midnight():
    # APO local midnight (MST, UTC-7) on 2012-03-15/16 is 07:00 UTC
    utc = Time(["2012-03-16T06:50", "2012-03-16T07:00", "2012-03-16T07:10"], scale="utc")
    tai = utc.tai.mjd * 86400.0
    table = night_conditions(150.0, 30.0, tai)
    assert np.all(table["SUN_SET"] == table["SUN_SET"][0])
    assert np.all(table["SUN_RISE"] == table["SUN_RISE"][0])
    np.testing.assert_allclose(np.diff(table["HOUR"]), [1 / 6, 1 / 6], rtol=1e-6)
    assert 4.0 < table["HOUR"][0] < 7.0
    assert np.all(table["MONTH"] == 3)


def test_month_is_that_of_the_evening():
    # the night of 2012-03-31 (local) continues past UTC and local midnight
    utc = Time(["2012-04-01T03:00", "2012-04-01T09:00"], scale="utc")
    table = night_conditions(150.0, 30.0, utc.tai.mjd * 86400.0)
    assert table["MONTH"].tolist() == [3, 3]


def test_polar_pointings_and_moon_below_horizon():
    rng = np.random.default_rng(5)
    n = 200
    dec = rng.uniform(85.0, 89.999, n)
    ra = rng.uniform(0, 360, n)
    tai = rng.uniform(*TAI_RANGE, n)
    table = night_conditions(ra, dec, tai)
    for name in table.colnames:
        assert np.all(np.isfinite(table[name])), name
    # the pole is at altitude = latitude, so these are all near 32.8 deg
    assert np.all(np.abs(90.0 - table["OBS_ZENITH"] - 32.78) < 5.0)
    assert np.any(table["MOON_ALT"] < 0) and np.any(table["MOON_ALT"] > 0)
    np.testing.assert_allclose(table["MOON_ZENITH"], 90.0 - table["MOON_ALT"])
    assert np.all((table["ECL_LON_SUN"] >= -180) & (table["ECL_LON_SUN"] < 180))
    assert np.all((table["HOUR"] >= 0) & (table["HOUR"] < 24))
    assert np.all((table["SUN_SET"] <= tai / 86400.0) & (tai / 86400.0 < table["SUN_RISE"]))


def test_broadcasting_equals_row_by_row():
    rng = np.random.default_rng(6)
    times = rng.uniform(*TAI_RANGE, 3)
    tai = np.repeat(times, 4)
    ra, dec = rng.uniform(0, 360, tai.size), rng.uniform(-10, 70, tai.size)
    together = night_conditions(ra, dec, tai)
    for i in (0, 5, 11):
        alone = night_conditions(ra[i], dec[i], tai[i])
        for name in together.colnames:
            assert together[name][i] == pytest.approx(alone[name][0], rel=1e-12, abs=1e-9), name


@pytest.mark.parametrize("mjd", [55348.0, 56992.0, 62653.0])  # 2010-06, 2014-12, 2030-06
def test_no_warnings_for_any_supported_date(mjd):
    # pytest turns warnings into errors: IERS, download or ERFA warnings would fail here
    mjd = mjd + np.linspace(0.0, 1.0, 5)
    table = night_conditions(100.0, 20.0, mjd * 86400.0)
    assert np.all(np.isfinite(table["SUN_SET"]))
    assert np.all(np.isfinite(sun_set_rise(mjd)[0]))
    assert np.all(np.isfinite(sun_moon_ephemeris(mjd)["MOON_ALT"]))
    assert np.all(np.isfinite(target_altaz(100.0, 20.0, Time(mjd, format="mjd", scale="tai"))[0]))
