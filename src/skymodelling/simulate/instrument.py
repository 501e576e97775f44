"""The BOSS spectrographs as the simulator models them.

Two double spectrographs (1: fibres 1-500, 2: fibres 501-1000), each with a
blue and a red camera.  For each camera this module provides

* the wavelength solution of every fibre as an idlspec2d Legendre traceset
  (log10 vacuum Angstrom, heliocentric frame), smooth and slightly different
  from fibre to fibre, with the red CCDs' two-phase-readout jump;
* the line-spread function: a Gaussian core whose sigma (in native pixels,
  stored as the HDU4 dispersion traceset) varies with wavelength and fibre,
  plus the Lorentzian scattering wing of a volume-phase-holographic grating;
* the throughput, giving the calibration vector C of spFluxcalib in
  flat-fielded electrons per 1e-4 dex bin per 1e-17 erg/s/cm2/A;
* read noise.

Numbers follow Smee et al. (2013, AJ 146, 32) and the data-model notes:
4112 (blue) and 4128 (red) native pixels, arc sigma ~1.04-1.15 pixel,
calibrated ranges ~3560-6330 A and ~5650-10400 A.  The scattering-wing
parameters are simulator choices (a few per cent of the light in a
Lorentzian of half-width a few pixels), stated here so that the
decomposition stage is tested against a known truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from scipy.signal import fftconvolve
from scipy.special import erf

from ..io.traceset import TraceSet

#: Planck constant times speed of light, erg Angstrom.
HC_ERG_A = 1.98644586e-8
#: Collecting area of the SDSS 2.5-m telescope: 2.5 m primary with a 1.3 m
#: central obstruction (Gunn et al. 2006), in cm^2.
TELESCOPE_AREA_CM2 = np.pi / 4 * (250.0**2 - 130.0**2)
#: Fibre diameter in arcsec (BOSS: 2"), so the fibre subtends pi arcsec^2.
FIBER_DIAMETER_ARCSEC = 2.0
FIBER_AREA_ARCSEC2 = np.pi * (FIBER_DIAMETER_ARCSEC / 2) ** 2
#: Nominal exposure time the calibration vectors refer to, s.
NOMINAL_EXPTIME = 900.0
#: Legendre order of the simulated wavelength tracesets (as the real r1 file).
N_WAVE_COEFF = 6
N_DISP_COEFF = 4


@dataclass(frozen=True)
class CameraDesign:
    """Fixed properties of one camera type (blue or red).

    Parameters
    ----------
    arm : str
        ``'b'`` or ``'r'``.
    npix : int
        Native pixels along wavelength (spFrame NAXIS1).
    wave_first, wave_last : float
        Vacuum wavelength (A) of pixel 0 and of pixel npix-1 of a central fibre.
    curvature : float
        Quadratic term of log10(lambda) against pixel, as a fraction of the range.
    calib_range : tuple of float
        WAVEMIN, WAVEMAX (A) of the flux calibration; C = 0 outside.
    jump : tuple or None
        (XJUMPLO, XJUMPHI, XJUMPVAL) of the two-phase readout, or None.
    sigma_pix : float
        Mean Gaussian sigma of the line-spread function, native pixels.
    wing_fraction : float
        Fraction of a line's flux in the Lorentzian scattering wing.
    wing_hwhm_pix : float
        Half width at half maximum of that wing, native pixels.
    peak_efficiency : float
        Peak end-to-end efficiency (telescope, fibres, spectrograph, CCD;
        no atmosphere).
    """

    arm: str
    npix: int
    wave_first: float
    wave_last: float
    curvature: float
    calib_range: tuple[float, float]
    jump: tuple[float, float, float] | None
    sigma_pix: float
    wing_fraction: float
    wing_hwhm_pix: float
    peak_efficiency: float

    def efficiency(self, wave) -> np.ndarray:
        """Smooth end-to-end efficiency (0-1) of this camera at ``wave`` (A)."""
        wave = np.asarray(wave, dtype=float)
        if self.arm == "b":
            # CCD blue QE and fibre UV losses; dichroic cut near 6100-6350 A.
            rise = 1.0 / (1.0 + np.exp(-(wave - 3800.0) / 120.0))
            fall = 1.0 / (1.0 + np.exp((wave - 6150.0) / 60.0))
            shape = rise * fall * (1.0 - 0.15 * ((wave - 4800.0) / 1500.0) ** 2)
        else:
            # dichroic rise near 5800-6000 A; thick-CCD QE falls beyond 9500 A.
            rise = 1.0 / (1.0 + np.exp(-(wave - 5900.0) / 60.0))
            fall = 1.0 / (1.0 + np.exp((wave - 9800.0) / 350.0))
            shape = rise * fall * (1.0 - 0.10 * ((wave - 7600.0) / 2000.0) ** 2)
        return self.peak_efficiency * np.clip(shape, 0.0, None)

    def calibrated(self, wave) -> np.ndarray:
        """True where the flux calibration is defined (WAVEMIN <= wave <= WAVEMAX).

        Light reaches the CCD beyond this range too; only the pipeline's
        calibration vector is set to 0 there.
        """
        wave = np.asarray(wave, dtype=float)
        return (wave >= self.calib_range[0]) & (wave <= self.calib_range[1])


# Pixel scales from real BOSS frames: the real r1 traceset spans ~5100-11000 A over 4128 rows
# with dloglam 1.1e-4 -> 5.6e-5 (1.3-1.46 A per pixel); the exposures of real spec files (the
# spCFrame pixels, trimmed to the calibrated range) have dloglam 1.20e-4 -> 0.78e-4 over
# 3607-6339 A (blue) and 1.006e-4 -> 0.606e-4 over 5869-10407 A (red). The blue range and
# curvature below reproduce the former at those wavelengths with the calibrated range in the
# middle of the CCD; the red ones the r1 traceset (and so the spec files' pixels).
BLUE = CameraDesign(
    arm="b", npix=4112, wave_first=2838.0, wave_last=7252.0, curvature=-0.351,
    calib_range=(3560.0, 6330.0), jump=None, sigma_pix=1.05,
    wing_fraction=0.04, wing_hwhm_pix=3.5, peak_efficiency=0.28,
)
RED = CameraDesign(
    arm="r", npix=4128, wave_first=5100.0, wave_last=11000.0, curvature=-0.325,
    calib_range=(5650.0, 10400.0), jump=(2062.5, 2064.5, 1.0 / 3.0), sigma_pix=1.08,
    wing_fraction=0.05, wing_hwhm_pix=4.5, peak_efficiency=0.34,
)


def design(camera: str) -> CameraDesign:
    """Return the design of camera ``'b1'``, ``'b2'``, ``'r1'`` or ``'r2'``."""
    return BLUE if camera[0] == "b" else RED


def _smooth_fiber_pattern(rng, n_fibers: int, amplitude: float) -> np.ndarray:
    """A smooth random pattern across the slit (fibre index), mean zero."""
    u = np.linspace(-1.0, 1.0, n_fibers)
    c = rng.normal(0.0, 1.0, 4)
    pattern = c[0] * u + c[1] * (1.5 * u**2 - 0.5) + 0.5 * c[2] * np.sin(3.0 * u + c[3])
    pattern -= pattern.mean()
    return amplitude * pattern / max(np.abs(pattern).max(), 1e-12)


def wavelength_traceset(camera: str, rng: np.random.Generator, n_fibers: int = 500) -> TraceSet:
    """Simulate the HDU3 wavelength traceset of one camera (log10 vacuum A).

    The central solution maps pixels onto ``wave_first``-``wave_last`` with a
    little curvature; each fibre is shifted by a smooth pattern across the
    slit (up to about 1.5 pixels) plus a small random per-fibre offset and a
    tiny change of scale, as arc solutions of different fibres differ.
    """
    d = design(camera)
    x = np.arange(d.npix, dtype=float)
    xmin, xmax = 0.0, float(d.npix - 1)
    if d.jump is not None:
        lo, hi, val = d.jump
        xp = x + np.clip((x - lo) / (hi - lo), 0.0, 1.0) * val
    else:
        xp = x
    t = 2.0 * (xp - 0.5 * (xmin + xmax)) / (xmax - xmin)
    y0, y1 = np.log10(d.wave_first), np.log10(d.wave_last)
    span = y1 - y0
    base = y0 + span * 0.5 * (t + 1.0) + d.curvature * span * (t**2 - 1.0) / 4.0
    dlog_dpix = span / d.npix
    shift_pix = _smooth_fiber_pattern(rng, n_fibers, 1.5) + rng.normal(0.0, 0.08, n_fibers)
    scale = 1.0 + _smooth_fiber_pattern(rng, n_fibers, 2e-4)
    mid = y0 + 0.5 * span
    # y_i(t) = mid + (base - mid) * scale_i + shift_i * dlog/dpix : exact in Legendre terms.
    base_coeff = legendre.legfit(t, base, N_WAVE_COEFF - 1)
    coeff = np.tile(base_coeff, (n_fibers, 1))
    coeff[:, 0] = mid + (base_coeff[0] - mid) * scale + shift_pix * dlog_dpix
    coeff[:, 1:] *= scale[:, None]
    jump = d.jump if d.jump is not None else (None, None, None)
    return TraceSet("legendre", xmin, xmax, coeff, *jump)


def dispersion_traceset(camera: str, rng: np.random.Generator, n_fibers: int = 500) -> TraceSet:
    """Simulate the HDU4 dispersion traceset: LSF Gaussian sigma in native pixels.

    Sigma is a little larger at the ends of the slit and of the CCD (optical
    aberrations), varies by a few per cent from fibre to fibre, and averages
    ``design(camera).sigma_pix`` (the arc WSIGMA of real plates is 1.04-1.15).
    """
    d = design(camera)
    u = np.linspace(-1.0, 1.0, n_fibers)
    s0 = d.sigma_pix * (1.0 + 0.04 * (u**2 - 1.0 / 3.0)
                        + _smooth_fiber_pattern(rng, n_fibers, 0.02)
                        + rng.normal(0.0, 0.01, n_fibers))
    coeff = np.zeros((n_fibers, N_DISP_COEFF))
    coeff[:, 0] = s0
    coeff[:, 1] = s0 * rng.normal(0.0, 0.02)
    coeff[:, 2] = s0 * 0.05  # P2(t): wider at both CCD ends
    return TraceSet("legendre", 0.0, float(d.npix - 1), coeff)


def calibration_vector(camera: str, wave, exptime: float = NOMINAL_EXPTIME) -> np.ndarray:
    """Instrument conversion for diffuse light, C_inst, at ``wave`` (A).

    Flat-fielded electrons per 1e-4 dex wavelength bin per 1e-17 erg/s/cm2/A
    of light entering the fibre, for ``exptime`` seconds and no atmosphere.
    The spFluxcalib vector of an exposure is this times the exposure's
    point-source aperture factor and atmospheric transmission (see
    :mod:`skymodelling.simulate.tree`).
    """
    wave = np.asarray(wave, dtype=float)
    d = design(camera)
    spectrograph_factor = 1.0 if camera[1] == "1" else 0.95
    photons = 1e-17 * TELESCOPE_AREA_CM2 * exptime * wave * np.log(10.0) * 1e-4 * wave / HC_ERG_A
    return photons * d.efficiency(wave) * spectrograph_factor


def read_noise(camera: str, rng: np.random.Generator) -> np.ndarray:
    """Read noise of the four amplifiers (RDNOISE0..3), electrons."""
    base = 1.9 if camera[0] == "b" else 2.6
    return base + rng.uniform(-0.2, 0.4, 4)


def pixel_positions(wave_ts: TraceSet, loglam_lines, loglam_grid, rows=None) -> np.ndarray:
    """Fractional pixel position of each line in each fibre, shape (nrow, nline).

    Starts from interpolation in the evaluated ``loglam_grid`` (nrow, npix) and
    polishes with two Newton steps on the traceset itself, vectorised over
    fibres and lines.
    """
    loglam_lines = np.asarray(loglam_lines, dtype=float)
    nrow, npix = loglam_grid.shape
    pix = np.arange(npix, dtype=float)
    # the median fibre gives a start; per-fibre offsets are small and smooth
    med = loglam_grid[nrow // 2]
    x = np.interp(loglam_lines, med, pix)[None, :].repeat(nrow, axis=0)
    rows_idx = np.arange(wave_ts.coeff.shape[0]) if rows is None else np.asarray(rows)
    for _ in range(3):
        y = wave_ts.evaluate_at(x, rows=rows_idx)
        dy = (wave_ts.evaluate_at(x + 0.25, rows=rows_idx)
              - wave_ts.evaluate_at(x - 0.25, rows=rows_idx)) / 0.5
        x = x - (y - loglam_lines[None, :]) / dy
    return x


def render_lines(x_lines, flux_lines, sigma_lines, npix: int, wing_fraction: float,
                 wing_hwhm: float, half_window: int = 8) -> np.ndarray:
    """Integrated line flux falling in each native pixel, shape (nrow, npix).

    Each line is ``(1 - wing_fraction)`` times a Gaussian of sigma
    ``sigma_lines`` (pixels) integrated exactly over each pixel, plus
    ``wing_fraction`` times a pixel-integrated Lorentzian of half width
    ``wing_hwhm`` (truncated at +/-300 pixels and renormalised, so flux is
    conserved).

    Parameters
    ----------
    x_lines, sigma_lines : ndarray (nrow, nline)
        Pixel position and Gaussian sigma of each line in each fibre.
    flux_lines : ndarray (nrow, nline) or (nline,)
        Integrated flux of each line (any unit; the result is per pixel).
    """
    x_lines = np.asarray(x_lines, dtype=float)
    nrow, nline = x_lines.shape
    flux = np.broadcast_to(np.asarray(flux_lines, dtype=float), (nrow, nline))
    sigma = np.asarray(sigma_lines, dtype=float)
    out = np.zeros(nrow * npix)
    # Gaussian core: a window of pixels around each line centre.
    k = np.arange(-half_window, half_window + 1)
    centre = np.floor(x_lines + 0.5).astype(np.int64)
    pix = centre[..., None] + k  # (nrow, nline, nk)
    s = sigma[..., None] * np.sqrt(2.0)
    dx = pix - x_lines[..., None]
    frac = 0.5 * (erf((dx + 0.5) / s) - erf((dx - 0.5) / s))
    vals = (1.0 - wing_fraction) * flux[..., None] * frac
    ok = (pix >= 0) & (pix < npix)
    flat = (np.arange(nrow)[:, None, None] * npix + pix)[ok]
    out += np.bincount(flat, weights=vals[ok], minlength=nrow * npix)
    core = out.reshape(nrow, npix)
    if wing_fraction <= 0:
        return core
    # Lorentzian wing: deposit each line (linear share between two pixels),
    # then convolve every fibre with the pixel-integrated Lorentzian.
    lo = np.floor(x_lines).astype(np.int64)
    w_hi = x_lines - lo
    deposit = np.zeros(nrow * npix)
    rowbase = np.arange(nrow)[:, None] * npix
    for idx, w in ((lo, 1.0 - w_hi), (lo + 1, w_hi)):
        ok = (idx >= 0) & (idx < npix)
        deposit += np.bincount((rowbase + idx)[ok], weights=(flux * w)[ok], minlength=nrow * npix)
    half = 300
    kk = np.arange(-half, half + 1, dtype=float)
    kernel = (np.arctan((kk + 0.5) / wing_hwhm) - np.arctan((kk - 0.5) / wing_hwhm)) / np.pi
    kernel /= kernel.sum()
    wing = fftconvolve(deposit.reshape(nrow, npix), kernel[None, :], mode="same", axes=1)
    return core + wing_fraction * wing


def fiber_aperture_fraction(seeing_fwhm_arcsec) -> np.ndarray:
    """Fraction of a point source's light inside a 2" fibre for Gaussian seeing."""
    sigma = np.asarray(seeing_fwhm_arcsec, dtype=float) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    r = FIBER_DIAMETER_ARCSEC / 2.0
    return 1.0 - np.exp(-(r**2) / (2.0 * sigma**2))
