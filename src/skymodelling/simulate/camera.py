"""Render one camera of one simulated exposure into spFrame, spCFrame and spFluxcalib arrays.

The relations are the BOSS pipeline's (data-model notes, sections 2-4):

* spFrame HDU6 is the sky model in flat-fielded electrons per native pixel,
  HDU0 the sky-subtracted flux, so for a sky fibre HDU0 + HDU6 is the
  measured sky; HDU1 the inverse variance from Poisson and read noise.
* spFluxcalib C converts electrons per 1e-4 dex bin to 1e-17 erg/s/cm2/A:
  spCFrame = spFrame x R / C x A, with R = 1e-4 / (native dloglam) and A a
  flux-correction term near 1.
* C is the point-source calibration of the exposure: the instrument
  conversion for diffuse light, times the atmospheric transmission at the
  exposure's airmass, times the telluric O2 and H2O bands through the LSF
  (:func:`calibration_telluric`, as the standard stars put them into real
  calibrations), times an aperture factor
  ``kappa = f x L(seeing) / L(1.0")`` where ``L`` is the fraction of a point
  source inside the 2" fibre and ``f = 1.027356`` the original analysis's
  diffuse-light correction.  So the original recipe (a fixed good-seeing
  reference calibration, times f) recovers the diffuse sky exactly once the
  reference's extinction is taken out, while each exposure's own calibration
  over-estimates the sky by 1/kappa in poor seeing, as real data do.

Everything is vectorised over the 500 fibres and all pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

from ..io import sppixmask
from ..io.traceset import TraceSet
from ..sky.extinction import transmission
from . import bulk, instrument
from .targets import PlateDesign, object_flux

#: The original analysis's diffuse-sky correction factor (spframe_flux.py).
DIFFUSE_CORRECTION = 1.027356
#: Seeing (FWHM, arcsec) of the reference calibration exposure.
REFERENCE_SEEING = 1.0
C_KMS = 299792.458

_BITS = sppixmask.SPPIXMASK


def _bit(name: str) -> int:
    return 1 << _BITS[name]


@dataclass
class CameraFrames:
    """Everything written for one camera of one exposure, plus the truth."""

    camera: str
    header_extra: dict
    wave_traceset: TraceSet     # file (heliocentric) frame
    disp_traceset: TraceSet
    flux: np.ndarray            # spFrame HDU0, electrons
    ivar: np.ndarray
    mask: np.ndarray
    sky: np.ndarray             # spFrame HDU6, electrons
    x: np.ndarray
    superflat: np.ndarray
    calib: np.ndarray           # spFluxcalib HDU0
    cflux: np.ndarray           # spCFrame HDU0 ...
    civar: np.ndarray
    cmask: np.ndarray
    csky: np.ndarray
    loglam: np.ndarray          # (500, npix) file frame
    cdisp: np.ndarray           # sigma in coadd pixels
    truth_rows: np.ndarray      # rows (0-499) of the sky fibres
    truth_sky: np.ndarray       # calibrated noiseless sky of those rows
    truth_cont: np.ndarray
    truth_lines: np.ndarray


def aperture_factor(seeing):
    """kappa: the simulated point-source calibration relative to diffuse light."""
    return (DIFFUSE_CORRECTION * instrument.fiber_aperture_fraction(seeing)
            / instrument.fiber_aperture_fraction(REFERENCE_SEEING))


def calibration_telluric(wave_pix, sky_wave, sky_telluric, sigma_pix: float,
                         dloglam_pix: float):
    """The telluric transmission that the standard-star flux calibration carries.

    idlspec2d's spflux_v5 fits the ratio of each standard star's spectrum to its model
    with a B-spline whose breakpoints (every 1.5 pixels of the stars' red spectra) follow
    the O2 and H2O bands: the real spFluxcalib vectors carry the bands at the instrument's
    resolution (measured on the spec files of ../shared/realsky: the calibration of the
    red camera rises 2.6 x in the O2 A band and 1.3-1.5 x over 9300-9700 A), so the
    calibrated sky has them divided out. Modelled as the transmission at the exposure's
    airmass (the stars are on the same plate) through the camera-mean LSF, exactly as the
    continuum is (:func:`.bulk.smooth_on_pixels`): a smooth continuum that crossed the
    bands comes out of the calibration unabsorbed, while the structure the LSF does not
    resolve (lines on or between absorption lines) stays.

    Parameters
    ----------
    wave_pix : ndarray
        Topocentric wavelength (A) of every pixel, any shape.
    sky_wave, sky_telluric : ndarray or None
        The transmission on its (fine) grid; None gives 1.
    sigma_pix, dloglam_pix : float
        Camera-mean LSF sigma (native pixels) and native pixel width (log10).

    Returns
    -------
    ndarray
        Same shape as ``wave_pix``.
    """
    if sky_telluric is None:
        return np.ones_like(np.asarray(wave_pix, dtype=float))
    t, _ = bulk.smooth_on_pixels(wave_pix, sky_wave, np.asarray(sky_telluric, dtype=float),
                                 np.zeros(0), np.zeros(0), sigma_pix, dloglam_pix)
    return t


def shifted_traceset(ts: TraceSet, dloglam: float) -> TraceSet:
    """The same traceset with every fibre's log10 wavelength shifted by ``dloglam``."""
    coeff = ts.coeff.copy()
    coeff[:, 0] += dloglam
    return TraceSet(ts.func, ts.xmin, ts.xmax, coeff, ts.xjumplo, ts.xjumphi, ts.xjumpval)


def render_camera(camera: str, design: PlateDesign, topo_traceset: TraceSet,
                  disp_traceset: TraceSet, *, sky_wave, sky_cont, line_wave, line_flux,
                  helio_rv: float, exptime: float, airmass: float, seeing: float,
                  rng: np.random.Generator, noiseless: bool = False,
                  sky_telluric=None) -> CameraFrames:
    """Simulate one camera of one exposure.

    Parameters
    ----------
    camera : str
        'b1', 'b2', 'r1' or 'r2'.
    design : PlateDesign
    topo_traceset : TraceSet
        Arc wavelength solution (topocentric) of this exposure, 500 fibres.
    disp_traceset : TraceSet
        LSF sigma (native pixels).
    sky_wave, sky_cont : ndarray
        Topocentric vacuum wavelength grid (A) and total sky continuum on it,
        erg/s/cm2/A/arcsec2 at the telescope.
    line_wave, line_flux : ndarray
        Topocentric vacuum wavelengths (A) and surface brightness
        (erg/s/cm2/arcsec2) of the emission lines.
    helio_rv : float
        Heliocentric correction, km/s (HELIO_RV).
    exptime, airmass, seeing : float
    rng : numpy.random.Generator
    noiseless : bool
        No photon/read noise and no unflagged cosmic rays.
    sky_telluric : ndarray or None
        Telluric transmission on ``sky_wave`` (already applied to ``sky_cont`` and
        ``line_flux``). The calibration then corrects it as the standard stars' does
        (:func:`calibration_telluric`), and the truth is in that calibration's units.
    """
    d = instrument.design(camera)
    npix = d.npix
    nfib = topo_traceset.nfiber
    offset = 0 if camera[1] == "1" else 500
    rows_design = np.arange(nfib) + offset  # plugmap rows
    helio = 1.0 + helio_rv / C_KMS
    wave_ts = shifted_traceset(topo_traceset, -np.log10(helio))
    loglam = wave_ts.evaluate(npix)
    dloglam = wave_ts.native_dloglam(npix)
    r_factor = 1e-4 / dloglam
    wave = 10.0**loglam
    wave_topo = wave * helio
    pix_width = wave * np.log(10.0) * dloglam  # A per native pixel

    # ---- the sky in calibrated units, 1e-17 erg/s/cm2/A per fibre
    to_fiber = instrument.FIBER_AREA_ARCSEC2 * 1e17
    lo, hi = wave_topo.min() - 50.0, wave_topo.max() + 50.0
    keep, faint = bulk.split_lines(line_wave, line_flux, lo, hi)
    x_lines = instrument.pixel_positions(wave_ts, np.log10(line_wave[keep] / helio), loglam)
    sigma_lines = disp_traceset.evaluate_at(np.clip(x_lines, 0, npix - 1))
    counts = instrument.render_lines(x_lines, line_flux[keep] * to_fiber, sigma_lines, npix,
                                     d.wing_fraction, d.wing_hwhm_pix)
    # continuum and faint lines through the camera-mean LSF (simulate/bulk.py)
    sigma_mean = float(np.mean(disp_traceset.evaluate(npix)))
    cont, faint_lines = bulk.smooth_on_pixels(wave_topo, sky_wave, sky_cont, line_wave[faint],
                                              line_flux[faint], sigma_mean, float(np.mean(dloglam)))
    cont *= to_fiber
    lines = counts / pix_width + faint_lines * to_fiber
    pm = design.plugmap
    # a gentle gradient of the sky across the 3-degree field (+/-1 %)
    gx = np.asarray(pm["XFOCAL"])[rows_design] / 325.0
    gy = np.asarray(pm["YFOCAL"])[rows_design] / 325.0
    grad = (1.0 + 0.006 * gx + 0.004 * gy)[:, None]
    cont *= grad
    lines *= grad
    # the standard stars' telluric correction, part of the calibration (1 without bands)
    t_cal = calibration_telluric(wave_topo, sky_wave, sky_telluric, sigma_mean,
                                 float(np.mean(dloglam)))
    sky_ground = cont + lines
    cont /= t_cal
    lines /= t_cal
    sky_cal = cont + lines

    # ---- calibration and electrons
    # the instrument and the atmosphere act on the light's topocentric wavelength
    c_inst = instrument.calibration_vector(camera, wave_topo, exptime)
    calib = (c_inst * aperture_factor(seeing) * transmission(wave_topo, airmass) * t_cal
             * d.calibrated(wave_topo))
    sky_e = sky_ground * c_inst / r_factor
    fiberid = rows_design + 1
    unplugged = np.isin(fiberid, design.unplugged)
    bad_sky = np.isin(fiberid, design.bad_sky)
    objtype = np.asarray(pm["OBJTYPE"])[rows_design]
    obj = object_flux(design, wave, rows_design)
    # a BADSKYFIBER sky fibre sees a faint unseen object as well
    obj[bad_sky] += 0.4 * (wave[bad_sky] / 6000.0) ** -1.0
    obj_e = obj * calib / r_factor
    light_e = np.where(unplugged[:, None], 0.0, sky_e + obj_e)

    rdnoise = instrument.read_noise(camera, rng)
    n_eff = 2.0 * np.sqrt(np.pi) * 1.08  # pixels of a Gaussian spatial profile
    var = np.clip(light_e, 0.0, None) + np.mean(rdnoise**2) * n_eff
    ivar = (1.0 / var).astype(np.float32)
    noise = 0.0 if noiseless else rng.standard_normal(var.shape) * np.sqrt(var)
    flux_e = (light_e + noise - sky_e).astype(np.float32)

    # ---- masks
    mask = np.zeros((nfib, npix), dtype=np.int32)
    mask[unplugged] |= _bit("NOPLUG")
    mask[bad_sky] |= _bit("BADSKYFIBER")
    if rng.uniform() < 0.3:
        mask[rng.integers(nfib)] |= _bit("BADFLAT")
    if rng.uniform() < 0.2:
        row = rng.integers(nfib)
        mask[row] |= _bit("BADTRACE")
        ivar[row] = 0.0
    # cosmic rays: ~1.5 per fibre; most are flagged by the extraction
    n_cr = rng.poisson(1.5 * nfib)
    cr_row = rng.integers(0, nfib, n_cr)
    cr_pix = rng.integers(0, npix, n_cr)
    flagged = rng.uniform(size=n_cr) < 0.85
    amp = rng.uniform(80.0, 3000.0, n_cr)
    mask[cr_row[flagged], cr_pix[flagged]] |= _bit("FULLREJECT")
    ivar[cr_row[flagged], cr_pix[flagged]] = 0.0
    if not noiseless:
        np.add.at(flux_e, (cr_row[~flagged], cr_pix[~flagged]), amp[~flagged].astype(np.float32))
        np.add.at(flux_e, (cr_row[flagged], cr_pix[flagged]), 0.1 * amp[flagged].astype(np.float32))
    # a bad CCD column crossing one trace over part of the spectrum
    row = rng.integers(nfib)
    start = rng.integers(0, npix - 400)
    span = slice(start, start + int(rng.integers(50, 400)))
    mask[row, span] |= _bit("FULLREJECT") | _bit("NEARBADPIXEL")
    ivar[row, span] = 0.0
    if rng.uniform() < 0.3:
        row, start = rng.integers(nfib), rng.integers(0, npix - 40)
        mask[row, start:start + 30] |= _bit("NOSKY")
        ivar[row, start:start + 30] = 0.0
    # BRIGHTSKY: sky > flux + 10 sigma and > 1.25 x the 99-pixel median sky
    # (median of the central fibre, shared by all: fibres differ by < 2 pixels)
    med = median_filter(sky_e[nfib // 2], size=99, mode="nearest")
    with np.errstate(divide="ignore"):
        sigma_e = np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.inf)
    bright = (sky_e > flux_e + 10.0 * sigma_e) & (sky_e > 1.25 * med[None, :])
    mask[bright] |= _bit("BRIGHTSKY")

    # ---- auxiliary images
    xpos = (20.0 + 8.1 * np.arange(nfib)[:, None]
            + 3.0 * ((np.arange(npix)[None, :] - npix / 2) / npix) ** 2).astype(np.float32)
    superflat = (1.0 + 0.01 * np.sin(np.arange(npix) / 180.0))[None, :].repeat(nfib, 0)

    # ---- spCFrame: calibrated, flux-corrected, BADFLUXFACTOR, COMBINEREJ, apodised ivar
    u = np.linspace(-1, 1, nfib)[:, None]
    t = np.linspace(-1, 1, npix)[None, :]
    corr = 1.0 + 0.012 * u * t + 0.008 * rng.normal() * t**2
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(calib > 0, r_factor / calib * corr, 0.0)
    mean_c = np.mean(calib, axis=1, keepdims=True)
    badflux = calib <= 0.05 * mean_c
    cflux = np.where(badflux, 0.0, flux_e * factor).astype(np.float32)
    csky = np.where(badflux, 0.0, sky_e * factor).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        civar = np.where(badflux | (factor == 0), 0.0, ivar / factor**2)
    apod = np.ones(npix)
    apod[:100] = np.arange(100) / 100.0
    civar = (civar * apod[None, :]).astype(np.float32)
    cmask = mask.copy()
    cmask[badflux] |= _bit("BADFLUXFACTOR")
    n_rej = rng.poisson(5e-4 * nfib * npix)
    cmask[rng.integers(0, nfib, n_rej), rng.integers(0, npix, n_rej)] |= _bit("COMBINEREJ")
    sigma_pix = disp_traceset.evaluate(npix)
    cdisp = sigma_pix * dloglam / 1e-4

    sky_rows = np.flatnonzero(objtype == "SKY")
    header_extra = {f"RDNOISE{i}": float(round(rdnoise[i], 4)) for i in range(4)}
    return CameraFrames(
        camera=camera, header_extra=header_extra, wave_traceset=wave_ts,
        disp_traceset=disp_traceset, flux=flux_e, ivar=ivar, mask=mask,
        sky=sky_e.astype(np.float32), x=xpos, superflat=superflat.astype(np.float32),
        calib=calib.astype(np.float32), cflux=cflux, civar=civar, cmask=cmask, csky=csky,
        loglam=loglam, cdisp=cdisp.astype(np.float32), truth_rows=sky_rows,
        truth_sky=sky_cal[sky_rows].astype(np.float32),
        truth_cont=cont[sky_rows].astype(np.float32),
        truth_lines=lines[sky_rows].astype(np.float32),
    )


def pad_blue(camera: str, frames: CameraFrames, npix: int = 4128) -> dict:
    """spCFrame arrays, blue ones padded to ``npix`` as spcoadd_v5 does.

    The last pixels have flux = ivar = 0, mask 0, linearly extrapolated
    loglam and the last dispersion value repeated.
    """
    arrays = {"flux": frames.cflux, "ivar": frames.civar, "mask": frames.cmask,
              "sky": frames.csky, "loglam": frames.loglam, "dispersion": frames.cdisp,
              "x": frames.x, "superflat": frames.superflat}
    n0 = frames.cflux.shape[1]
    if camera[0] != "b" or n0 >= npix:
        return arrays
    extra = npix - n0
    out = {}
    for name, arr in arrays.items():
        if name == "loglam":
            step = arr[:, -1] - arr[:, -2]
            pad = arr[:, -1:] + step[:, None] * np.arange(1, extra + 1)[None, :]
        elif name in ("dispersion", "x", "superflat"):
            pad = np.repeat(arr[:, -1:], extra, axis=1)
        else:
            pad = np.zeros((arr.shape[0], extra), dtype=arr.dtype)
        out[name] = np.concatenate([arr, pad.astype(arr.dtype)], axis=1)
    return out
