"""Stage enrich: the observing conditions of every extracted sky spectrum.

For each row of an extract output's META (one sky spectrum), at the exposure
midpoint ``(TAI-BEG + TAI-END) / 2`` and towards the sky fibre's hole
(``FIBER_RA``/``FIBER_DEC``, or the boresight with ``pointing="boresight"``):
target geometry, Moon, Sun, time of night, zodiacal light (Leinert et al.
1998 Table 17 against helio-ecliptic longitude and ecliptic latitude),
integrated starlight, the 10.7 cm solar flux and the photometricity flag.
What all fibres of an exposure share is computed once per exposure time and
broadcast. See docs/enrich.md for the columns and conventions.

:func:`enrich_meta` is the pure computation (a META table in, a conditions
table out); :func:`enrich_file` reads one extract output and writes
``OUT/enrich/<plate4>/cond-<plate4>-<mjd5>.fits``; :func:`run_enrich` runs
them all, resumably.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..conditions.clouds import PhotometricityTable, photometric_flag, read_photometricity
from ..conditions.ephemeris import galactic_coords, night_conditions
from ..conditions.site import SECONDS_PER_DAY, tai_seconds_to_time
from ..conditions.solar import solar_flux
from ..conditions.starlight import isl_s10
from ..conditions.zodiacal import zodi_s10
from ..config import Config, EnrichConfig
from ..errors import SkyModellingError
from ..io import products
from ..io.fitsutil import write_hdus
from ..io.products import S10, read_conditions, read_meta, table_hdu
from . import _common

log = logging.getLogger(__name__)

STAGE = "enrich"
EXTNAME = "CONDITIONS"

#: Columns copied from META to join the conditions back, row by row.
KEY_COLUMNS = products.CONDITIONS.keys
TIME_COLUMNS = ("TAI-BEG", "TAI-END")
#: Valid exposure midpoints: 1970-01-01 to 2100-01-01 (MJD).
MJD_RANGE = (40587.0, 88069.0)

COLUMNS = products.CONDITION_COLUMNS
UNITS = products.CONDITION_UNITS


class EnrichInputError(SkyModellingError):
    """A META table that cannot be enriched at all (e.g. a missing column)."""


# ------------------------------------------------------------ computation

def _pointing_columns(config: EnrichConfig) -> tuple[str, str]:
    return ("FIBER_RA", "FIBER_DEC") if config.pointing == "fiber" else ("RA", "DEC")


def _column(meta: Table, name: str) -> np.ndarray:
    values = meta[name]
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def _check_times(beg, end, problems: list[str]) -> np.ndarray:
    """Rows whose TAI-BEG/TAI-END give a usable midpoint; one problem per kind."""
    n = beg.size
    ok = np.ones(n, dtype=bool)
    kinds = []
    for name, values in (("TAI-BEG", beg), ("TAI-END", end)):
        kinds.append((f"column {name}: NaN (missing)", ~np.isfinite(values)))
        kinds.append((f"column {name}: zero or negative", np.isfinite(values) & (values <= 0)))
    with np.errstate(invalid="ignore"):
        kinds.append(("column TAI-END: before TAI-BEG", end < beg))
        mid = 0.5 * (beg + end) / SECONDS_PER_DAY
        kinds.append((f"columns TAI-BEG/TAI-END: midpoint outside MJD {MJD_RANGE[0]:.0f}-"
                      f"{MJD_RANGE[1]:.0f}", (beg > 0) & (end >= beg)
                      & ~((mid >= MJD_RANGE[0]) & (mid <= MJD_RANGE[1]))))
    for text, bad in kinds:
        bad &= ok
        if bad.any():
            problems.append(f"{text} in {int(bad.sum())} of {n} rows; their conditions are NaN")
            ok &= ~bad
    return ok


def _check_pointing(ra, dec, names, problems: list[str]) -> np.ndarray:
    """Rows with a valid pointing (0 <= RA <= 360, |Dec| <= 90); one problem per column."""
    n = ra.size
    with np.errstate(invalid="ignore"):
        bad_ra = ~((ra >= 0) & (ra <= 360))
        bad_dec = ~(np.abs(dec) <= 90)
    for name, bad, rule in ((names[0], bad_ra, "NaN or outside 0-360 deg"),
                            (names[1], bad_dec, "NaN or |value| > 90 deg")):
        if bad.any():
            problems.append(f"column {name}: {rule} in {int(bad.sum())} of {n} rows; their "
                            "pointing-dependent conditions are NaN")
    return ~(bad_ra | bad_dec)


def _utc_mjd(tai_seconds: np.ndarray) -> np.ndarray:
    import erfa

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dubious year", category=erfa.ErfaWarning)
        return tai_seconds_to_time(tai_seconds).utc.mjd


def enrich_meta(meta: Table, *, config: EnrichConfig | None = None,
                photometricity: PhotometricityTable | None = None,
                problems: list | None = None) -> Table:
    """The observing conditions of each row of an extract META table.

    Parameters
    ----------
    meta : astropy.table.Table
        Needs the key columns (PLATE, MJD, IMG, CAMERA, FIB, ROW), TAI-BEG and
        TAI-END (TAI seconds since MJD 0) and the pointing (FIBER_RA and
        FIBER_DEC, or RA and DEC with ``pointing="boresight"``, deg).
    config : EnrichConfig, optional
    photometricity : PhotometricityTable, optional
        Windows for PHOTO; without them PHOTO is 0.5.
    problems : list, optional
        Receives one message per kind of bad value (bad times, bad
        coordinates), naming the column and the number of rows.

    Returns
    -------
    astropy.table.Table
        The key columns, then the columns of :data:`COLUMNS` with units, one
        row per input row in the same order. Rows with a bad time are NaN
        (MONTH -1) except GAL_LAT, GAL_LON and ISL; rows with a bad pointing
        are NaN in the pointing-dependent columns.

    Raises
    ------
    EnrichInputError
        A required column is missing.

    Examples
    --------
    >>> meta = Table({"PLATE": [3985], "MJD": [55320], "IMG": [1], "CAMERA": ["b1"],
    ...               "FIB": [1], "ROW": [0], "FIBER_RA": [150.0], "FIBER_DEC": [20.0],
    ...               "TAI-BEG": [4779.5e6], "TAI-END": [4779.5e6 + 900]})
    >>> cond = enrich_meta(meta)
    >>> round(float(cond["MOON_ILL"][0]), 2), float(cond["PHOTO"][0])
    (0.84, 0.5)
    """
    config = config or EnrichConfig()
    problems = [] if problems is None else problems
    ra_name, dec_name = _pointing_columns(config)
    needed = (*KEY_COLUMNS, *TIME_COLUMNS, ra_name, dec_name)
    missing = [c for c in needed if c not in meta.colnames]
    if missing:
        raise EnrichInputError(f"META lacks column(s) {', '.join(missing)}")
    n = len(meta)
    beg, end = _column(meta, "TAI-BEG"), _column(meta, "TAI-END")
    ra, dec = _column(meta, ra_name), _column(meta, dec_name)
    good_t = _check_times(beg, end, problems)
    good_p = _check_pointing(ra, dec, (ra_name, dec_name), problems)
    tai_mid = np.where(good_t, 0.5 * (beg + end), np.nan)

    out = {name: np.full(n, -1 if dtype[0] == "i" else np.nan, dtype=dtype)
           for name, dtype, _unit, _dep in COLUMNS}
    out["TAI-MID"][:] = tai_mid
    if good_t.any():
        # placeholder pointing for rows with bad coordinates; blanked below
        nc = night_conditions(np.where(good_p, ra, 0.0)[good_t],
                              np.where(good_p, dec, 0.0)[good_t], tai_mid[good_t])
        for name in nc.colnames:
            out[name][good_t] = nc[name]
        uniq, inv = np.unique(tai_mid[good_t], return_inverse=True)  # one per exposure
        daily, mean81 = solar_flux(_utc_mjd(uniq))
        out["SOLARFLUX"][good_t] = daily[inv]
        out["SOLARFLUX_81"][good_t] = mean81[inv]
        out["ZODI"][good_t] = zodi_s10(nc["ECL_LON_SUN"], nc["ECL_LAT"], fill=config.zodi_fill)
        out["PHOTO"][good_t] = photometric_flag(tai_mid[good_t], photometricity)
    if good_p.any():
        gal_lon, gal_lat = galactic_coords(ra[good_p], dec[good_p])
        out["GAL_LON"][good_p], out["GAL_LAT"][good_p] = gal_lon, gal_lat
        out["ISL"][good_p] = isl_s10(gal_lon, gal_lat)
    for name, _dtype, _unit, dep in COLUMNS:
        if "p" in dep:
            out[name][~good_p] = np.nan
    table = Table({name: np.asarray(meta[name]) for name in KEY_COLUMNS})
    for name, _dtype, unit, _dep in COLUMNS:
        table[name] = out[name]
        if unit:
            table[name].unit = S10 if unit == "S10" else unit
    return table


# ----------------------------------------------------------------- files

@dataclass
class EnrichTask:
    """One extract output to enrich."""

    source: Path
    plate: int
    mjd: int


def output_path(out, plate: int, mjd: int) -> Path:
    """Where enrich writes the conditions of plate ``plate`` observed on ``mjd``."""
    return products.CONDITIONS.path(out, plate, mjd)


def discover_inputs(out, plates=None) -> list[EnrichTask]:
    """Every extract output under ``OUT/extract`` (complete or not)."""
    wanted = None if plates is None else {int(p) for p in plates}
    tasks = []
    for path in products.SKY.files(out, complete=False):
        plate, mjd = products.SKY.parse(path)
        if wanted is None or plate in wanted:
            tasks.append(EnrichTask(path, plate, mjd))
    return tasks


_extract_complete = products.is_complete


def enrich_file(task_and_config) -> dict:
    """Enrich one extract output (a task for a worker); returns a small summary dict."""
    task, config, phot, out, strict, force = task_and_config
    where = f"plate {task.plate} MJD {task.mjd}"
    if not _extract_complete(task.source):
        return _common.task_failure(
            STAGE, task.plate, task.mjd, out, f"{where}: extract output is incomplete (no "
            "matching completion marker); rerun skymodelling extract", file=task.source,
            strict=strict)
    try:
        meta, checksum = read_meta(task.source)
    except (SkyModellingError, KeyError) as exc:
        return _common.task_failure(STAGE, task.plate, task.mjd, out,
                                    f"{where}: cannot read META ({exc})", file=task.source,
                                    strict=strict)
    inputs = {"extract_meta": checksum, "clouds": phot.checksum if phot else ""}

    def work(target, plate, mjd, failures):
        problems = []
        try:
            cond = enrich_meta(meta, config=config.enrich, photometricity=phot,
                               problems=problems)
        except EnrichInputError as exc:
            raise SkyModellingError(f"{where}: {exc}") from None
        for reason in problems:
            if strict:
                raise SkyModellingError(f"{task.source}: {where}: {reason}")
            failures.add(f"{where}: {reason}", file=task.source)
        primary = _common.primary_hdu(
            STAGE, config, PLATE=plate, MJD=mjd, NROWS=len(cond),
            EXTRACT=(task.source.name, "extract output enriched"),
            EXTSUM=(checksum, "hash of its META table"),
            PHOTFILE=(Path(phot.source).name if phot else "", "photometricity table"),
            PHOTSUM=(phot.checksum if phot else "", "hash of the photometricity windows"),
            POINTING=(config.enrich.pointing, "fiber: FIBER_RA/DEC; boresight: RA/DEC"))
        write_hdus(target, [primary, table_hdu(cond, EXTNAME, UNITS)])
        return len(cond)

    return _common.run_task(STAGE, task.plate, task.mjd, out, config, strict,
                            target=output_path(out, task.plate, task.mjd), inputs=inputs,
                            work=work, force=force, source=task.source)


# --------------------------------------------------------------- the stage

def run_enrich(out, config: Config | None = None, *, clouds=None, workers: int = 1,
               plates=None, strict: bool = False, executor=None,
               force: bool = False) -> _common.StageSummary:
    """Add observing conditions to every extracted sky spectrum in ``out``.

    Parameters
    ----------
    out : path-like
        Output folder of ``skymodelling extract`` (reads ``OUT/extract``,
        writes ``OUT/enrich/<plate4>/cond-<plate4>-<mjd5>.fits``).
    config : Config, optional
    clouds : path-like or PhotometricityTable, optional
        Photometricity windows (FITS or CSV: STARTTAI, ENDTAI, PHOTOMETRIC).
    workers : int
        Processes (one plate-MJD per task).
    plates : iterable of int, optional
        Only these plates.
    strict : bool
        Stop at the first problem instead of recording it in ``OUT/failures``.

    Examples
    --------
    >>> run_enrich("OUT", clouds="apo_photometricity.fits").describe()   # doctest: +SKIP
    """
    config = config or Config()
    t0 = time.perf_counter()
    out = Path(out)
    phot = clouds
    if clouds is not None and not isinstance(clouds, PhotometricityTable):
        phot = read_photometricity(clouds)
    tasks = discover_inputs(out, plates)
    if not tasks and plates is None:
        raise SkyModellingError(f"{out}: no extract output found (run skymodelling extract "
                                "first)")
    _common.check_plates(plates, [t.plate for t in tasks], Path(out) / "extract")
    (out / STAGE).mkdir(parents=True, exist_ok=True)
    _common.remove_stale_parts(out / STAGE)
    summary = _common.StageSummary(STAGE, n_tasks=len(tasks))
    args = [(t, config, phot, out, strict, force) for t in tasks]
    for res in _common.map_tasks(enrich_file, args, workers, desc=STAGE,
                                 executor=executor):
        summary.add(res)
    summary.finish(out, t0)
    return summary


__all__ = ["enrich_meta", "enrich_file", "run_enrich", "output_path", "read_conditions",
           "EnrichInputError", "COLUMNS", "KEY_COLUMNS", "S10"]
