"""The Apache Point Observatory site and offline astropy set-up.

The site is given by explicit coordinates, so astropy never fetches its
online site registry, and :func:`offline_astropy` makes astropy use the IERS
tables bundled in ``astropy-iers-data`` instead of downloading them.
"""
from __future__ import annotations

import functools

#: Apache Point Observatory, SDSS 2.5-m telescope (WGS84), from the SDSS
#: telescope paper (Gunn et al. 2006, AJ 131, 2332): 32d 46' 49.30" N,
#: 105d 49' 13.50" W, 2788 m.
APO_LATITUDE_DEG = 32.0 + 46.0 / 60 + 49.30 / 3600
APO_LONGITUDE_DEG = -(105.0 + 49.0 / 60 + 13.50 / 3600)
APO_HEIGHT_M = 2788.0

#: Seconds in a day; TAI-BEG/TAI-END are TAI seconds since MJD 0.
SECONDS_PER_DAY = 86400.0


@functools.cache
def offline_astropy() -> None:
    """Configure astropy so that nothing is downloaded (idempotent).

    Uses the IERS-A/B tables bundled with ``astropy-iers-data``; times beyond
    their end fall back to predictions with degraded accuracy instead of an
    error or a download.
    """
    from astropy.utils import iers
    from astropy.utils.data import conf as data_conf

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "ignore"
    data_conf.allow_internet = False


@functools.cache
def apo_location():
    """Return the APO site as an :class:`astropy.coordinates.EarthLocation`."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    offline_astropy()
    return EarthLocation.from_geodetic(
        lon=APO_LONGITUDE_DEG * u.deg, lat=APO_LATITUDE_DEG * u.deg, height=APO_HEIGHT_M * u.m
    )


def tai_seconds_to_time(tai_seconds):
    """Convert BOSS TAI seconds since MJD 0 (TAI-BEG, TAI-END) to an astropy Time."""
    from astropy.time import Time

    offline_astropy()
    import numpy as np

    return Time(np.asarray(tai_seconds, dtype=float) / SECONDS_PER_DAY, format="mjd", scale="tai")
