"""The full OH Meinel line list of the simulator: thousands of lines, main and satellite branches.

Positions
    Term values of OH X2Pi from :func:`skymodelling.sky.airglow.oh_vibrational_term`
    and :func:`~skymodelling.sky.airglow.oh_rotational_term` (Hill & Van Vleck
    F1/F2 with effective constants; their derivation and accuracy are documented
    there and checked in ``tests/test_sky_oh_meinel.py``). Lambda doubling is
    neglected (the e/f components coincide).
Line strengths
    Intermediate coupling, computed rather than tabulated: for each J the 2x2
    Hamiltonian of a 2Pi state in the Hund's case (a) basis (Omega = 3/2, 1/2),
    ``H33 = A/2 + B(x^2 - 2)``, ``H11 = -A/2 + B x^2``, ``H13 = -B sqrt(x^2 - 1)``
    with ``x = J + 1/2`` (e.g. Brown & Carrington 2003, *Rotational Spectroscopy of
    Diatomic Molecules*, ch. 8), is diagonalised (F1 the lower eigenvector: OH is
    inverted, A < 0). A parallel (Delta Omega = 0) vibrational transition of case
    (a) states has the amplitude ``sqrt((2J'+1)(2J''+1)) 3j(J' 1 J''; Omega 0 -Omega)``,
    so an F_i(J') -> F_k(J'') line has the strength
    ``S = (2J'+1)(2J''+1) [sum_Omega c'_Omega c''_Omega 3j(...)]^2``: P, Q and R
    branches of F1 and F2 and the satellite branches P12, Q12, R12, P21, Q21, R21
    (upper F_i, lower F_k), summing to 2J'+1 over the lines from each upper level.
    The vibrational transition moment is taken the same for both Omega, and the
    rotational dependence of the band transition moment (Herman-Wallis) is neglected.
Intensities
    ``I(line) = I_band x P(J', F_i) x S / (2J'+1) x (sigma / sigma_band)^3 / norm``:
    the band photon emission rate ``I_band`` (rayleigh, :data:`~skymodelling.sky.airglow.
    OH_BAND_INTENSITY` times :data:`OH_REAL_SCALE` (measured on real BOSS sky) times
    ``vib_scale[v']``: the product N(v') A(v', v'') of the
    upper vibrational population and the band Einstein coefficient; no published
    table of A(v', v'') was available offline, so the rates are the
    brightness-tuned values documented in :mod:`.airglow`), the upper-level
    population ``P`` a two-temperature Boltzmann distribution (a thermalised
    component at ``t_rot`` = 190 K and a fraction ``hot_fraction`` = 0.05 at
    ``t_hot`` = 1000 K, after the bimodal populations of Noll et al. 2020,
    ACP 20, 5269, simplified to one hot temperature for all v').
    With J' up to 30.5 this gives ~8,000 lines, most of them far too faint to be
    seen one by one: together they make the OH pseudo-continuum.
"""
from __future__ import annotations

import functools

import numpy as np
from astropy.table import Table
from scipy.special import gammaln

from .airglow import (
    _A_SO,
    _B_V,
    _K_CM,
    OH_BAND_INTENSITY,
    oh_rotational_term,
    oh_vibrational_term,
)

#: Real / simulated brightness of the OH bands in real BOSS sky, by which the simulator's
#: band intensities (``OH_BAND_INTENSITY`` of :mod:`.airglow`, brightness-tuned values
#: uncertain by a factor 1.5-2 band by band) are multiplied: the medians over the 38
#: exposures of the first five spec files of plate 7338 in ../shared/realsky (MJD
#: 56660-57038; the other five held out) measured by ``benchmarks/bench_ohbands.py`` on
#: 2026-12-06, in the spec files' calibration (the sky calibrated like a point source,
#: telluric bands divided out like the standard stars'). Bands whose simulated flux in a
#: camera is too small to be measured keep 1 ((5-0) and (7-1) keep the value of a first
#: pass, when they were 10-20 x brighter); a band seen by both cameras takes the camera
#: where it is brighter; (4-1), at the red camera's end, is capped at 3. Measured at one
#: field, 2014-2015 (near solar maximum); night-to-night the held-out scales differ by
#: 10-40 % (RESULTS.md, section ohbands).
OH_REAL_SCALE: dict[tuple[int, int], float] = {
    (3, 0): 0.82, (4, 0): 0.53, (4, 1): 2.9, (5, 0): 0.06, (5, 1): 0.76, (6, 1): 0.16,
    (6, 2): 0.47, (7, 1): 0.22, (7, 2): 0.22, (7, 3): 0.60, (8, 2): 2.0, (8, 3): 0.66,
    (8, 4): 1.11, (9, 3): 0.77, (9, 4): 0.99, (9, 5): 1.52,
}

