"""A synthetic high-resolution solar spectrum for the simulator's moonlight and zodiacal light.

Independent of ``data/solar_spectrum.csv`` (the ASTM G173 ~1 nm table that the
decompose stage uses as its template), so that the simulated sky does not contain
the decomposition's own template. Built on a 0.02 A grid from published constants:

* continuum: a Planck function at the IAU 2015 nominal solar effective temperature
  ``T_eff = 5772 K`` (Prsa et al. 2016, AJ 152, 41, Resolution B3), scaled to the
  nominal total solar irradiance 1361 W m^-2 at 1 AU, times a smooth correction
  (the ASTM G173 table over the line-blanketed Planck function, both in 100 A bins,
  smoothed with a 250 A Gaussian): the real solar continuum is not a black body, and
  this keeps the broad-band colours of the Sun while none of the ASTM table's
  ~1 nm structure (what decompose's template carries) survives the smoothing;
* strong Fraunhofer lines (``STRONG_LINES``): air wavelengths and equivalent widths
  of the Rowland-table lines (Moore, Minnaert & Houtgast 1966, *The Solar Spectrum
  2935 A to 8770 A*, NBS Monograph 61), as rounded values transcribed by the author
  (equivalent widths good to ~10-20 %); Lorentzian optical-depth profiles with a
  central optical depth of 2.3 (central depth 0.9), the width set by the
  equivalent width;
* the weak-line forest: ~13,000 lines at seeded pseudo-random positions (NOT real
  solar line positions), Gaussian profiles of 0.06 A x (lambda / 5000 A) sigma,
  equivalent widths exponentially distributed with mean 0.04 A, and a line
  density set so that the fraction of the continuum they remove is
  ``BLANKETING(lambda) = 0.45 exp(-(lambda - 3500 A) / 900 A) + 0.02`` (about
  30 % at 4000 A, 12 % at 5000 A, 3 % at 8000 A: the order of the solar line
  blanketing, e.g. Gray, *The Observation and Analysis of Stellar Photospheres*).

The result is an approximation of the Sun at high resolution: the strong lines are
where they are on the Sun, the forest has the Sun's statistics but not its line
positions, and the broad-band shape follows the ASTM table to ~10 % (tested in
``tests/test_sky_solar_synth.py``). Everything here is computed: no data file,
nothing to license.
"""
from __future__ import annotations

import functools

import numpy as np

from .units import air_to_vacuum

T_EFF = 5772.0
TSI_ERG = 1.361e6            # erg s^-1 cm^-2 (1361 W m^-2)
FINE_STEP = 0.02             # Angstrom
WAVE_MIN, WAVE_MAX = 3000.0, 11500.0
FOREST_SEED = 20161
FOREST_MEAN_EW = 0.04        # Angstrom
_TAU0_STRONG = 2.3

#: (air wavelength A, equivalent width A, identification): strong solar lines,
#: rounded Rowland-table values (Moore, Minnaert & Houtgast 1966).
STRONG_LINES = (
    (3581.20, 2.1, "Fe I"), (3719.94, 1.7, "Fe I"), (3734.87, 3.0, "Fe I"),
    (3749.49, 1.9, "Fe I"), (3820.43, 1.7, "Fe I"), (3832.31, 1.7, "Mg I"),
    (3838.30, 1.9, "Mg I"), (3859.91, 1.6, "Fe I"), (3933.66, 20.0, "Ca II K"),
    (3944.01, 0.5, "Al I"), (3961.53, 0.6, "Al I"), (3968.47, 15.0, "Ca II H"),
    (4045.82, 1.2, "Fe I"), (4101.75, 3.1, "H delta"), (4226.74, 1.5, "Ca I"),
    (4271.77, 0.8, "Fe I"), (4325.77, 0.8, "Fe I"), (4340.47, 2.9, "H gamma"),
    (4383.55, 1.0, "Fe I"), (4404.76, 0.9, "Fe I"), (4861.34, 3.7, "H beta"),
    (4957.61, 0.7, "Fe I"), (5167.33, 0.9, "Mg I b4"), (5172.70, 1.3, "Mg I b2"),
    (5183.62, 1.6, "Mg I b1"), (5269.55, 0.5, "Fe I"), (5328.05, 0.4, "Fe I"),
    (5371.50, 0.3, "Fe I"), (5405.79, 0.3, "Fe I"), (5889.97, 0.75, "Na I D2"),
    (5895.94, 0.56, "Na I D1"), (6122.23, 0.22, "Ca I"), (6162.18, 0.22, "Ca I"),
    (6562.81, 4.0, "H alpha"), (8498.02, 1.5, "Ca II"), (8542.09, 3.7, "Ca II"),
    (8662.14, 2.6, "Ca II"), (8806.76, 0.5, "Mg I"),
)


def blanketing(wave) -> np.ndarray:
    """Fraction of the continuum removed by the weak-line forest (see module notes)."""
    wave = np.asarray(wave, dtype=float)
    return 0.45 * np.exp(-(wave - 3500.0) / 900.0) + 0.02


