"""Simulated plate designs: the plugmap and simple science spectra.

A BOSS plate has 1000 fibres in a 1.49-degree-radius field; about 80-126 of
them (median 87 in DR12) are sky fibres, spread over both spectrographs; the
rest are galaxies, quasars, stars and spectrophotometric standards.  The
science spectra only need to be plausible, non-zero and smooth: they make
the spFrame object flux and the spPlate coadd realistic, nothing downstream
measures them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from ..io.plugmap import empty_plugmap

#: Plate scale of the SDSS 2.5-m telescope focal plane, mm per degree.
PLATE_SCALE_MM_PER_DEG = 217.7358
#: Radius of the BOSS field, degrees.
FIELD_RADIUS_DEG = 1.49
N_FIBERS = 1000

_OBJTYPES = ("GALAXY", "QSO", "STAR_BHB", "SPECTROPHOTO_STD", "REDDEN_STD", "SERENDIPITY_BLUE")
_OBJTYPE_P = (0.66, 0.26, 0.03, 0.025, 0.01, 0.015)


@dataclass
class PlateDesign:
    """A simulated plate: centre, plugmap and science-target parameters."""

    plate: int
    ra: float
    dec: float
    plugmap: Table          # 1000 rows, FIBERID 1..1000
    unplugged: np.ndarray   # FIBERIDs that are not plugged (NOPLUG)
    bad_sky: np.ndarray     # sky FIBERIDs flagged BADSKYFIBER
    obj_mag_r: np.ndarray   # r magnitude of each fibre's target (NaN for sky)
    obj_slope: np.ndarray   # spectral slope (f_lambda ~ lambda**slope)
    obj_redshift: np.ndarray

    @property
    def sky_fiberids(self) -> np.ndarray:
        """FIBERIDs with OBJTYPE 'SKY'."""
        return np.asarray(self.plugmap["FIBERID"][self.plugmap["OBJTYPE"] == "SKY"])


def _tangent_offsets(rng, n):
    """Uniform positions in the field disk, returned as (xi, eta) in degrees."""
    r = FIELD_RADIUS_DEG * np.sqrt(rng.uniform(0.0, 1.0, n))
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    return r * np.cos(phi), r * np.sin(phi)


def _deproject(ra0, dec0, xi_deg, eta_deg):
    """Gnomonic (tangent-plane) offsets to RA, Dec in degrees."""
    xi, eta = np.radians(xi_deg), np.radians(eta_deg)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    denom = np.cos(d0) - eta * np.sin(d0)
    ra = a0 + np.arctan2(xi, denom)
    dec = np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, denom))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def design_plate(plate: int, ra: float, dec: float, rng: np.random.Generator,
                 n_unplugged: int = 2, unplugged_sky: bool = True) -> PlateDesign:
    """Draw a plate's plugmap.

    Parameters
    ----------
    plate : int
        Plate number.
    ra, dec : float
        Field centre, degrees.
    rng : numpy.random.Generator
    n_unplugged : int
        Number of fibres left unplugged (NOPLUG); if ``unplugged_sky`` one of
        them carries OBJTYPE 'SKY', as an unmapped hole can in real plugmaps.
    """
    pm = empty_plugmap(N_FIBERS)
    fiberid = np.arange(1, N_FIBERS + 1)
    pm["FIBERID"] = fiberid
    pm["SPECTROGRAPHID"] = np.where(fiberid <= 500, 1, 2)
    pm["HOLETYPE"] = "OBJECT"
    # Sky fibres: 80-100 in all, roughly half per spectrograph, spread along the slit.
    n_sky = int(rng.integers(80, 101))
    n1 = n_sky // 2 + int(rng.integers(-3, 4))
    sky_ids = np.concatenate([
        np.sort(rng.choice(np.arange(1, 501), n1, replace=False)),
        np.sort(rng.choice(np.arange(501, 1001), n_sky - n1, replace=False)),
    ])
    objtype = rng.choice(_OBJTYPES, N_FIBERS, p=_OBJTYPE_P).astype("U16")
    objtype[sky_ids - 1] = "SKY"
    pm["OBJTYPE"] = objtype
    xi, eta = _tangent_offsets(rng, N_FIBERS)
    pm["RA"], pm["DEC"] = _deproject(ra, dec, xi, eta)
    pm["XFOCAL"] = xi * PLATE_SCALE_MM_PER_DEG
    pm["YFOCAL"] = eta * PLATE_SCALE_MM_PER_DEG
    is_sky = objtype == "SKY"
    mag_r = np.where(is_sky, np.nan, rng.uniform(17.5, 21.8, N_FIBERS))
    std = (objtype == "SPECTROPHOTO_STD") | (objtype == "REDDEN_STD")
    mag_r[std] = rng.uniform(15.5, 17.5, std.sum())
    colours = np.array([1.4, 0.6, 0.0, -0.35, -0.6])  # u-r, g-r, r-r, i-r, z-r (galaxy-ish)
    mags = np.where(is_sky[:, None], 0.0, mag_r[:, None] + colours[None, :]
                    + rng.normal(0.0, 0.2, (N_FIBERS, 5)))
    pm["MAG"] = mags.astype(np.float32)
    pm["CALIBFLUX"] = np.where(is_sky[:, None], 0.0,
                               10 ** (-0.4 * (mags - 22.5))).astype(np.float32)
    pm["OBJID"] = np.column_stack([np.full(N_FIBERS, 3000 + plate % 1000), rng.integers(
        1, 6, N_FIBERS), rng.integers(1, 7, N_FIBERS), rng.integers(11, 800, N_FIBERS),
        np.arange(N_FIBERS)]).astype(np.int32)
    pm["SFD_EBV"] = np.float32(np.abs(rng.normal(0.03, 0.01)))
    pm["SCI_EXPTIME"] = np.float32(0.0)
    pm["THROUGHPUT"] = rng.integers(1000, 5000, N_FIBERS).astype(np.int32)
    pm["BOSS_TARGET1"] = np.where(is_sky, 0, rng.integers(1, 2**20, N_FIBERS)).astype(np.int64)
    # Unplugged fibres: one of them, if asked, is a sky fibre (must be masked by NOPLUG).
    candidates = [int(rng.choice(sky_ids))] if unplugged_sky and n_unplugged > 0 else []
    others = np.setdiff1d(fiberid[~is_sky], candidates)
    candidates += list(rng.choice(others, max(n_unplugged - len(candidates), 0), replace=False))
    unplugged = np.sort(np.asarray(candidates, dtype=int))
    remaining_sky = np.setdiff1d(sky_ids, unplugged)
    bad_sky = np.sort(rng.choice(remaining_sky, 2, replace=False))
    slope = np.where(objtype == "QSO", rng.uniform(-1.8, -1.2, N_FIBERS),
                     rng.uniform(-0.5, 1.5, N_FIBERS))
    slope[std] = rng.uniform(-2.6, -2.2, std.sum())
    redshift = np.where(objtype == "QSO", rng.uniform(0.8, 3.0, N_FIBERS),
                        np.where(objtype == "GALAXY", rng.uniform(0.05, 0.7, N_FIBERS), 0.0))
    return PlateDesign(plate, float(ra), float(dec), pm, unplugged, bad_sky,
                       mag_r, slope, redshift)


def object_flux(design: PlateDesign, wave: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Flux density (1e-17 erg/s/cm2/A) of the targets in fibre ``rows`` on ``wave``.

    Power laws normalised to the r magnitude, a 4000-A break for galaxies and
    a broad Mg II / C III] line for quasars; zero for sky fibres.

    Parameters
    ----------
    wave : ndarray (nrow, npix)
        Wavelength of every pixel of every row, A.
    rows : ndarray of int
        Plugmap rows (FIBERID - 1) of those fibres.
    """
    mag = design.obj_mag_r[rows]
    slope = design.obj_slope[rows]
    z = design.obj_redshift[rows]
    objtype = np.asarray(design.plugmap["OBJTYPE"])[rows]
    # AB r magnitude -> f_lambda at 6166 A (1e-17 erg/s/cm2/A)
    f6166 = 10 ** (-0.4 * (np.nan_to_num(mag, nan=99.0) + 48.6)) * 2.99792458e18 / 6166.0**2 * 1e17
    flux = f6166[:, None] * (wave / 6166.0) ** slope[:, None]
    rest = wave / (1.0 + z[:, None])
    gal = (objtype == "GALAXY")[:, None]
    flux = np.where(gal & (rest < 4000.0), flux * 0.55, flux)
    qso = (objtype == "QSO")[:, None]
    for line_rest, ew in ((2798.0, 60.0), (1908.0, 30.0), (1549.0, 80.0)):
        centre = line_rest * (1.0 + z[:, None])
        sigma = centre * 2000.0 / 2.99792458e5
        bump = ew / (np.sqrt(2 * np.pi) * sigma) * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)
        flux = np.where(qso, flux * (1.0 + bump), flux)
    flux[objtype == "SKY"] = 0.0
    return flux
