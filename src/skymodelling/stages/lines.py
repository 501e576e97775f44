"""Stage lines: line strengths, continuum bands and broadband sky magnitudes.

For every sky spectrum of every extract output, in one vectorised pass per
camera of a plate (:mod:`skymodelling.spectral`):

* the original's raw measures (``<NAME>_SUM``: flux summed over the nearest
  pixel +/- 5; ``<NAME>_MEAN3``: mean over +/- 1 pixel);
* continuum-subtracted integrated line fluxes with 1-sigma errors
  (``<NAME>_FLUX``, ``<NAME>_FLUX_ERR``) and continuum-band means with errors
  (``<NAME>_CONT``, ``<NAME>_CONT_ERR``), with flags (``<NAME>_FLAG``);
* surface brightness in SDSS ugriz (AB) and Bessell UBVRI (Vega) where the
  camera covers the band (``MAG_FLAG`` marks the others).

Output: ``OUT/lines/<plate4>/lines-<plate4>-<mjd5>.fits``, HDU1 ``LINES``, one
row per row of the extract META table, in the same order (docs/lines.md).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..config import Config
from ..io import products
from ..io.fitsutil import open_fits, write_hdus
from ..io.products import table_hdu
from ..spectral.features import load_features, measure_features
from ..spectral.photometry import BANDS, sky_magnitudes
from . import _common

extract_output = products.SKY.path

log = logging.getLogger(__name__)

STAGE = "lines"
KEY_COLUMNS = products.LINES.keys


def output_path(out, plate: int, mjd: int) -> Path:
    """Where the lines stage writes plate ``plate`` observed on ``mjd``."""
    return products.LINES.path(out, plate, mjd)


#: Units of the measurement columns (see :func:`skymodelling.io.products.line_units`).
column_units = products.line_units


def measure_block(wave, flux, ivar, arm: str, features: Table, *, area_arcsec2: float,
                  min_coverage: float, corr=None) -> dict[str, np.ndarray]:
    """All measurements of the spectra of one camera (pure: arrays in, columns out);
    ``corr``: the pixels' noise correlation of resampled spectra (the mean's), which the
    errors of the line fluxes and band means include."""
    cols = measure_features(wave, flux, ivar, features, arm, corr=corr)
    cols.update(sky_magnitudes(wave, flux, ivar, area_arcsec2=area_arcsec2,
                               min_coverage=min_coverage))
    return cols


def _empty_columns(features: Table, n: int) -> dict[str, np.ndarray]:
    """Every measurement column, NaN (flags 0), for ``n`` rows."""
    cols = {}
    for row in features:
        name = str(row["NAME"])
        kinds = ("SUM", "FLUX", "FLUX_ERR") if str(row["KIND"]) == "line" else (
            "MEAN3", "CONT", "CONT_ERR")
        for k in kinds:
            cols[f"{name}_{k}"] = np.full(n, np.nan)
        cols[f"{name}_FLAG"] = np.zeros(n, dtype=np.int16)
    for band, _, _ in BANDS:
        cols[band] = np.full(n, np.nan)
    cols["MAG_FLAG"] = np.zeros(n, dtype=np.int16)
    return cols


def lines_table(path: Path, config: Config) -> Table:
    """Measure every spectrum of one extract output file; one row per META row."""
    cfg = config.lines
    features = load_features(cfg.line_list)
    with open_fits(path) as hdul:
        meta = Table.read(hdul["META"], unit_parse_strict="silent", mask_invalid=False)
        n = len(meta)
        cols = _empty_columns(features, n)
        cameras = np.asarray(meta["CAMERA"]).astype(str)
        for cam in sorted(set(cameras)):
            sel = np.flatnonzero(cameras == cam)
            wave, flux, ivar = _common.camera_arrays(hdul, path, cam)
            rows = np.asarray(meta["ROW"])[sel]
            got = measure_block(wave[rows], flux[rows], ivar[rows], cam[0], features,
                                area_arcsec2=cfg.fiber_area_arcsec2,
                                min_coverage=cfg.min_coverage)
            for name, values in got.items():
                cols[name][sel] = values
    table = Table({k: meta[k] for k in KEY_COLUMNS})
    for name, values in cols.items():
        table[name] = values
    return table


#: What identifies the upstream output a file was made from.
input_signature = products.upstream_signature


def lines_plate(task) -> dict:
    """Run the stage on one extract output (a worker task)."""
    source, config, out, strict, force = task

    def work(target, plate, mjd, failures):
        table = lines_table(source, config)
        features = load_features(config.lines.line_list)
        primary = _common.primary_hdu(STAGE, config, PLATE=plate, MJD=mjd, NSPEC=len(table),
                                      FIBAREA=(config.lines.fiber_area_arcsec2,
                                               "fibre solid angle, arcsec2"))
        write_hdus(target, [primary,
                            table_hdu(table, products.LINES.table, column_units(features))])
        return len(table)

    return _common.plate_task(STAGE, source, out, config, strict, target_of=output_path,
                              inputs=input_signature(source), work=work, force=force)


def run_lines(out, config: Config | None = None, *, workers: int = 1,
              strict: bool = False, executor=None, force: bool = False) -> _common.StageSummary:
    """Measure every complete extract output under ``out`` (``force``: redo every output)."""
    config = config or Config()
    sources = _common.extract_outputs(out)
    load_features(config.lines.line_list)  # fail early on a bad line list
    tasks = [(p, config, Path(out), strict, force) for p in sources]
    return _common.run_tasks(STAGE, lines_plate, tasks, out, workers, executor)


__all__ = ["run_lines", "lines_table", "measure_block", "output_path", "extract_output"]