def planck_irradiance(wave) -> np.ndarray:
    """Solar continuum at 1 AU: a 5772 K Planck function scaled to 1361 W m^-2 (erg/s/cm2/A)."""
    lam = np.asarray(wave, dtype=float) * 1e-8  # cm
    h, c, k = 6.62607015e-27, 2.99792458e10, 1.380649e-16
    b = 2 * h * c**2 / lam**5 / np.expm1(h * c / (lam * k * T_EFF))  # erg/s/cm2/cm/sr
    sigma_sb = 5.670374419e-5
    # pi B integrated over wavelength is sigma T^4: scale to TSI
    return np.pi * b * (TSI_ERG / (sigma_sb * T_EFF**4)) * 1e-8


def _lorentz_ew_factor(tau0: float) -> float:
    # EW of 1 - exp(-tau0 / (1 + x^2)) in units of the half width
    x = np.linspace(-2000.0, 2000.0, 400001)
    return float(np.trapezoid(1.0 - np.exp(-tau0 / (1.0 + x * x)), x))


def _forest(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # line density per A so that density x mean EW = blanketing
    grid = np.arange(WAVE_MIN, WAVE_MAX, 1.0)
    dens = blanketing(grid) / FOREST_MEAN_EW
    cum = np.concatenate([[0.0], np.cumsum(dens)])
    n = int(cum[-1])
    u = np.sort(rng.uniform(0.0, cum[-1], n))
    pos = np.interp(u, cum, np.append(grid, grid[-1] + 1.0))
    ew = rng.exponential(FOREST_MEAN_EW, n)
    return pos, ew


def _continuum_correction(wave, flux) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    from .solar import load_solar_table

    tw, tf = load_solar_table()
    centres = np.arange(3100.0, 11000.0, 100.0)
    edges = np.concatenate([centres - 50.0, [centres[-1] + 50.0]])

    def binned(w, f):
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(w))])
        c = np.interp(edges, w, cum)
        return np.diff(c) / 100.0

    ratio = binned(tw, tf) / binned(wave, flux)
    ratio = gaussian_filter1d(ratio, 2.5, mode="nearest")
    return np.interp(wave, centres, ratio)


@functools.cache
def _fine_spectrum() -> tuple[np.ndarray, np.ndarray]:
    wave = np.arange(WAVE_MIN, WAVE_MAX, FINE_STEP)
    tau = np.zeros_like(wave)
    # strong lines: Lorentzian optical depth, whole range within +-60 half widths
    g = _lorentz_ew_factor(_TAU0_STRONG)
    for w_air, ew, _ in STRONG_LINES:
        w0 = float(air_to_vacuum(w_air))
        hw = ew / g
        lo, hi = np.searchsorted(wave, [w0 - 60 * hw - 1, w0 + 60 * hw + 1])
        x = (wave[lo:hi] - w0) / hw
        tau[lo:hi] += _TAU0_STRONG / (1.0 + x * x)
    # weak forest: Gaussians within +-4 sigma, vectorised over lines
    pos, ew = _forest(np.random.default_rng(FOREST_SEED))
    sigma = 0.06 * pos / 5000.0
    half = int(np.ceil(4 * sigma.max() / FINE_STEP))
    k = np.arange(-half, half + 1)
    idx = np.floor((pos - WAVE_MIN) / FINE_STEP + 0.5).astype(np.int64)[:, None] + k
    ok = (idx >= 0) & (idx < wave.size)
    idx_c = np.clip(idx, 0, wave.size - 1)
    dx = wave[idx_c] - pos[:, None]
    prof = ew[:, None] / (np.sqrt(2 * np.pi) * sigma[:, None]) * np.exp(
        -0.5 * (dx / sigma[:, None]) ** 2)
    tau += np.bincount(idx_c[ok], weights=prof[ok], minlength=wave.size)
    flux = planck_irradiance(wave) * np.exp(-tau)
    flux *= _continuum_correction(wave, flux)
    wave.setflags(write=False)
    flux.setflags(write=False)
    return wave, flux


def synthetic_solar_spectrum(wave, bin_width: float | None = None) -> np.ndarray:
    """The synthetic solar irradiance at 1 AU on ``wave`` (erg s^-1 cm^-2 A^-1, vacuum A).

    Parameters
    ----------
    wave : array_like
        Vacuum wavelengths in Angstrom, 3000-11500 A.
    bin_width : float, optional
        If given, the mean over a bin of this width (A) centred on each wavelength
        (flux-conserving, for a grid of that step); otherwise the 0.02 A spectrum
        interpolated.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> f = synthetic_solar_spectrum(np.array([5000.0, 8000.0]), bin_width=50.0)
    >>> bool(150 < f[0] < 230 and 80 < f[1] < 140)
    True
    """
    fw, ff = _fine_spectrum()
    wave = np.asarray(wave, dtype=float)
    if bin_width is None:
        return np.interp(wave, fw, ff)
    cum = np.concatenate([[0.0], np.cumsum(ff) * FINE_STEP])
    edges = np.concatenate([[fw[0] - 0.5 * FINE_STEP], fw + 0.5 * FINE_STEP])
    lo = np.interp(wave - 0.5 * bin_width, edges, cum)
    hi = np.interp(wave + 0.5 * bin_width, edges, cum)
    return (hi - lo) / bin_width
