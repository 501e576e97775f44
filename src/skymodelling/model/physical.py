"""The physically structured model: dark sky + moonlight + twilight.

For one target ``y`` (a continuum band in 1e-17 erg/s/cm2/A, or a line flux in
1e-17 erg/s/cm2) the prediction is the sum of three positive terms:

* **dark sky** (airglow, zodiacal light, starlight):
  ``D = exp(c0 + c1 (X - 1) + c2 (F81/100 - 1) + c3 (F/F81 - 1) + c4 h + c5 h^2
  + c6 cos(2 pi m/12) + c7 sin(2 pi m/12) + c8 (1 - PHOTO))
  + e^z ZODI/100 + e^s ISL/100``, with ``X`` the airmass, ``F``/``F81`` the
  10.7 cm solar flux of the day and its 81-day mean, ``h = (HOUR - 6)/6``
  (time since sunset), ``m`` the month, ZODI and ISL in S10;
* **moonlight** in the form of Krisciunas & Schaefer (1991, KS91 eq. 15-21) with
  fitted amplitudes: ``M = I*(alpha) e^(m3 alpha/90) [e^m0 10^5.36 (1.06 + cos^2 rho)
  + e^m1 10^(6.15 - rho/40)] 10^(-0.4 k X_moon) (1 - 10^(-0.4 k X))
  e^(m4 (1 - PHOTO)) / 1e3``, ``k = e^m2``, zero with the Moon below the horizon
  (``alpha`` phase angle in degrees, ``rho`` the Moon separation);
* **twilight**: ``T = exp(t0 + t1 (SUN_ALT + 18))``.

The parameters minimise a robust (soft-L1, scale 0.05) sum of squared log
residuals ``ln(pred / obs)``. The uncertainty is a model of the 68th
percentile of ``|ln(pred / obs)|``: ``s = exp(a0 + a1 f_moon + a2 f_twi + a3 (1 - PHOTO))``
with ``f_moon``, ``f_twi`` the fractions of the prediction from moonlight and
twilight, fitted by minimising the pinball loss on out-of-fold residuals when the
rows' groups (plates) are given (the residuals new plates have; the in-sample ones are
smaller), else on the in-sample residuals; the 68 % interval is
``pred exp(-s) .. pred exp(+s)``.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import least_squares, minimize

from ..errors import SkyModellingError
from ..sky.moon import ks91_optical_path, ks91_scattering_terms
from .columns import TIME_FEATURES

log = logging.getLogger(__name__)

PARAMS = ("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "z", "s",
          "m0", "m1", "m2", "m3", "m4", "t0", "t1")
SPREAD_PARAMS = ("a0", "a1", "a2", "a3")
#: Central probability of the prediction interval.
INTERVAL = 0.68
ROBUST_SCALE = 0.05
#: Folds of groups (plates) whose out-of-fold residuals the spread is fitted on.
INNER_FOLDS = 4
#: Below ``FULL_FIT_ROWS`` rows only these are fitted (m1 tied to m0, twilight off,
#: the rest at zero); below ``MIN_ROWS`` nothing is.
REDUCED = ("c0", "c1", "m0")
FULL_FIT_ROWS = 4 * len(PARAMS)
MIN_ROWS = 5


def components(cond: dict, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dark, moonlight and twilight terms for parameters ``p`` (order :data:`PARAMS`).

    Examples
    --------
    >>> from skymodelling.model.features import CONDITION_NAMES, conditions_arrays
    >>> c = {n: [1.0] for n in CONDITION_NAMES}
    >>> c.update(MOON_ALT=[-5.0], SUN_ALT=[-40.0], HOUR=[6.0], SOLARFLUX_81=[100.0])
    >>> p = np.zeros(len(PARAMS)); p[9] = p[10] = p[16] = -50.0
    >>> d, m, t = components(conditions_arrays(c), p)
    >>> float(m[0]), round(float(d[0]), 3)
    (0.0, 1.0)
    """
    p = dict(zip(PARAMS, np.asarray(p, dtype=float), strict=True))
    x = cond["AIRMASS"]
    h = (cond["HOUR"] - 6.0) / 6.0
    month = 2 * np.pi * cond["MONTH"] / 12.0
    cloud = 1.0 - cond["PHOTO"]
    f81 = cond["SOLARFLUX_81"]
    lin = (p["c0"] + p["c1"] * (x - 1) + p["c2"] * (f81 / 100 - 1)
           + p["c3"] * (cond["SOLARFLUX"] / f81 - 1) + p["c4"] * h + p["c5"] * h**2
           + p["c6"] * np.cos(month) + p["c7"] * np.sin(month) + p["c8"] * cloud)
    dark = (np.exp(np.clip(lin, -50, 50)) + np.exp(np.clip(p["z"], -50, 50)) * cond["ZODI"] / 100
            + np.exp(np.clip(p["s"], -50, 50)) * cond["ISL"] / 100)
    alpha = np.maximum(np.abs(np.degrees(cond["MOON_PHASE"])), 1.5)
    istar = 10.0 ** (-0.4 * (3.84 + 0.026 * alpha + 4.0e-9 * alpha**4))
    rayleigh, mie = ks91_scattering_terms(cond["MOON_SEP"])
    k = np.exp(np.clip(p["m2"], -50, 50))
    x_moon = ks91_optical_path(90.0 - np.clip(cond["MOON_ALT"], 0.0, 90.0))
    ext = 10.0 ** (-0.4 * k * x_moon) * (1.0 - 10.0 ** (-0.4 * k * x))
    moon = (istar * np.exp(np.clip(p["m3"] * alpha / 90.0, -50, 50))
            * (np.exp(np.clip(p["m0"], -50, 50)) * rayleigh
               + np.exp(np.clip(p["m1"], -50, 50)) * mie) * ext
            * np.exp(np.clip(p["m4"] * cloud, -50, 50)) / 1e3)
    moon = np.where(cond["MOON_ALT"] > 0.0, moon, 0.0)
    twilight = np.exp(np.clip(p["t0"] + p["t1"] * (cond["SUN_ALT"] + 18.0), -50, 50))
    return dark, moon, twilight


