"""Write a simulated BOSS reduction tree with its ground truth.

Layout, as on the SDSS Science Archive Server::

    RAW/platelist.fits
    RAW/v5_7_0/<plate4>/spPlate-<plate4>-<mjd5>.fits
    RAW/v5_7_0/<plate4>/spFrame-<cam>-<expid8>.fits.gz
    RAW/v5_7_0/<plate4>/spCFrame-<cam>-<expid8>.fits        (listed exposures only)
    RAW/v5_7_0/<plate4>/spFluxcalib-<cam>-<expid8>.fits.gz
    RAW/truth/...                                           (see :mod:`.truth`)

The tree is written into a hidden sibling folder and renamed onto RAW at the
end, so an interrupted run never leaves a tree that looks complete.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from .. import __version__
from ..conditions.solar import solar_flux
from ..errors import SkyModellingError
from ..io import paths
from ..io.fitsutil import write_hdus
from ..io.frames import write_spcframe, write_spframe
from ..io.platelist import write_platelist
from ..io.spfluxcalib import write_spfluxcalib
from ..io.spplate import write_spplate
from . import camera as cammod
from . import headers, instrument, truth
from .observations import LAST_NO_SEEING_MJD, PlateVisit, plan_observations
from .targets import design_plate, object_flux

log = logging.getLogger(__name__)

#: Wavelength grid (topocentric vacuum A) on which the sky model is evaluated.
MODEL_WAVE = np.arange(3400.0, 10800.0, 0.5)
#: spPlate coadd grid: log10 lambda = COEFF0 + j * 1e-4 (as plate 4055).
COADD_COEFF0 = 3.5529
COADD_NPIX = 4637


@dataclass
class SimulationSummary:
    """What :func:`simulate_tree` wrote."""

    raw: Path
    seed: int
    plates: list[int] = field(default_factory=list)
    mjds: list[int] = field(default_factory=list)
    n_exposures: int = 0
    n_listed: int = 0
    n_sky_fibers: int = 0
    n_sky_spectra: int = 0
    n_files: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        plates = ", ".join(f"{p}/{m}" for p, m in zip(self.plates, self.mjds, strict=True))
        return (f"simulated BOSS tree in {self.raw}\n"
                f"  plates (plate/MJD): {plates}\n"
                f"  exposures: {self.n_exposures} ({self.n_listed} in spPlates, "
                f"{self.n_exposures - self.n_listed} rejected), 4 cameras each\n"
                f"  sky fibres: {self.n_sky_fibers} on the plates, giving "
                f"{self.n_sky_spectra} sky spectra (fibre x exposure x camera)\n"
                f"  files: {self.n_files} (truth in {self.raw / 'truth'})\n"
                f"  seed {self.seed}, {self.seconds:.1f} s")


def _check_target(raw: Path) -> None:
    """Refuse a non-empty or unwritable target before any work is done."""
    if raw.exists():
        if not raw.is_dir():
            raise SkyModellingError(f"{raw}: exists and is not a directory")
        if any(raw.iterdir()):
            raise SkyModellingError(f"{raw}: directory is not empty; choose a new folder")
    parent = raw.absolute().parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise SkyModellingError(f"{ancestor}: is a file, not a directory")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise SkyModellingError(f"{ancestor}: directory is not writable")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkyModellingError(f"{parent}: cannot create ({exc.strerror})") from exc


def _exposure_geometry(visits: list[PlateVisit]) -> Table:
    """Ephemeris for every exposure's midpoint and start, all at once."""
    from ..conditions import ephemeris
    from ..conditions.site import tai_seconds_to_time

    exps = [e for v in visits for e in v.exposures]
    ra = np.array([v.ra for v in visits for _ in v.exposures])
    dec = np.array([v.dec for v in visits for _ in v.exposures])
    mid = np.array([e.tai_mid for e in exps])
    beg = np.array([e.tai_beg for e in exps])
    geo = ephemeris.night_conditions(ra, dec, mid)
    alt_beg, az_beg = ephemeris.target_altaz(ra, dec, tai_seconds_to_time(beg))
    geo["ALT_BEG"], geo["AZ_BEG"] = alt_beg, az_beg
    geo["AIRMASS"] = ephemeris.airmass(90.0 - np.asarray(geo["OBS_ZENITH"]))
    t_mid = tai_seconds_to_time(mid)
    geo["SOLARFLUX"] = solar_flux(t_mid.utc.mjd)[0]
    geo["HELIO_RV"] = _helio_rv(ra, dec, t_mid)
    return geo


