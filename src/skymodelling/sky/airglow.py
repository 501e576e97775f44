"""Airglow: OH Meinel and O2 bands, atomic lines, light pollution and pseudo-continuum.

All line lists are astropy Tables with columns ``WAVE`` (vacuum Angstrom),
``INTENSITY`` (rayleigh, zenith, reference conditions: solar flux 100 sfu, a few
hours after dusk), ``NAME`` and ``SPECIES``. Variations with solar activity,
season, time of night and airmass are applied by :mod:`skymodelling.sky.model`.

OH Meinel bands
---------------
Line positions are computed, not tabulated. Upper and lower levels of OH X 2Pi are
``T = G(v) + F_i(J)`` with

* ``G(v)`` a Dunham expansion with ``omega_e = 3737.761`` and
  ``omega_e x_e = 84.8813`` cm^-1 (Huber & Herzberg 1979, *Constants of Diatomic
  Molecules*), and effective higher-order terms ``omega_e y_e = 0.6670``,
  ``omega_e z_e = -0.04547`` cm^-1;
* ``F_1, F_2`` the Hill & Van Vleck (1928) term values for a 2Pi state in the form
  used for the Meinel bands by Krassovsky, Shefov & Yarin (1962, Planet. Space Sci.
  9, 883) and Chamberlain (1961, *Physics of the Aurora and Airglow*):
  ``F_{1,2}(J) = B_v[(J+1/2)^2 - 1 -/+ 1/2 sqrt(4(J+1/2)^2 + Y(Y-4))] - D_v J^4``
  (``(J+1)^4`` for F2) with ``Y = A/B_v``, ``A = -139.21`` cm^-1 (Huber & Herzberg
  1979; its weak v-dependence is neglected) and ``D_v = 1.9e-3`` cm^-1;
* effective rotational constants ``B_v`` (table ``_B_V`` below).

The starting constants (Huber & Herzberg 1979; B_v of Coxon 1980, Can. J. Phys. 58,
933, as remembered by the author) did not reproduce the sky lines to better than
~10 A at v = 9, so ``omega_e y_e``, ``omega_e z_e`` and a smooth correction to
``B_v`` were adjusted by least squares to nine P1 lines of the (6-2), (8-3) and
(9-3) bands (air wavelengths of Osterbrock et al. 1996, PASP 108, 277). On nine
other P1 lines of the (5-1), (7-2), (7-3) and (9-4) bands the computed positions
agree to 0.0-1.9 A (rms ~0.9 A). The F2 components and the Q and R branches are not
independently checked; expect errors of 1-3 A. Lambda-doubling (splittings below
~1 A at the J used here) is neglected.

Intensities: the band intensities (``OH_BAND_INTENSITY``, rayleigh) are NOT taken
from a single published table. Their pattern (Delta v = 3, 4 strongest in the
visible/NIR, each higher Delta v sequence ~5-10x weaker) follows the compilations of
Krassovsky et al. (1962) and Chamberlain (1961) and the Einstein coefficients of
Mies (1974, J. Mol. Spectrosc. 53, 150) and Turnbull & Lowe (1989, Planet. Space Sci.
37, 723) only qualitatively; the scale of each Delta v sequence was then tuned so
that the model dark sky at APO has SDSS r ~ 21.0, i ~ 20.1 and z ~ 19.0 mag/arcsec^2,
which puts the Delta v = 3, 4 bands at 1-3.5 kR, higher than the classical
compilations. Uncertain by a factor ~1.5-2 band by band.
Within a band the rotational distribution is a
Boltzmann distribution at ``T_rot = 190 K`` over the upper levels (including the
~126 cm^-1 spin-orbit splitting) times Hund's case (a) Honl-London factors with
``Omega = 3/2`` (F1) and ``1/2`` (F2), times ``nu^3``; an approximation.

Other emissions
---------------
O2 atmospheric (0-1) band, [OI], Na D, [NI] and the airglow continuum: see the
functions' docstrings.
"""
from __future__ import annotations

import functools

import numpy as np
from astropy.table import Table

from .units import air_to_vacuum

# --------------------------------------------------------------------------- OH
_WE = 3737.761
_WEXE = 84.8813
_WEYE = 0.6670
_WEZE = -0.04547
_A_SO = -139.21
_D_V = 1.9e-3
#: Effective rotational constants B_v (cm^-1) of OH X 2Pi, v = 0..9 (see module notes).
_B_V = np.array([19.2192, 18.4990, 17.8056, 17.1292, 16.4640, 15.8060,
                 15.1481, 14.4822, 13.7986, 13.0827])