def predict_mean(cond: dict, p) -> np.ndarray:
    """The predicted target ``D + M + T``."""
    d, m, t = components(cond, p)
    return d + m + t


def spread(cond: dict, p, a) -> np.ndarray:
    """Half-width of the 68 % interval in ln units, for each row."""
    d, m, t = components(cond, p)
    total = d + m + t
    cloud = np.nan_to_num(1.0 - cond["PHOTO"], nan=0.5)
    a = np.asarray(a, dtype=float)
    return np.exp(a[0] + a[1] * m / total + a[2] * t / total + a[3] * cloud)


def _initial(cond: dict, y: np.ndarray) -> np.ndarray:
    p = np.zeros(len(PARAMS))
    dark = (cond["MOON_ALT"] < 0) & (cond["SUN_ALT"] < -18)
    base = np.median(y[dark]) if dark.sum() > 10 else np.median(y)
    p[PARAMS.index("c0")] = np.log(0.8 * base)
    p[PARAMS.index("z")] = p[PARAMS.index("s")] = np.log(0.05 * base)
    p[PARAMS.index("m2")] = np.log(0.2)
    probe = p.copy()
    probe[PARAMS.index("t0")] = -50.0
    unit = components(cond, probe)[1]            # moonlight for unit amplitudes
    moon = unit > 0
    if moon.sum() > 10:
        scale = np.median(np.maximum(y[moon] - base, 0.01 * base) / unit[moon])
        p[PARAMS.index("m0")] = p[PARAMS.index("m1")] = np.log(max(scale, 1e-12))
    else:
        p[PARAMS.index("m0")] = p[PARAMS.index("m1")] = np.log(1e-6 * base)
    p[PARAMS.index("t0")] = np.log(0.3 * base)
    p[PARAMS.index("t1")] = 0.7
    return p


def _pinball(r: np.ndarray, s: np.ndarray, q: float) -> float:
    d = r - s
    return float(np.mean(np.maximum(q * d, (q - 1) * d)))


def _group_folds(groups, k: int):
    """(train, test) index pairs of ``k`` folds whose groups do not overlap (groups
    sorted and dealt out in turn, largest first, so that the folds are of similar size)."""
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    fold_of = np.empty(labels.size, int)
    size = np.zeros(k)
    for g in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(size))
        fold_of[g] = f
        size[f] += counts[g]
    rows = fold_of[inverse]
    return [(np.flatnonzero(rows != f), np.flatnonzero(rows == f)) for f in range(k)]