J_MAX = 30.5
T_ROT = 190.0
T_HOT = 1000.0
HOT_FRACTION = 0.05
#: Relative sign of the Omega = 1/2 amplitude (phase convention of the 2x2
#: eigenvectors); chosen so that satellite branches are weak in the case (b)
#: limit (tested).
_PHASE = -1.0


def wigner3j(j1, j2, j3, m1, m2, m3) -> np.ndarray:
    """Wigner 3j symbols (Racah formula), vectorised over array arguments."""
    j1, j2, j3, m1, m2, m3 = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                                   for a in (j1, j2, j3, m1, m2, m3)))
    ok = ((np.abs(m1 + m2 + m3) < 1e-9) & (np.abs(m1) <= j1) & (np.abs(m2) <= j2)
          & (np.abs(m3) <= j3) & (j3 >= np.abs(j1 - j2)) & (j3 <= j1 + j2))
    j1, j2, j3 = (np.where(ok, a, 1.0) for a in (j1, j2, j3))
    m1, m2, m3 = (np.where(ok, a, 0.0) for a in (m1, m2, m3))
    lf = lambda x: gammaln(np.maximum(x, 0.0) + 1.0)  # noqa: E731
    log_pre = 0.5 * (lf(j1 + j2 - j3) + lf(j1 - j2 + j3) + lf(-j1 + j2 + j3)
                     - lf(j1 + j2 + j3 + 1) + lf(j1 + m1) + lf(j1 - m1) + lf(j2 + m2)
                     + lf(j2 - m2) + lf(j3 + m3) + lf(j3 - m3))
    total = np.zeros(j1.shape)
    kmax = int(np.max(j1 + j2 + j3)) + 2
    for k in range(kmax):
        args = np.broadcast_arrays(np.full(j1.shape, float(k)), j1 + j2 - j3 - k, j1 - m1 - k,
                                   j2 + m2 - k, j3 - j2 + m1 + k, j3 - j1 - m2 + k)
        valid = np.all([a >= -1e-9 for a in args], axis=0)
        if not valid.any():
            continue
        term = np.exp(log_pre - sum(lf(a) for a in args))
        total += np.where(valid, (-1.0) ** k * term, 0.0)
    sign = (-1.0) ** np.round(j1 - j2 - m3)
    return np.where(ok, sign * total, 0.0)


def mixing(v: int, j) -> np.ndarray:
    """Case (a) components of F1 and F2 at J: array (..., 2 states, 2 [Omega=3/2, 1/2])."""
    b = _B_V[v]
    x2 = (np.asarray(j, dtype=float) + 0.5) ** 2
    h33 = _A_SO / 2.0 + b * (x2 - 2.0)
    h11 = -_A_SO / 2.0 + b * x2
    h13 = -b * np.sqrt(np.maximum(x2 - 1.0, 0.0))
    mat = np.stack([np.stack([h33, h13], -1), np.stack([h13, h11], -1)], -2)
    _, vec = np.linalg.eigh(mat)       # ascending: column 0 = F1, column 1 = F2
    out = np.swapaxes(vec, -1, -2).copy()   # (..., state, omega)
    # J = 1/2 has only Omega = 1/2: it is an F2 level
    half = np.isclose(np.asarray(j, dtype=float), 0.5)
    out[half] = np.array([[0.0, 0.0], [0.0, 1.0]])
    # fix the overall sign of each eigenvector (largest component positive)
    big = np.take_along_axis(out, np.argmax(np.abs(out), -1)[..., None], -1)
    return out * np.sign(big)


def line_strengths(v_up: int, v_low: int, j_up, j_low, f_up, f_low) -> np.ndarray:
    """Intermediate-coupling line strengths S (see module notes); f = 1 or 2."""
    j_up = np.asarray(j_up, dtype=float)
    j_low = np.asarray(j_low, dtype=float)
    cu = mixing(v_up, j_up)[np.arange(j_up.size), np.asarray(f_up) - 1]
    cl = mixing(v_low, j_low)[np.arange(j_low.size), np.asarray(f_low) - 1]
    amp = np.zeros(j_up.size)
    for k, omega in enumerate((1.5, 0.5)):
        phase = 1.0 if k == 0 else _PHASE
        amp += phase * cu[:, k] * cl[:, k] * wigner3j(j_up, 1.0, j_low, omega, 0.0, -omega)
    return (2 * j_up + 1) * (2 * j_low + 1) * amp**2


_BRANCH = {-1.0: "P", 0.0: "Q", 1.0: "R"}