def _helio_rv(ra, dec, time) -> np.ndarray:
    """Heliocentric velocity correction (km/s) at APO, as HELIO_RV in BOSS headers."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from ..conditions.site import apo_location

    coords = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    corr = coords.radial_velocity_correction(kind="heliocentric", obstime=time,
                                             location=apo_location())
    return corr.to_value(u.km / u.s)


#: Precipitable water vapour (mm) of the simulated telluric H2O bands.
SKY_PWV_MM = 5.0


def _oh_t_rot() -> float:
    from ..sky.oh_meinel import T_ROT

    return T_ROT


def _sky_for(exp, geo_row) -> tuple:
    """Evaluate the physical sky model for one exposure."""
    from ..sky.model import SkyConditions, sky_model

    cond = SkyConditions(
        airmass=float(geo_row["AIRMASS"]), target_alt=90.0 - float(geo_row["OBS_ZENITH"]),
        moon_alt=float(geo_row["MOON_ALT"]), moon_sep=float(geo_row["MOON_SEP"]),
        moon_phase=float(np.degrees(geo_row["MOON_PHASE"])), sun_alt=float(geo_row["SUN_ALT"]),
        ecl_lon_minus_sun=float(geo_row["ECL_LON_SUN"]), ecl_lat=float(geo_row["ECL_LAT"]),
        gal_lon=float(geo_row["GAL_LON"]), gal_lat=float(geo_row["GAL_LAT"]),
        solar_flux=float(np.nan_to_num(geo_row["SOLARFLUX"], nan=100.0)),
        hours_since_dusk=float(geo_row["HOUR"]), month=int(geo_row["MONTH"]),
        night_factor=exp.night_factor,
    )
    comps = sky_model(MODEL_WAVE, cond, independent=True, pwv_mm=SKY_PWV_MM)
    return cond, comps


def simulate_tree(raw, n_plates: int = 2, n_exposures: int = 3, seed: int = 1,
                  noiseless: bool = False, workers: int | None = None,
                  rejected: bool = True) -> SimulationSummary:
    """Simulate ``n_plates`` plates of ``n_exposures`` coadded exposures into ``raw``.

    Parameters
    ----------
    raw : path-like
        Output folder; must not exist or be empty.
    n_plates, n_exposures : int
        Plates, and exposures per plate listed in the spPlate (one more per
        plate is simulated and rejected from the coadd).
    seed : int
        Seed of the random generator; the same seed gives the same tree.
    noiseless : bool
        Without photon/read noise and unflagged cosmic rays, so unmasked
        extracted flux equals the truth.
    workers : int, optional
        Processes simulating exposures in parallel (default: the number of
        CPUs, at most 4). The output does not depend on it.
    rejected : bool
        Simulate the extra exposure per plate that the coadd rejects (spFrame and
        spFluxcalib but no spCFrame, as in real reductions); false saves its
        0.1 GB per plate (the demo).

    Returns
    -------
    SimulationSummary
    """
    if n_plates < 1 or n_exposures < 1:
        raise SkyModellingError("need at least one plate and one exposure")
    raw = Path(raw)
    _check_target(raw)
    t0 = _time.perf_counter()
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{raw.name}.partial-", dir=raw.parent))
    except OSError as exc:
        raise SkyModellingError(f"{raw.parent}: cannot write ({exc.strerror})") from exc
    try:
        if workers is None:
            workers = min(os.cpu_count() or 1, 4)
        summary = _write_tree(staging, n_plates, n_exposures, seed, noiseless, workers, rejected)
        if raw.exists():
            raw.rmdir()
        os.replace(staging, raw)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.raw = raw
    summary.seconds = _time.perf_counter() - t0
    return summary


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent random stream for one part of the simulation.

    Streams are keyed by (seed, part, plate index, exposure index), so the
    tree is the same whatever the number of worker processes.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


@dataclass
class _PlateSetup:
    """What all exposures of a plate share (picklable, sent to workers)."""

    visit: PlateVisit
    design: object
    base_ts: dict
    disp_ts: dict
    seeing_available: bool
    redden: np.ndarray


@dataclass
class _ExposureResult:
    conditions: dict
    frame_headers: list
    sky_accum: list
    n_files: int
    n_sky_spectra: int


def _write_tree(root: Path, n_plates: int, n_exposures: int, seed: int, noiseless: bool,
                workers: int = 1, rejected: bool = True) -> SimulationSummary:
    visits = plan_observations(n_plates, n_exposures, _rng(seed, 0), rejected=rejected)
    geo = _exposure_geometry(visits)
    summary = SimulationSummary(raw=root, seed=seed)
    setups, tasks = [], []
    k = 0
    for p, visit in enumerate(visits):
        rng = _rng(seed, 1, p)
        design = design_plate(visit.plate, visit.ra, visit.dec, rng)
        setup = _PlateSetup(
            visit=visit, design=design,
            base_ts={cam: instrument.wavelength_traceset(cam, rng) for cam in paths.CAMERAS},
            disp_ts={cam: instrument.dispersion_traceset(cam, rng) for cam in paths.CAMERAS},
            seeing_available=not (visit.mjd <= LAST_NO_SEEING_MJD and rng.uniform() < 0.5),
            redden=np.array([0.49, 0.36, 0.26, 0.20, 0.14]) * rng.uniform(0.3, 2.0))
        setups.append(setup)
        for e, exp in enumerate(visit.exposures):
            tasks.append((root, setup, exp, _row_dict(geo, k),
                          seed, p, e, noiseless))
            k += 1
    results = _map(_simulate_exposure, tasks, workers)
    exposure_rows = []
    platelist_rows = []
    i = 0
    for setup in setups:
        visit = setup.visit
        frame_headers, sky_accum = [], []
        for _ in visit.exposures:
            res = results[i]
            i += 1
            exposure_rows.append(res.conditions)
            frame_headers += res.frame_headers
            sky_accum += res.sky_accum
            summary.n_files += res.n_files
            summary.n_sky_spectra += res.n_sky_spectra
        frame_headers.sort(key=lambda h: (headers.CARD_ORDER_CAMERAS.index(h["CAMERAS"].strip()),
                                          h["EXPOSURE"]))
        folder = paths.plate_dir(root, headers.RUN2D, visit.plate)
        _write_spplate(folder, visit, setup.design, frame_headers, sky_accum)
        summary.n_files += 1
        platelist_rows.append(_platelist_row(visit, setup.design, frame_headers))
        summary.plates.append(visit.plate)
        summary.mjds.append(visit.mjd)
        summary.n_exposures += len(visit.exposures)
        summary.n_listed += len(visit.listed)
        summary.n_sky_fibers += int(np.sum(setup.design.plugmap["OBJTYPE"] == "SKY"))
    write_platelist(root / "platelist.fits", _platelist(platelist_rows, _rng(seed, 3)))
    exposures = Table(rows=exposure_rows)
    exposures.meta["SIMSEED"] = seed
    exposures.meta["SMVERS"] = __version__
    exposures.meta["NOISELSS"] = noiseless
    # the sky model used (docs/simulator.md): independent of decompose's templates
    exposures.meta["SKYMODEL"] = "independent"
    exposures.meta["SKYPWV"] = SKY_PWV_MM
    exposures.meta["OHTROT"] = _oh_t_rot()
    write_hdus(truth.truth_dir(root) / "exposures.fits", truth.exposures_hdu(exposures))
    summary.n_files += 2
    return summary


def _row_dict(table: Table, k: int) -> dict:
    """Row ``k`` of ``table`` as a plain dict (picklable)."""
    return {name: table[name][k] for name in table.colnames}


def _map(func, tasks, workers: int):
    """``map`` in this process or in a pool of ``workers`` processes, in order, with a
    progress bar of the exposures written (on a terminal, or always for several tasks)."""
    import sys

    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="simulate ", unit="exposure", file=sys.stderr,
               disable=not sys.stderr.isatty() and len(tasks) < 2)
    try:
        if workers <= 1 or len(tasks) <= 1:
            out = []
            for t in tasks:
                out.append(func(t))
                bar.update()
            return out
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            futures = {pool.submit(func, t): i for i, t in enumerate(tasks)}
            out = [None] * len(tasks)
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                bar.update()
            return out
    finally:
        bar.close()


def _simulate_exposure(task) -> _ExposureResult:
    """Write the four cameras of one exposure and its truth (runs in a worker)."""
    root, setup, exp, g, seed, p, e, noiseless = task
    visit, design = setup.visit, setup.design
    rng = _rng(seed, 2, p, e)
    folder = paths.plate_dir(root, headers.RUN2D, visit.plate)
    folder.mkdir(parents=True, exist_ok=True)
    cond, comps = _sky_for(exp, g)
    exp_cards = headers.exposure_header(
        visit, exp, ra=visit.ra, dec=visit.dec, alt=float(g["ALT_BEG"]), az=float(g["AZ_BEG"]),
        airmass=float(g["AIRMASS"]), helio_rv=float(g["HELIO_RV"]),
        weather_cards=headers.weather(exp.mjd, int(g["MONTH"]), rng),
        seeing_available=setup.seeing_available, redden=setup.redden)
    conditions = _conditions_record(exp, g, cond, comps)
    _write_sky_truth(root, visit, exp, comps, conditions)
    line_wave = np.asarray(comps.lines["WAVE"], dtype=float)
    line_flux = np.asarray(comps.lines["FLUX"], dtype=float)
    sky_cont = comps.continuum()
    result = _ExposureResult(conditions, [], [], 0, 0)
    for cam in paths.CAMERAS:
        d = instrument.design(cam)
        flexure = rng.normal(0.0, 0.15) * (np.log10(d.wave_last / d.wave_first) / d.npix)
        topo_ts = cammod.shifted_traceset(setup.base_ts[cam], flexure)
        frames = cammod.render_camera(
            cam, design, topo_ts, setup.disp_ts[cam], sky_wave=MODEL_WAVE, sky_cont=sky_cont,
            line_wave=line_wave, line_flux=line_flux, helio_rv=float(g["HELIO_RV"]),
            exptime=exp.exptime, airmass=float(g["AIRMASS"]), seeing=exp.seeing50, rng=rng,
            noiseless=noiseless, sky_telluric=comps.telluric)
        hdr = dict(exp_cards, **headers.camera_cards(cam, exp), **frames.header_extra)
        result.n_files += _write_camera(folder, cam, exp, design, frames, hdr)
        rows = frames.truth_rows
        write_hdus(truth.camera_truth_path(root, visit.plate, exp.expid, cam),
                   truth.camera_truth_hdus(rows + 1 + paths.fiberid_offset(cam),
                                           10.0 ** frames.loglam[rows], frames.truth_sky,
                                           frames.truth_cont, frames.truth_lines, conditions))
        result.n_files += 1
        result.n_sky_spectra += len(rows)
        if exp.listed:
            result.frame_headers.append(hdr)
            result.sky_accum.append((frames.loglam[rows[0]], frames.truth_sky[0]))
    return result


def _conditions_record(exp, g, cond, comps) -> dict:
    """The truth row of one exposure: identity, geometry and sky-model parameters."""
    rec = {
        "PLATE": exp.plate, "MJD": exp.mjd, "EXPID": exp.expid, "LISTED": exp.listed,
        "REFERENCE": exp.reference, "TAI_BEG": exp.tai_beg, "TAI_END": exp.tai_end,
        "EXPTIME": exp.exptime, "SEEING50": exp.seeing50,
        "KAPPA": float(cammod.aperture_factor(exp.seeing50)),
        "AIRMASS": float(g["AIRMASS"]), "HELIO_RV": float(g["HELIO_RV"]),
        "SOLARFLUX": float(g["SOLARFLUX"]), "NIGHTFAC": exp.night_factor,
    }
    for col in ("MOON_ALT", "MOON_SEP", "MOON_ILL", "MOON_PHASE", "SUN_ALT", "ECL_LAT",
                "ECL_LON_SUN", "GAL_LAT", "GAL_LON", "HOUR", "MONTH", "OBS_ZENITH"):
        rec[col] = float(g[col]) if col != "MONTH" else int(g[col])
    rec["OI5577"] = float(comps.line_intensity_rayleigh("[OI]5577", observed=True))
    return rec


def _write_sky_truth(root, visit, exp, comps, conditions) -> None:
    from astropy.io import fits

    cont = Table({"WAVE": MODEL_WAVE})
    cont["WAVE"].unit = "Angstrom"
    for name, arr in comps.continua.items():
        cont[name.upper()] = np.asarray(arr, dtype=np.float32)
        cont[name.upper()].unit = "erg / (s cm2 Angstrom arcsec2)"
    lines = Table(comps.lines, copy=True)
    hdul = fits.HDUList([fits.PrimaryHDU(header=truth.conditions_header(conditions)),
                         fits.table_to_hdu(lines), fits.table_to_hdu(cont)])
    hdul[1].header["EXTNAME"] = "LINES"
    hdul[2].header["EXTNAME"] = "CONTINUUM"
    if comps.telluric is not None:   # HDU3: the transmission already applied above
        tell = Table({"WAVE": MODEL_WAVE, "TRANS": np.asarray(comps.telluric, np.float32)})
        tell["WAVE"].unit = "Angstrom"
        hdul.append(fits.table_to_hdu(tell))
        hdul[3].header["EXTNAME"] = "TELLURIC"
    write_hdus(truth.sky_truth_path(root, visit.plate, exp.expid), hdul)


def _write_camera(folder: Path, cam: str, exp, design, frames, hdr) -> int:
    offset = paths.fiberid_offset(cam)
    plugmap = design.plugmap[offset:offset + 500]
    write_spframe(folder / paths.spframe_name(cam, exp.expid), hdr, frames.flux, frames.ivar,
                  frames.mask, frames.wave_traceset, frames.disp_traceset, plugmap, frames.sky,
                  x=frames.x, superflat=frames.superflat)
    d = instrument.design(cam)
    calib_hdr = dict(hdr, WAVEMIN=d.calib_range[0], WAVEMAX=d.calib_range[1])
    write_spfluxcalib(folder / paths.spfluxcalib_name(cam, exp.expid), frames.calib, calib_hdr)
    n = 2
    if exp.listed:
        arr = cammod.pad_blue(cam, frames)
        write_spcframe(folder / paths.spcframe_name(cam, exp.expid), hdr, arr["flux"],
                       arr["ivar"], arr["mask"], arr["loglam"], arr["dispersion"], plugmap,
                       arr["sky"], x=arr["x"], superflat=arr["superflat"])
        n += 1
    return n


def _write_spplate(folder: Path, visit, design, frame_headers, sky_accum) -> None:
    """A plausible coadd: target spectra plus noise, mean sky, header with EXPIDnn."""
    loglam = COADD_COEFF0 + 1e-4 * np.arange(COADD_NPIX)
    wave = 10.0**loglam
    rows = np.arange(1000)
    flux = object_flux(design, np.broadcast_to(wave, (1000, COADD_NPIX)), rows)
    # mean sky of the listed frames, blue and red joined where they overlap
    sky = np.zeros(COADD_NPIX)
    weight = np.zeros(COADD_NPIX)
    for ll, s in sky_accum:
        inside = (loglam >= ll[0]) & (loglam <= ll[-1])
        sky[inside] += np.interp(loglam[inside], ll, s)
        weight[inside] += 1.0
    sky = np.where(weight > 0, sky / np.maximum(weight, 1), 0.0)
    nexp = max(len(frame_headers) // 4, 1)
    ivar = np.where(weight > 0, nexp * 30.0 / (sky[None, :] + np.abs(flux) + 0.5), 0.0)
    unplugged = np.isin(rows + 1, design.unplugged)
    mask = np.zeros((1000, COADD_NPIX), dtype=np.int32)
    mask[unplugged] = 1 << 0
    ivar[unplugged] = 0.0
    wavedisp = np.broadcast_to(np.interp(wave, [3600, 6000, 6001, 10400],
                                         [0.62, 0.62, 0.80, 0.80]), (1000, COADD_NPIX))
    hdr = headers.spplate_header(frame_headers, visit, COADD_COEFF0, COADD_NPIX)
    write_spplate(folder / paths.spplate_name(visit.plate, visit.mjd), hdr,
                  flux.astype(np.float32), ivar.astype(np.float32), mask, mask,
                  wavedisp.astype(np.float32), design.plugmap,
                  np.broadcast_to(sky, (1000, COADD_NPIX)).astype(np.float32))


def _platelist_row(visit, design, frame_headers) -> dict:
    exps = visit.listed
    s50 = [h["SEEING50"] for h in frame_headers]
    counts = {cam: sum(1 for h in frame_headers if h["CAMERAS"].strip() == cam)
              for cam in paths.CAMERAS}
    expt = {cam: sum(h["EXPTIME"] for h in frame_headers if h["CAMERAS"].strip() == cam)
            for cam in paths.CAMERAS}
    first = frame_headers[0]
    return {
        "PLATE": visit.plate, "TILEID": first["TILEID"], "MJD": visit.mjd,
        "RUN2D": headers.RUN2D, "RUN1D": headers.RUN2D, "RACEN": visit.ra, "DECCEN": visit.dec,
        "CARTID": first["CARTID"], "TAI": float(np.mean([e.tai_mid for e in exps])),
        "TAI_BEG": float(min(e.tai_beg for e in exps)),
        "TAI_END": float(max(e.tai_end for e in exps)),
        "AIRMASS": float(np.mean([h["AIRMASS"] for h in frame_headers])),
        "EXPTIME": float(min(expt.values())), "MAPNAME": f"{visit.plate}-{visit.mjd}-01",
        "SURVEY": "boss", "PROGRAMNAME": "boss", "CHUNK": "boss1",
        "PLATEQUALITY": visit.quality, "PLATESN2": 18.0 if visit.quality == "good" else 6.0,
        "MJDLIST": str(visit.mjd), "NEXP": len(frame_headers),
        **{f"NEXP_{c.upper()}": counts[c] for c in paths.CAMERAS},
        **{f"EXPT_{c.upper()}": expt[c] for c in paths.CAMERAS},
        "SEEING20": float(np.mean(s50)) * 0.93, "SEEING50": float(np.mean(s50)),
        "SEEING80": float(np.mean(s50)) * 1.08,
        "AIRTEMP": float(first.get("AIRTEMP", 0.0)),
        "N_SKY": int(np.sum(design.plugmap["OBJTYPE"] == "SKY")),
        "STATUS2D": "Done", "STATUSCOMBINE": "Done", "STATUS1D": "Done", "PUBLIC": "DR12",
        "QUALCOMMENTS": "" if visit.quality == "good" else "simulated: low (S/N)^2",
    }


def _platelist(rows: list[dict], rng) -> Table:
    """The platelist: simulated plates plus a few listed plates that are not on disk."""
    table = Table(rows=rows)
    extra = []
    for i in range(3):
        row = dict(rows[-1])
        row.update(PLATE=7500 + i, MJD=56700 + 3 * i, RACEN=float(rng.uniform(120, 250)),
                   DECCEN=float(rng.uniform(0, 60)), MAPNAME=f"{7500 + i}-{56700 + 3 * i}-01",
                   PLATEQUALITY="bad" if i == 0 else "good", PUBLIC="",
                   QUALCOMMENTS="simulated: not reduced here")
        extra.append(row)
    for row in extra:
        table.add_row(row)
    table.sort(["PLATE", "MJD"])
    return table