def fit_physical(cond: dict, y, groups=None) -> dict:
    """Fit the structured model to positive targets ``y``.

    Parameters
    ----------
    cond : dict of numpy.ndarray
        From :func:`skymodelling.model.features.conditions_arrays`.
    y : array_like
        Targets; rows that are not finite and positive, or whose conditions
        are not finite, are ignored.
    groups : array_like, optional
        Group labels (plates). With at least :data:`INNER_FOLDS` groups, the spread is
        fitted on out-of-fold residuals (the model refitted without each of
        :data:`INNER_FOLDS` folds of groups, predicting the fold), as the residuals
        of new plates are; without, on the in-sample residuals, which are smaller.

    Returns
    -------
    dict
        ``params`` (name -> value), ``spread`` (name -> value), ``n_fit``,
        ``rms_log`` (in-sample rms of ln residuals), ``rms_log_oof`` (out-of-fold, with
        ``groups``; else None), ``fitted`` (the names of
        the free parameters: all, or :data:`REDUCED` below ``FULL_FIT_ROWS`` rows).

    Raises
    ------
    SkyModellingError
        Fewer than :data:`MIN_ROWS` usable rows.

    Examples
    --------
    >>> from skymodelling.model.features import conditions_arrays
    >>> from skymodelling.model.synthetic import synthetic_conditions, synthetic_sky
    >>> cond = conditions_arrays(synthetic_conditions(400, seed=2))
    >>> y = synthetic_sky(cond, seed=3)
    >>> fit = fit_physical(cond, y)
    >>> fit["rms_log"] < 0.1
    True
    """
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    for k, v in cond.items():
        if k not in TIME_FEATURES:          # the physical model does not use the epoch
            ok &= np.isfinite(v)
    c = {k: v[ok] for k, v in cond.items()}
    yy = y[ok]
    if len(yy) < MIN_ROWS:
        raise SkyModellingError(f"the physical model needs at least {MIN_ROWS} rows with a "
                                f"positive target and finite conditions, not {len(yy)}")
    p0 = _initial(c, yy)
    logy = np.log(yy)
    full = len(yy) >= FULL_FIT_ROWS
    free = np.arange(len(PARAMS)) if full else np.array([PARAMS.index(n) for n in REDUCED])
    if not full:
        p0[PARAMS.index("t0")] = -50.0
        log.info("physical fit on %d rows (< %d): only %s fitted", len(yy), FULL_FIT_ROWS,
                 ", ".join(REDUCED))

    def expand(q):
        p = p0.copy()
        p[free] = q
        if not full:
            p[PARAMS.index("m1")] = p[PARAMS.index("m0")]
        return p

    def resid(q):
        return np.log(np.maximum(predict_mean(c, expand(q)), 1e-30)) - logy

    res = least_squares(resid, p0[free], loss="soft_l1", f_scale=ROBUST_SCALE, x_scale="jac",
                        max_nfev=2000)
    p = expand(res.x)
    r = np.abs(resid(res.x))
    oof = False
    if groups is not None and full:
        g = np.asarray(groups)[ok]
        if np.unique(g).size >= INNER_FOLDS:
            # out-of-fold residuals: each fold predicted by a fit without it (started
            # from the full fit's parameters)
            for train, test in _group_folds(g, INNER_FOLDS):
                sub = {k: v[train] for k, v in c.items()}

                def resid_sub(q, sub=sub, train=train):
                    return np.log(np.maximum(predict_mean(sub, expand(q)), 1e-30)) - logy[train]

                fit_k = least_squares(resid_sub, res.x, loss="soft_l1", f_scale=ROBUST_SCALE,
                                      x_scale="jac", max_nfev=2000)
                held = {k: v[test] for k, v in c.items()}
                r[test] = np.abs(np.log(np.maximum(predict_mean(held, expand(fit_k.x)),
                                                   1e-30)) - logy[test])
            oof = True
    d, m, t = components(c, p)
    total = d + m + t
    cloud = 1.0 - c["PHOTO"]

    def loss(a):
        s = np.exp(a[0] + a[1] * m / total + a[2] * t / total + a[3] * cloud)
        return _pinball(r, s, INTERVAL)

    a0 = np.array([np.log(np.quantile(r, INTERVAL) + 1e-6), 0.0, 0.0, 0.0])
    if full:
        a = minimize(loss, a0, method="Nelder-Mead",
                     options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-8}).x
    else:
        a = a0
    log.debug("physical fit: %d rows, %d evaluations, rms %.4f", ok.sum(), res.nfev,
              np.sqrt(np.mean(r**2)))
    rms_in = float(np.sqrt(np.mean(resid(res.x) ** 2)))
    return {"params": dict(zip(PARAMS, map(float, p), strict=True)),
            "spread": dict(zip(SPREAD_PARAMS, map(float, a), strict=True)),
            "n_fit": int(ok.sum()), "rms_log": rms_in,
            "rms_log_oof": float(np.sqrt(np.mean(r**2))) if oof else None,
            "fitted": [PARAMS[i] for i in free]}


def predict_physical(fit: dict, cond: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction and 68 % interval (lower, upper) of a fitted structured model."""
    p = np.array([fit["params"][k] for k in PARAMS])
    a = np.array([fit["spread"][k] for k in SPREAD_PARAMS])
    mean = predict_mean(cond, p)
    s = spread(cond, p, a)
    return mean, mean * np.exp(-s), mean * np.exp(s)