#: Boltzmann constant in cm^-1 per kelvin (hc/k = 1.438777 cm K).
_K_CM = 1.0 / 1.438777

#: Representative zenith band intensities (rayleigh) of the OH Meinel bands with
#: lines in 3500-10500 A, for solar flux ~100 sfu a few hours after dusk (see module
#: notes; uncertain by ~x1.5 per band).
OH_BAND_INTENSITY: dict[tuple[int, int], float] = {
    (3, 0): 1400.0, (4, 1): 2000.0, (5, 2): 2200.0,
    (4, 0): 250.0, (5, 1): 1000.0, (6, 2): 2900.0, (7, 3): 3500.0, (8, 4): 3500.0,
    (9, 5): 2900.0,
    (5, 0): 120.0, (6, 1): 450.0, (7, 2): 800.0, (8, 3): 700.0, (9, 4): 650.0,
    (6, 0): 8.0, (7, 1): 25.0, (8, 2): 50.0, (9, 3): 90.0,
    (7, 0): 1.5, (8, 1): 5.0, (9, 2): 12.0,
    (8, 0): 0.5, (9, 1): 2.0,
    (9, 0): 0.25,
}

OH_T_ROT = 190.0
OH_J_MAX = 10.5


def oh_vibrational_term(v) -> np.ndarray:
    """Vibrational term value G(v) of OH X 2Pi in cm^-1 (effective Dunham expansion)."""
    x = np.asarray(v, dtype=float) + 0.5
    return _WE * x - _WEXE * x**2 + _WEYE * x**3 + _WEZE * x**4


def oh_rotational_term(v, j, component) -> np.ndarray:
    """Hill & Van Vleck rotational term F_1 or F_2 (cm^-1) of OH X 2Pi.

    Parameters
    ----------
    v : int
        Vibrational level, 0-9.
    j : array_like
        Total angular momentum J (half-integer).
    component : {1, 2}
        Spin component: 1 for F1 (Omega = 3/2, the lower one in OH), 2 for F2.
    """
    b = _B_V[v]
    y = _A_SO / b
    x = np.asarray(j, dtype=float) + 0.5
    root = 0.5 * np.sqrt(4.0 * x**2 + y * (y - 4.0))
    if component == 1:
        return b * (x**2 - 1.0 - root) - _D_V * (x - 0.5) ** 4
    return b * (x**2 - 1.0 + root) - _D_V * (x + 0.5) ** 4


def _honl_london(branch: str, j_up: np.ndarray, omega: float) -> np.ndarray:
    # Symmetric-top (Hund's case a) Honl-London factors for Delta Omega = 0, in
    # terms of the upper J (Herzberg 1950, Spectra of Diatomic Molecules, eq. V,111).
    if branch == "P":
        return (j_up + 1 - omega) * (j_up + 1 + omega) / (j_up + 1)
    if branch == "Q":
        return (2 * j_up + 1) * omega**2 / (j_up * (j_up + 1))
    return (j_up - omega) * (j_up + omega) / j_up


