"""Rotational lines of the O2 atmospheric system b1Sigma_g+ - X3Sigma_g- from molecular constants.

Used for the (0-1) nightglow band near 8650 A (emission, :func:`o2_emission_lines`)
and for the telluric A (0-0, 7600 A) and B (1-0, 6880 A) absorption bands
(:func:`o2_absorption_lines`, used by :mod:`.telluric`).

Levels (cm^-1, vacuum wavenumbers):

* X3Sigma_g- (v = 0, 1), Hund's case (b): only odd N exist in 16O2; each N has
  three spin components J = N+1 (F1), N (F2), N-1 (F3) with the Schlapp (1937,
  Phys. Rev. 51, 342) term values
  ``F2 = B N(N+1) - D N^2(N+1)^2``,
  ``F1 = F2 + (2N+3)B - lambda - sqrt((2N+3)^2 B^2 + lambda^2 - 2 lambda B) + gamma (N+1)``,
  ``F3 = F2 - (2N-1)B - lambda + sqrt((2N-1)^2 B^2 + lambda^2 - 2 lambda B) - gamma N``;
* b1Sigma_g+ (v = 0, 1): ``T_v + B J(J+1) - D J^2(J+1)^2``, only even J.

Constants: X v=0 B = 1.437677, D = 4.842e-6, lambda = 1.984751, gamma = -0.008425;
X v=1 B = 1.421860, D = 4.84e-6, lambda = 1.98957, gamma = -0.00847, G(1)-G(0) =
1556.385; b v=0 T = 13120.9085 (above X v=0 N=0), B = 1.391250, D = 5.37e-6;
b v=1 T = 14525.66, B = 1.37354, D = 5.4e-6 (Huber & Herzberg 1979, *Constants of
Diatomic Molecules*; Rouille et al. 1992, J. Mol. Spectrosc. 154, 372; rounded as
transcribed by the author: line positions good to ~0.05 cm^-1 at low N, i.e. ~0.04 A).

Branches (b J' <-> X N'', J''; J' = N' as b is a singlet): ^PP (J' = N''-1 = J''-1),
^PQ (J' = N''-1 = J''), ^RR (J' = N''+1 = J''+1), ^RQ (J' = N''+1 = J''). Relative
line strengths (magnetic-dipole Honl-London factors) are approximated as equal for
the four branches, ``(2J'+1)/4`` per branch and upper level: at BOSS resolution the
band's shape is set by the rotational distribution; an approximation.
"""
from __future__ import annotations

import numpy as np

#: Boltzmann constant in cm^-1 per kelvin.
K_CM = 1.0 / 1.438777
#: Real / simulated brightness of the O2 atmospheric (0-1) band in real BOSS sky, which
#: multiplies the band intensity of the independent sky model (``O2_BAND_INTENSITY`` of
#: :mod:`.airglow`): measured like ``OH_REAL_SCALE`` of :mod:`.oh_meinel` (the same
#: calibration set, ``benchmarks/bench_ohbands.py``; held out: 2.1).
O2_REAL_SCALE = 1.98

_X = {0: dict(G=0.0, B=1.437677, D=4.842e-6, lam=1.984751, gam=-0.008425),
      1: dict(G=1556.385, B=1.421860, D=4.84e-6, lam=1.98957, gam=-0.00847)}
_B = {0: dict(T=13120.9085, B=1.391250, D=5.37e-6),
      1: dict(T=14525.66, B=1.37354, D=5.4e-6)}


def x_term(v: int, n, j) -> np.ndarray:
    """Term value (cm^-1, above X v=0 N=0) of X3Sigma_g- level v, N, J (J in N-1..N+1)."""
    c = _X[v]
    n = np.asarray(n, dtype=float)
    j = np.asarray(j, dtype=float)
    b, lam, gam = c["B"], c["lam"], c["gam"]
    f2 = b * n * (n + 1) - c["D"] * n**2 * (n + 1) ** 2
    f1 = f2 + (2 * n + 3) * b - lam - np.sqrt((2 * n + 3) ** 2 * b**2 + lam**2
                                             - 2 * lam * b) + gam * (n + 1)
    f3 = f2 - (2 * n - 1) * b - lam + np.sqrt((2 * n - 1) ** 2 * b**2 + lam**2
                                             - 2 * lam * b) - gam * n
    return c["G"] + np.where(j > n, f1, np.where(j < n, f3, f2))