def band_lines(v_up: int, v_low: int, j_max: float = J_MAX):
    """Every line of one band: sigma (cm^-1), J', J'', F', F'', S, names."""
    rows = []
    for f_up in (1, 2):
        for f_low in (1, 2):
            j_low = np.arange(1.5 if f_low == 1 else 0.5, j_max + 0.1, 1.0)
            for dj in (-1.0, 0.0, 1.0):
                j_up = j_low + dj
                ok = (j_up >= (1.5 if f_up == 1 else 0.5)) & (j_up <= j_max)
                if ok.any():
                    rows.append((f_up, f_low, dj, j_up[ok], j_low[ok]))
    sig, ju, jl, fu, fl, names = [], [], [], [], [], []
    for f_up, f_low, dj, j_up, j_low in rows:
        s = (oh_vibrational_term(v_up) - oh_vibrational_term(v_low)
             + oh_rotational_term(v_up, j_up, f_up) - oh_rotational_term(v_low, j_low, f_low))
        sig.append(s)
        ju.append(j_up)
        jl.append(j_low)
        fu.append(np.full(j_up.size, f_up))
        fl.append(np.full(j_up.size, f_low))
        label = f"{f_up}" if f_up == f_low else f"{f_up}{f_low}"
        names += [f"OH({v_up}-{v_low}){_BRANCH[dj]}{label}({j:.1f})" for j in j_low]
    ju, jl, fu, fl = (np.concatenate(a) for a in (ju, jl, fu, fl))
    return (np.concatenate(sig), ju, jl, fu, fl,
            line_strengths(v_up, v_low, ju, jl, fu, fl), names)


def upper_population(v: int, j, f, t_rot: float = T_ROT, t_hot: float = T_HOT,
                     hot_fraction: float = HOT_FRACTION) -> np.ndarray:
    """Two-temperature rotational population of OH(v, F_f, J), normalised over all levels."""
    grid_j = np.arange(0.5, 60.6, 1.0)
    levels_j = np.concatenate([grid_j[1:], grid_j])
    levels_f = np.concatenate([np.ones(grid_j.size - 1, int), np.full(grid_j.size, 2)])
    e0 = oh_rotational_term(v, 1.5, 1)

    def energy(jj, ff):
        return np.where(ff == 1, oh_rotational_term(v, jj, 1), oh_rotational_term(v, jj, 2)) - e0

    e_all = energy(levels_j, levels_f)
    e = energy(np.asarray(j, float), np.asarray(f))
    out = np.zeros(np.shape(e))
    for frac, t in ((1.0 - hot_fraction, t_rot), (hot_fraction, t_hot)):
        q = np.sum((2 * levels_j + 1) * np.exp(-e_all / (_K_CM * t)))
        out += frac * (2 * np.asarray(j, float) + 1) * np.exp(-e / (_K_CM * t)) / q
    return out


@functools.cache
def _table(t_rot, t_hot, hot_fraction, vib_key, wave_min, wave_max) -> Table:
    vib = dict(vib_key)
    waves, inten, names = [], [], []
    for (vu, vl), band in OH_BAND_INTENSITY.items():
        sig, ju, jl, fu, fl, s, nm = band_lines(vu, vl)
        pop = upper_population(vu, ju, fu, t_rot, t_hot, hot_fraction)
        sigma0 = oh_vibrational_term(vu) - oh_vibrational_term(vl)
        w = pop * s / (2 * ju + 1) * (sig / sigma0) ** 3
        waves.append(1.0e8 / sig)
        inten.append(band * OH_REAL_SCALE.get((vu, vl), 1.0) * vib.get(vu, 1.0)
                     * w / w.sum())
        names += nm
    wave = np.concatenate(waves)
    keep = (wave >= wave_min) & (wave <= wave_max)
    return Table({"WAVE": wave[keep], "INTENSITY": np.concatenate(inten)[keep],
                  "NAME": np.array(names)[keep], "SPECIES": np.full(keep.sum(), "OH")})


def oh_meinel_lines(t_rot: float = T_ROT, t_hot: float = T_HOT,
                    hot_fraction: float = HOT_FRACTION, vib_scale: dict | None = None,
                    wave_min: float = 3500.0, wave_max: float = 11200.0) -> Table:
    """The full OH Meinel line list between ``wave_min`` and ``wave_max`` (vacuum A).

    Parameters
    ----------
    t_rot : float
        Rotational temperature (K) of the thermalised population.
    t_hot, hot_fraction : float
        Temperature and fraction of the hot rotational population.
    vib_scale : dict of int to float, optional
        Multiplier of the upper vibrational population v' (default 1 for all).
    wave_min, wave_max : float

    Returns
    -------
    astropy.table.Table
        WAVE (vacuum A), INTENSITY (R, zenith), NAME (e.g. ``OH(6-2)P1(2.5)``,
        ``OH(6-2)Q12(1.5)``; J of the lower level), SPECIES ('OH').

    Examples
    --------
    >>> t = oh_meinel_lines()
    >>> len(t) > 5000
    True
    """
    key = tuple(sorted((vib_scale or {}).items()))
    return _table(float(t_rot), float(t_hot), float(hot_fraction), key, float(wave_min),
                  float(wave_max)).copy()