def oh_band_lines(v_up: int, v_low: int, t_rot: float = OH_T_ROT,
                  j_max: float = OH_J_MAX) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Lines of one OH Meinel band: vacuum wavelengths, relative strengths and names.

    The relative strengths sum to 1 over the band.

    Returns
    -------
    wave : numpy.ndarray
        Vacuum wavelength in Angstrom.
    weight : numpy.ndarray
        Fraction of the band intensity in each line.
    names : list of str
        E.g. ``'OH(6-2)P1(2.5)'`` (J of the lower level).
    """
    g0 = oh_vibrational_term(v_up) - oh_vibrational_term(v_low)
    e_ground = oh_rotational_term(v_up, 1.5, 1)
    waves, weights, names = [], [], []
    for comp, omega, jmin in ((1, 1.5, 1.5), (2, 0.5, 0.5)):
        j_low = np.arange(jmin, j_max + 0.1, 1.0)
        for branch, dj in (("P", -1.0), ("Q", 0.0), ("R", 1.0)):
            j_up = j_low + dj
            ok = j_up >= jmin
            jl, ju = j_low[ok], j_up[ok]
            sigma = g0 + oh_rotational_term(v_up, ju, comp) - oh_rotational_term(v_low, jl, comp)
            e_up = oh_rotational_term(v_up, ju, comp) - e_ground
            strength = (_honl_london(branch, ju, omega) * np.exp(-e_up / (_K_CM * t_rot))
                        * sigma**3)
            waves.append(1.0e8 / sigma)
            weights.append(strength)
            names += [f"OH({v_up}-{v_low}){branch}{comp}({j:.1f})" for j in jl]
    wave = np.concatenate(waves)
    weight = np.concatenate(weights)
    return wave, weight / weight.sum(), names


@functools.cache
def _oh_table_cached(t_rot: float, wave_min: float, wave_max: float) -> Table:
    waves, inten, names = [], [], []
    for (vu, vl), band in OH_BAND_INTENSITY.items():
        w, f, n = oh_band_lines(vu, vl, t_rot)
        waves.append(w)
        inten.append(band * f)
        names += n
    wave = np.concatenate(waves)
    keep = (wave >= wave_min) & (wave <= wave_max)
    names_arr = np.array(names)
    return Table({"WAVE": wave[keep], "INTENSITY": np.concatenate(inten)[keep],
                  "NAME": names_arr[keep], "SPECIES": np.full(keep.sum(), "OH")})


def oh_lines(t_rot: float = OH_T_ROT, wave_min: float = 3500.0,
             wave_max: float = 10500.0) -> Table:
    """OH Meinel band lines (v' <= 9) between ``wave_min`` and ``wave_max``.

    Parameters
    ----------
    t_rot : float
        Rotational temperature in kelvin.
    wave_min, wave_max : float
        Vacuum wavelength range in Angstrom.

    Returns
    -------
    astropy.table.Table
        Columns WAVE (vacuum A), INTENSITY (R, zenith), NAME, SPECIES ('OH').

    Examples
    --------
    >>> t = oh_lines()
    >>> bool(abs(t["WAVE"][t["NAME"] == "OH(6-2)P1(2.5)"][0] - 8401.5) < 2)
    True
    """
    return _oh_table_cached(float(t_rot), float(wave_min), float(wave_max)).copy()


# --------------------------------------------------------------------------- O2
#: O2 b1Sigma_g+ - X3Sigma_g- (0-1) band origin in cm^-1: the (0-0) origin 13120.9
#: minus Delta G_1/2(X) = 1556.4 (Huber & Herzberg 1979).
_O2_SIGMA0 = 13120.9 - 1556.4
_O2_B_UP = 1.3912   # b state, v = 0 (Huber & Herzberg 1979)
_O2_B_LOW = 1.4220  # X state, v = 1: B_e - alpha_e * 1.5 = 1.4456 - 0.0159 * 1.5
#: Zenith intensity of the O2 atmospheric (0-1) band, rayleigh (a few hundred R at
#: night, e.g. Slanger & Copeland 2003, Chem. Rev. 103, 4731).
O2_BAND_INTENSITY = 300.0


def o2_atmospheric_lines(t_rot: float = OH_T_ROT, n_max: int = 25) -> Table:
    """O2 atmospheric (0-1) band near 8650 A with a simple rotational model.

    Only odd N'' exist in the X state of 16O2. Each N'' gives an R line
    (J' = N''+1) and a P line (J' = N''-1) of the b state, with the triplet
    splitting of the lower level neglected (the PQ and RQ satellites, ~2 cm^-1
    away, are merged into their P and R neighbours). Strengths are (J'+1) for R,
    J' for P (approximate Honl-London factors) times a Boltzmann factor at
    ``t_rot`` over the upper levels.

    Returns
    -------
    astropy.table.Table
        Columns WAVE, INTENSITY (R), NAME, SPECIES ('O2').
    """
    n_low = np.arange(1, n_max + 1, 2, dtype=float)
    waves, weights, names = [], [], []
    for branch, dn in (("R", 1.0), ("P", -1.0)):
        j_up = n_low + dn
        ok = j_up >= 0
        jl, ju = n_low[ok], j_up[ok]
        sigma = _O2_SIGMA0 + _O2_B_UP * ju * (ju + 1) - _O2_B_LOW * jl * (jl + 1)
        hl = ju + 1 if branch == "R" else np.maximum(ju, 0.5)
        weights.append(hl * np.exp(-_O2_B_UP * ju * (ju + 1) / (_K_CM * t_rot)))
        waves.append(1.0e8 / sigma)
        names += [f"O2(0-1){branch}({int(n)})" for n in jl]
    w = np.concatenate(weights)
    return Table({"WAVE": np.concatenate(waves), "INTENSITY": O2_BAND_INTENSITY * w / w.sum(),
                  "NAME": np.array(names), "SPECIES": np.full(w.size, "O2")})


# ------------------------------------------------------------------ atomic lines
#: Atomic airglow lines: (name, species, air wavelength A, zenith intensity R at the
#: reference conditions). Wavelengths: NIST ASD. Intensities are typical mid-latitude
#: night values (e.g. Roach & Gordon 1973, *The Light of the Night Sky*; Hanuschik
#: 2003, A&A 407, 1157): [OI]5577 ~ 170 R at solar flux 100; [OI]6300 ~ 100 R at dusk
#: (it decays through the night, see model.py); [OI]6364 = 6300/3.1 (branching
#: ratio); Na D ~ 50 R annual mean (D2/D1 ~ 1.6); [NI] 5198/5200 ~ 1 R in total.
ATOMIC_LINES = (
    ("[OI]5577", "OI", 5577.339, 170.0),
    ("[OI]6300", "OI6300", 6300.304, 100.0),
    ("[OI]6364", "OI6300", 6363.776, 100.0 / 3.1),
    ("NaD2", "NaD", 5889.950, 31.0),
    ("NaD1", "NaD", 5895.924, 19.0),
    ("[NI]5198", "NI", 5197.90, 0.6),
    ("[NI]5200", "NI", 5200.26, 0.4),
)


def atomic_lines() -> Table:
    """[OI] 5577/6300/6364, Na D and [NI] 5198/5200 airglow lines.

    ``SPECIES`` is 'OI' for 5577, 'OI6300' for the red doublet (which varies
    differently), 'NaD' and 'NI'.

    Returns
    -------
    astropy.table.Table
        Columns WAVE (vacuum A), INTENSITY (R, zenith), NAME, SPECIES.
    """
    names, species, wair, inten = zip(*ATOMIC_LINES, strict=True)
    return Table({"WAVE": air_to_vacuum(np.array(wair)), "INTENSITY": np.array(inten),
                  "NAME": np.array(names), "SPECIES": np.array(species)})


#: Artificial lines near a dark site: (name, species, air wavelength, intensity R at
#: the zenith for a dark site such as APO). Hg lines from mercury-vapour and
#: fluorescent lamps and Na lines from high-pressure sodium (HPS) lamps (wavelengths
#: NIST ASD; line identifications as in Osterbrock et al. 1996, PASP 108, 277;
#: intensities are guesses of the right order for a dark site).
LIGHT_POLLUTION_LINES = (
    ("Hg4047", "Hg", 4046.56, 1.0),
    ("Hg4358", "Hg", 4358.34, 2.0),
    ("Hg5461", "Hg", 5460.75, 3.0),
    ("Hg5770", "Hg", 5769.60, 0.8),
    ("Hg5791", "Hg", 5790.66, 0.8),
    ("NaHPS4979", "NaHPS", 4978.5, 0.3),
    ("NaHPS4983", "NaHPS", 4982.8, 0.5),
    ("NaHPS5683", "NaHPS", 5682.6, 1.0),
    ("NaHPS5688", "NaHPS", 5688.2, 1.6),
    ("NaHPS6154", "NaHPS", 6154.2, 0.5),
    ("NaHPS6161", "NaHPS", 6160.7, 0.8),
    ("NaHPS8183", "NaHPS", 8183.3, 1.2),
    ("NaHPS8195", "NaHPS", 8194.8, 1.8),
)


def light_pollution_lines() -> Table:
    """Mercury and high-pressure-sodium emission lines (see ``LIGHT_POLLUTION_LINES``).

    The broad self-absorbed HPS emission around the Na D lines is a continuum:
    see :func:`hps_continuum`.

    Returns
    -------
    astropy.table.Table
        Columns WAVE (vacuum A), INTENSITY (R, zenith), NAME, SPECIES ('Hg', 'NaHPS').
    """
    names, species, wair, inten = zip(*LIGHT_POLLUTION_LINES, strict=True)
    return Table({"WAVE": air_to_vacuum(np.array(wair)), "INTENSITY": np.array(inten),
                  "NAME": np.array(names), "SPECIES": np.array(species)})


def airglow_lines() -> Table:
    """All natural airglow lines: OH, O2 (0-1), [OI], Na D and [NI] (a fresh Table)."""
    from astropy.table import vstack

    return vstack([oh_lines(), o2_atmospheric_lines(), atomic_lines()])


# ---------------------------------------------------------------------- continua
#: Peak of the broad HPS emission, rayleigh per Angstrom at the zenith (dark site).
HPS_PEAK_R_PER_A = 0.03


def hps_continuum(wave, peak: float = HPS_PEAK_R_PER_A) -> np.ndarray:
    """Broad, self-absorbed high-pressure-sodium emission around Na D, in R/A.

    HPS lamps emit the pressure-broadened Na D resonance lines, self-reversed at
    the line centre, spread over roughly 5500-6200 A (e.g. Osterbrock et al. 1976,
    PASP 88, 349; Elvidge et al. 2010). Modelled as a Lorentzian of 150 A
    half-width at half-maximum centred on 5893 A (air ~ 5894.6 vacuum) times a
    Gaussian self-absorption dip of 20 A sigma, truncated to 5450-6300 A.

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom.
    peak : float
        Peak intensity (R/A) of the unabsorbed profile.

    Returns
    -------
    numpy.ndarray
        Intensity in R/A (zenith).
    """
    wave = np.asarray(wave, dtype=float)
    x = wave - 5894.6
    prof = peak / (1.0 + (x / 150.0) ** 2) * (1.0 - 0.9 * np.exp(-0.5 * (x / 20.0) ** 2))
    taper = np.clip((wave - 5450.0) / 100.0, 0.0, 1.0) * np.clip((6300.0 - wave) / 100.0, 0.0, 1.0)
    return prof * taper


#: Share of the red ramp of :func:`airglow_continuum` that the independent sky model keeps
#: beside its explicit OH lines: the near-infrared continuum that is not OH lines. With
#: the whole ramp its fitted red continuum was 0.56-0.8 x real BOSS sky's (double
#: counting the faint OH lines), without it 1.25-1.6 x at 8000-10000 A; 0.35 puts it at
#: ~1 on the calibration set of ``benchmarks/bench_realsky.py --files 5`` (the first five
#: spec files of plate 7338; measured 2026-12-06).
NIR_CONTINUUM_SCALE = 0.35


def airglow_continuum(wave, unresolved_oh: float = 1.0) -> np.ndarray:
    """Airglow pseudo-continuum at the zenith in rayleigh per Angstrom.

    The visible airglow continuum (NO2 chemiluminescence from NO + O, peaking
    near 5500-6000 A, plus unresolved OH and O2 emission towards the red) is about
    0.2-0.3 R/A at 4000-4500 A and 0.4-0.6 R/A at 5000-6000 A (Sternberg & Ingham
    1972, MNRAS 159, 1; Noxon 1978, GRL 5, 25; Leinert et al. 1998, A&AS 127, 1,
    sect. 4.2), rising into the near infrared where unresolved OH lines dominate
    (Hanuschik 2003, A&A 407, 1157; Noll et al. 2012, A&A 543, A92). Modelled
    as a smooth log-normal NO2 hump plus a ramp for the unresolved OH/O2:
    ``0.15 + 0.45 exp(-0.5 (ln(lambda/5800)/0.22)^2) + 1.0 max(0, (lambda-6000)/3000)``
    ``+ 2.4 exp(-(lambda-3500)/400)`` for the O2 Herzberg I/Chamberlain bands
    that dominate the airglow below 4000 A (Slanger & Copeland 2003, Chem. Rev.
    103, 4731; Cosby et al. 2006, JGR 111, A12307)
    in R/A; an approximation good to a factor ~1.5. The Herzberg amplitude and the
    constant term are set so that the modelled dark sky at APO has SDSS u ~ 21.9
    and g ~ 22.2 mag/arcsec2 (SDSS imaging: u ~ 22.0, g ~ 21.9-22.2).

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength in Angstrom.
    unresolved_oh : float
        Multiplier of the red ramp (1: the original sparse line model, which lacks the
        faint OH lines that the ramp stands for). The independent sky model renders every
        OH line, the faint ones too, and keeps only :data:`NIR_CONTINUUM_SCALE` of it.

    Returns
    -------
    numpy.ndarray
        Zenith intensity in R/A at solar flux 100 sfu, mid-night.
    """
    wave = np.asarray(wave, dtype=float)
    no2 = 0.45 * np.exp(-0.5 * (np.log(wave / 5800.0) / 0.22) ** 2)
    red = unresolved_oh * np.maximum(0.0, (wave - 6000.0) / 3000.0)
    herzberg = 2.4 * np.exp(-(wave - 3500.0) / 400.0)
    return 0.15 + no2 + red + herzberg