def b_term(v: int, j) -> np.ndarray:
    """Term value (cm^-1) of b1Sigma_g+ level v, J."""
    c = _B[v]
    j = np.asarray(j, dtype=float)
    return c["T"] + c["B"] * j * (j + 1) - c["D"] * j**2 * (j + 1) ** 2


def band_lines(v_up: int, v_low: int, n_max: int = 41):
    """All lines of the b(v_up) - X(v_low) band up to N'' = ``n_max``.

    Returns
    -------
    sigma : numpy.ndarray
        Vacuum wavenumber (cm^-1).
    j_up, n_low, j_low : numpy.ndarray
        Quantum numbers.
    hl : numpy.ndarray
        Relative line strength (see module notes).
    names : list of str
        E.g. ``'O2(0-1)PP(7)'`` (branch and N'').
    """
    n_low = np.arange(1, n_max + 1, 2, dtype=float)
    out_s, out_ju, out_n, out_jl, names = [], [], [], [], []
    for branch, dn, dj in (("PP", -1, -1), ("PQ", -1, 0), ("RR", 1, 1), ("RQ", 1, 0)):
        j_up = n_low + dn
        j_low = j_up - dj
        ok = (j_up >= 0) & (j_low >= 0) & (np.abs(j_low - n_low) <= 1)
        ju, nl, jl = j_up[ok], n_low[ok], j_low[ok]
        out_s.append(b_term(v_up, ju) - x_term(v_low, nl, jl))
        out_ju.append(ju)
        out_n.append(nl)
        out_jl.append(jl)
        names += [f"O2({v_up}-{v_low}){branch}({int(n)})" for n in nl]
    ju = np.concatenate(out_ju)
    return (np.concatenate(out_s), ju, np.concatenate(out_n), np.concatenate(out_jl),
            (2 * ju + 1) / 4.0, names)


def o2_emission_lines(t_rot: float = 190.0, v_up: int = 0, v_low: int = 1):
    """Relative photon emission rates of the lines of one O2 atmospheric band.

    Upper levels Boltzmann-populated at ``t_rot``; each line's share is its
    upper level's population times its branching (strength over the sum of the
    strengths from that level) times ``(sigma / sigma_0)^3``.

    Returns
    -------
    wave : numpy.ndarray
        Vacuum wavelength (A).
    weight : numpy.ndarray
        Fraction of the band's photons in each line (sums to 1).
    names : list of str

    Examples
    --------
    >>> import numpy as np
    >>> w, f, n = o2_emission_lines()
    >>> bool(8600 < w[np.argmax(f)] < 8700 and abs(f.sum() - 1) < 1e-12)
    True
    """
    sigma, ju, _, _, hl, names = band_lines(v_up, v_low)
    e_up = b_term(v_up, ju) - b_term(v_up, 0)
    total = np.zeros(int(ju.max()) + 1)
    np.add.at(total, ju.astype(int), hl)
    branching = hl / total[ju.astype(int)]
    sigma0 = _B[v_up]["T"] - _X[v_low]["G"]
    w = (2 * ju + 1) * np.exp(-e_up / (K_CM * t_rot)) * branching * (sigma / sigma0) ** 3
    return 1.0e8 / sigma, w / w.sum(), names


def o2_absorption_lines(v_up: int, temperature: float = 250.0):
    """Line positions and relative absorption strengths of the b(v_up) <- X(0) band.

    Strength ~ (lower-level Boltzmann factor at ``temperature``) x (line strength);
    normalised to sum to 1.

    Returns
    -------
    sigma : numpy.ndarray
        Vacuum wavenumber (cm^-1).
    weight : numpy.ndarray
    """
    sigma, _, nl, jl, hl, _ = band_lines(v_up, 0)
    e_low = x_term(0, nl, jl) - x_term(0, 1, 0)
    w = hl * np.exp(-e_low / (K_CM * temperature)) * sigma
    return sigma, w / w.sum()
