"""Cross-validation grouped by plate, the baselines and the scores.

Scores on held-out rows (:func:`score`): the median and 90th percentile of
``|pred / obs - 1|`` and the fraction of observations inside the 68 %
interval. *Dark* exposures have the Moon below the horizon (``MOON_ALT < 0``),
*moonlit* ones above it (:func:`sky_class`).

Baselines (each fitted on the training plates of a fold only):

* ``constant``: the median target of the dark training exposures, everywhere;
  interval from the 16th and 84th percentiles of obs / constant over them;
* ``ks91``: that constant plus Krisciunas & Schaefer (1991) moonlight as
  published (V-band nanoLamberts, :mod:`skymodelling.sky.moon`) turned into
  flux at the target's wavelength with the lunar colour of ``moon_spectrum``
  and a 2" fibre (pi arcsec2); interval from the 16-84th percentiles of the
  training ratios.
"""
from __future__ import annotations

import numpy as np

from ..errors import SkyModellingError
from ..sky.moon import (
    LUNAR_COLOUR_EXPONENT,
    _basis_v_mags,
    ks91_scattering_terms,
    moon_brightness_nl,
    nanolambert_to_vmag,
)
from ..sky.solar import load_solar_table
from .boosted import fit_boosted, predict_boosted
from .features import feature_matrix
from .physical import fit_physical, predict_physical

KINDS = ("constant", "ks91", "boosted", "physical")
FIBER_AREA_ARCSEC2 = np.pi


def sky_class(cond: dict) -> dict[str, np.ndarray]:
    """Masks ``dark`` (Moon below the horizon) and ``moonlit`` (Moon above it)."""
    return {"dark": cond["MOON_ALT"] < 0, "moonlit": cond["MOON_ALT"] >= 0}


def score(obs, pred, lo, hi) -> dict:
    """Median and 90th percentile of |pred/obs - 1| and the 68 % interval coverage.

    Examples
    --------
    >>> s = score([1.0, 2.0, 4.0], [1.1, 2.0, 3.0], [1.0, 1.5, 3.5], [1.2, 2.5, 3.9])
    >>> round(s["median"], 3), round(s["coverage"], 3)
    (0.1, 0.667)
    """
    obs, pred, lo, hi = (np.asarray(a, dtype=float) for a in (obs, pred, lo, hi))
    ok = np.isfinite(obs) & (obs > 0) & np.isfinite(pred)
    if not ok.any():
        return {"n": 0, "median": np.nan, "p90": np.nan, "coverage": np.nan}
    err = np.abs(pred[ok] / obs[ok] - 1)
    inside = (obs[ok] >= lo[ok]) & (obs[ok] <= hi[ok])
    return {"n": int(ok.sum()), "median": float(np.median(err)),
            "p90": float(np.percentile(err, 90)), "coverage": float(inside.mean())}


def ks91_flux(cond: dict, wave: float) -> np.ndarray:
    """KS91 scattered moonlight in 1e-17 erg/s/cm2/A per 2" fibre at ``wave`` (A).

    Vectorised form of :func:`skymodelling.sky.moon.moon_spectrum` at one
    wavelength, times pi arcsec2.

    Examples
    --------
    >>> c = {"MOON_PHASE": np.array([0.5]), "MOON_SEP": np.array([40.0]),
    ...      "MOON_ALT": np.array([40.0]), "OBS_ZENITH": np.array([20.0])}
    >>> 1 < float(ks91_flux(c, 4700.0)[0]) < 100
    True
    """
    alt = 90.0 - cond["OBS_ZENITH"]
    b_nl = moon_brightness_nl(np.degrees(cond["MOON_PHASE"]), cond["MOON_SEP"],
                              cond["MOON_ALT"], alt)
    up = b_nl > 0
    v_total = nanolambert_to_vmag(np.where(up, b_nl, 1.0))
    rayleigh, mie = ks91_scattering_terms(cond["MOON_SEP"])
    frac_r = rayleigh / (rayleigh + mie)
    v_r, v_m = _basis_v_mags()
    tw, tf = load_solar_table()
    base = np.interp(wave, tw, tf) * (wave / 5500.0) ** LUNAR_COLOUR_EXPONENT
    flux = base * (frac_r * 10 ** (-0.4 * (v_total - v_r)) * (wave / 5500.0) ** -4.0
                   + (1 - frac_r) * 10 ** (-0.4 * (v_total - v_m)) * (wave / 5500.0) ** -1.3)
    return np.where(up, flux * FIBER_AREA_ARCSEC2 * 1e17, 0.0)


def _fit_predict(kind: str, cond_tr, y_tr, groups_tr, cond_te, wave, seed):
    dark_tr = sky_class(cond_tr)["dark"] & np.isfinite(y_tr) & (y_tr > 0)
    if kind == "constant":
        const = np.median(y_tr[dark_tr])
        q16, q84 = np.percentile(y_tr[dark_tr] / const, [16, 84])
        n = len(cond_te["MOON_ALT"])
        return np.full(n, const), np.full(n, const * q16), np.full(n, const * q84)
    if kind == "ks91":
        const = np.median(y_tr[dark_tr])
        if wave is None:
            raise SkyModellingError("the ks91 baseline needs the target's wavelength")
        pred_tr = const + ks91_flux(cond_tr, wave)
        ok = np.isfinite(y_tr) & (y_tr > 0)
        q16, q84 = np.percentile(y_tr[ok] / pred_tr[ok], [16, 84])
        pred = const + ks91_flux(cond_te, wave)
        return pred, pred * q16, pred * q84
    if kind == "physical":
        return predict_physical(fit_physical(cond_tr, y_tr, groups_tr), cond_te)
    if kind == "boosted":
        fit = fit_boosted(feature_matrix(cond_tr), y_tr, groups_tr, seed=seed)
        return predict_boosted(fit, feature_matrix(cond_te))
    raise SkyModellingError(f"unknown model kind {kind!r}; use one of {', '.join(KINDS)}")


def cross_validate(cond: dict, y, groups, *, kinds=KINDS, n_splits: int = 5,
                   wave: float | None = None, seed: int = 0) -> dict:
    """Out-of-fold predictions with folds grouped by ``groups`` (plates).

    Parameters
    ----------
    cond : dict of numpy.ndarray
        :func:`skymodelling.model.features.conditions_arrays` of every row.
    y : array_like
        Targets.
    groups : array_like
        Group label of each row (PLATE): a group is never split between
        training and test.
    kinds : sequence of str
        Any of :data:`KINDS`.
    n_splits : int
    wave : float, optional
        Target wavelength in Angstrom (for ``ks91``).
    seed : int

    Returns
    -------
    dict
        kind -> (pred, lo, hi) arrays over all rows, each from the fold in
        which the row's plate was held out.
    """
    from sklearn.model_selection import GroupKFold

    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    if len(np.unique(groups)) < n_splits:
        raise SkyModellingError(f"cross-validation needs at least {n_splits} plates")
    out = {k: tuple(np.full(len(y), np.nan) for _ in range(3)) for k in kinds}
    for train, test in GroupKFold(n_splits=n_splits).split(y, y, groups):
        c_tr = {k: v[train] for k, v in cond.items()}
        c_te = {k: v[test] for k, v in cond.items()}
        for kind in kinds:
            res = _fit_predict(kind, c_tr, y[train], groups[train], c_te, wave, seed)
            for arr, part in zip(out[kind], res, strict=True):
                arr[test] = part
    return out
