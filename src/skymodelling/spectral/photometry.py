"""Broadband sky surface brightness of many spectra at once.

SDSS u g r i z are AB magnitudes through the speclite ``sdss2010-*``
responses; Bessell U B V R I are Vega magnitudes through speclite's
``bessell-*`` responses, from the AB magnitudes and the AB-Vega offsets of
Blanton & Roweis (2007, AJ 133, 734, Table 1).

A band is computed for a spectrum only where the spectrum covers it: the
good pixels (IVAR > 0) must hold at least ``min_coverage`` of the band's
photon-weighted response ``integral R(lambda) lambda d lambda``; otherwise the
magnitude is NaN and the band's bit is set in the flag.  Masked pixels inside
the band are left out of both integrals (the mean f_nu over the covered
response), which biases the result by at most a fraction ``1 - min_coverage``.
"""
from __future__ import annotations

import functools

import numpy as np

from .features import pixel_widths

#: (column name, speclite filter, AB - Vega offset in mag, or None for AB magnitudes)
BANDS = (
    ("SDSS_U", "sdss2010-u", None), ("SDSS_G", "sdss2010-g", None),
    ("SDSS_R", "sdss2010-r", None), ("SDSS_I", "sdss2010-i", None),
    ("SDSS_Z", "sdss2010-z", None),
    ("BESSELL_U", "bessell-U", 0.79), ("BESSELL_B", "bessell-B", -0.09),
    ("BESSELL_V", "bessell-V", 0.02), ("BESSELL_R", "bessell-R", 0.21),
    ("BESSELL_I", "bessell-I", 0.45),
)
#: Bit of each band in the magnitude flag (set when the band is not covered).
BAND_BIT = {name: 1 << i for i, (name, _, _) in enumerate(BANDS)}
#: Speed of light in A/s and the AB zero point in erg/s/cm2/Hz.
C_A_PER_S = 2.99792458e18
AB_ZERO = 3631e-23


@functools.cache
def _response(filter_name: str):
    import speclite.filters

    f = speclite.filters.load_filter(filter_name)
    wave = np.asarray(f.wavelength, dtype=float)
    return wave, np.asarray(f.response, dtype=float)


def sky_magnitudes(wave, flux, ivar, *, flux_unit: float = 1e-17, area_arcsec2: float = np.pi,
                   min_coverage: float = 0.99) -> dict[str, np.ndarray]:
    """Surface brightness in mag/arcsec2 in every band, for all spectra.

    Parameters
    ----------
    wave, flux, ivar : ndarray (nspec, npix)
        Vacuum wavelength (A), flux per fibre in ``flux_unit`` erg/s/cm2/A, and
        its inverse variance (0 = masked).
    area_arcsec2 : float
        Solid angle of the fibre (BOSS: 2" diameter, pi arcsec2).
    min_coverage : float
        Fraction of the band's response that good pixels must cover.

    Returns
    -------
    dict
        One array per band (``SDSS_U`` ... ``BESSELL_I``) and ``MAG_FLAG``
        (bits of :data:`BAND_BIT` for bands not covered).

    Examples
    --------
    >>> wave = np.linspace(3500, 10500, 7000)[None, :]
    >>> fnu = AB_ZERO * 10 ** (-0.4 * 21.0)                 # 21 mag/arcsec2 everywhere
    >>> flux = fnu * C_A_PER_S / wave**2 * np.pi / 1e-17     # per fibre, 1e-17 units
    >>> mags = sky_magnitudes(wave, flux, np.ones_like(flux))
    >>> round(float(mags["SDSS_R"][0]), 3), bool(np.isnan(mags["SDSS_U"][0]))
    (21.0, True)
    """
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    good = np.asarray(ivar) > 0
    dw = pixel_widths(wave)
    f_lambda = flux * flux_unit / area_arcsec2
    out: dict[str, np.ndarray] = {}
    flag = np.zeros(wave.shape[0], dtype=np.int16)
    for name, filt, ab_minus_vega in BANDS:
        fw, fr = _response(filt)
        cols = _band_columns(wave, fw[0], fw[-1])
        y = fr * fw
        total = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(fw)))
        if cols is None:
            out[name] = np.full(wave.shape[0], np.nan)
            flag |= BAND_BIT[name]
            continue
        w = wave[:, cols]
        weight = np.interp(w, fw, fr, left=0.0, right=0.0) * w * dw[:, cols]
        weight = np.where(good[:, cols], weight, 0.0)
        covered = weight.sum(axis=1) / total
        num = (f_lambda[:, cols] * weight).sum(axis=1)
        den = (AB_ZERO * C_A_PER_S / w**2 * weight).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = -2.5 * np.log10(num / den)
        if ab_minus_vega is not None:
            mag = mag - ab_minus_vega
        ok = (covered >= min_coverage) & np.isfinite(mag)
        out[name] = np.where(ok, mag, np.nan)
        flag |= np.where(ok, 0, BAND_BIT[name]).astype(np.int16)
    out["MAG_FLAG"] = flag
    return out


def _band_columns(wave, lo, hi):
    first = int(np.searchsorted(wave.max(axis=0), lo))
    last = int(np.searchsorted(wave.min(axis=0), hi, side="right"))
    first, last = max(first - 1, 0), min(last + 1, wave.shape[1])
    return slice(first, last) if last > first else None
