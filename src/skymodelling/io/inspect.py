"""Describe a file or folder in a few lines (for ``skymodelling inspect`` and for logs).

Knows the BOSS reduction files (spPlate, spFrame, spCFrame, spFluxcalib, platelist), the
package's own outputs (every per-plate product of :mod:`skymodelling.io.products`, the merged
catalogues in FITS and Parquet, the ``.done`` completion markers) and folders: a BOSS
reduction tree RAW or an output folder OUT (what each stage holds, complete or not).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import BossFileError
from .fitsutil import get_hdu, header_float, header_int, header_str, image_shape, open_fits
from .frames import read_frame
from .paths import parse_filename
from .platelist import read_platelist
from .plugmap import is_sky
from .spfluxcalib import read_spfluxcalib
from .spplate import read_spplate

__all__ = ["describe_file", "describe_path", "format_description", "guess_product"]

#: The per-plate products by the stage name their files' SMSTAGE card holds (the fibre
#: decompositions say SMSTAGE decompose and SPECTRA fibres).
_BY_STAGE = {"extract": "sky", "enrich": "conditions", "lines": "lines", "mean": "mean",
             "decompose": "decomp"}


def _own_product(path: Path) -> str | None:
    """The package product a file name says (``products.PRODUCTS`` key, ``catalogue``,
    ``marker``), or None."""
    from . import products

    name = path.name
    if name.endswith(".done"):
        return "marker"
    for key, product in products.PRODUCTS.items():
        if product.parse(path):
            return key
    stem, _, ext = name.partition(".")
    if stem in products.CATALOGUES and ext in ("fits", "parquet"):
        return "catalogue"
    return None


def guess_product(path) -> str:
    """The product of a file: from its name when BOSS-like, else from its content.

    Raises
    ------
    BossFileError
        Missing file, or a file that looks like none of the products.
    """
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise BossFileError(path, "no such file or folder")
    own = _own_product(path)
    if own:
        return own
    parsed = parse_filename(path)
    if parsed:
        return parsed["product"]
    if path.suffix == ".parquet":
        raise BossFileError(path, "a Parquet file that is not a merged catalogue "
                                  "(all, good, clean or removed.parquet)")
    if not path.name.lower().endswith((".fits", ".fits.gz", ".fit", ".fts", ".fits.fz")):
        raise BossFileError(path, "not a file inspect knows (a BOSS or skymodelling FITS "
                                  "file, a merged catalogue .parquet, a .done marker or a "
                                  "folder)")
    with open_fits(path) as hdul:
        h0 = get_hdu(hdul, 0, path, "primary")
        hdr = h0.header
        stage = str(hdr.get("SMSTAGE", ""))
        if stage == "merge":
            return "catalogue"
        if stage in _BY_STAGE:   # a package output renamed
            return ("decomp-fibres" if stage == "decompose"
                    and str(hdr.get("SPECTRA", "")).strip() == "fibres" else _BY_STAGE[stage])
        n = _count_hdus(hdul, 9)
        if n >= 2 and isinstance(hdul[1], fits.BinTableHDU) and hdr.get("NAXIS", 0) == 0:
            if {"PLATE", "MJD"} <= set(hdul[1].columns.names):
                return "platelist"
        if "NEXP" in hdr and any(k.startswith("EXPID") for k in hdr):
            return "spPlate"
        if n >= 6 and isinstance(hdul[5], fits.BinTableHDU):
            hdu3 = hdul[3]
            if isinstance(hdu3, fits.BinTableHDU):
                return "spFrame"
            if isinstance(hdu3, fits.ImageHDU):
                return "spCFrame"
        if "WAVEMIN" in hdr and len(image_shape(h0)) == 2:
            return "spFluxcalib"
        looked = (f"{n} HDU(s), HDU0 {type(h0).__name__} {image_shape(h0)}, "
                  f"EXTNAMEs {[hdul[i].name for i in range(n)]}")
    raise BossFileError(path, f"not a recognised BOSS product (name {path.name!r}; {looked})")


def _count_hdus(hdul, limit: int) -> int:
    """len(hdul) without reading more than ``limit`` headers."""
    for i in range(limit):
        try:
            hdul[i]
        except IndexError:
            return i
    return limit


def describe_file(path) -> dict:
    """A dictionary summarising a BOSS file.

    Keys depend on the product (always ``product`` and ``path``):

    * spPlate: plate, mjd, nexp, nexp_per_camera, complete, exposures (list of dicts)
    * spFrame / spCFrame: camera, exposure, plate, mjd, n_fibers, n_sky_fibers,
      wavelength_range_A, exptime
    * spFluxcalib: camera, exposure, shape, WAVEMIN, WAVEMAX
    * platelist: n_plates, n_bad, mjd_range, run2d

    Raises
    ------
    BossFileError
        Missing, unreadable or unrecognised file.
    """
    path = Path(path)
    product = guess_product(path)
    info: dict = {"product": product, "path": str(path)}
    if product == "folder":
        return describe_folder(path)
    if product == "marker":
        return _describe_marker(path, info)
    if product == "catalogue":
        return _describe_catalogue(path, info)
    from . import products

    if product in products.PRODUCTS:
        return _describe_output(path, info, products.PRODUCTS[product])
    if product == "spPlate":
        sp = read_spplate(path)
        info.update(plate=sp.plate, mjd=sp.mjd, nexp=sp.nexp,
                    nexp_per_camera=dict(sp.nexp_per_camera), complete=sp.complete,
                    exposures=[e.as_dict() for e in sp.exposures])
    elif product in ("spFrame", "spCFrame"):
        frame = read_frame(path, with_sky=False)  # by content: the name may mislead
        info["product"] = frame.product
        loglam = frame.loglam
        if frame.product == "spCFrame" and np.any(frame.ivar > 0):
            loglam = loglam[frame.ivar > 0]
        info.update(camera=frame.camera, exposure=frame.expid, plate=frame.plate,
                    mjd=frame.mjd, n_fibers=int(frame.nrow),
                    n_sky_fibers=int(np.count_nonzero(is_sky(frame.plugmap))),
                    wavelength_range_A=[float(10 ** np.min(loglam)),
                                        float(10 ** np.max(loglam))],
                    exptime=header_float(frame.header, "EXPTIME"))
    elif product == "spFluxcalib":
        calib, header = read_spfluxcalib(path)
        parsed = parse_filename(path) or {}
        camera = header_str(header, "CAMERAS") or parsed.get("camera", "")
        expid = header_int(header, "EXPOSURE")
        info.update(camera=camera, exposure=expid if expid >= 0 else parsed.get("expid", -1),
                    shape=list(calib.shape), WAVEMIN=header_float(header, "WAVEMIN"),
                    WAVEMAX=header_float(header, "WAVEMAX"))
    elif product == "platelist":
        table = read_platelist(path)
        n_bad = (int(np.count_nonzero(np.asarray(table["PLATEQUALITY"]) == "bad"))
                 if "PLATEQUALITY" in table.colnames else None)
        mjd = np.asarray(table["MJD"]) if "MJD" in table.colnames else np.array([])
        info.update(n_plates=len(table), n_bad=n_bad,
                    mjd_range=[int(mjd.min()), int(mjd.max())] if mjd.size else None,
                    run2d=sorted(set(np.asarray(table["RUN2D"]).tolist()))
                    if "RUN2D" in table.colnames else [])
    else:
        raise BossFileError(path, f"describing {product} files is not supported")
    return info


describe_path = describe_file


def _describe_marker(path: Path, info: dict) -> dict:
    from . import products

    output = path.with_name(path.name[:-len(".done")])
    marker = products.marker_info(output)
    if not marker:
        raise BossFileError(path, "not a readable completion marker (JSON)")
    kind = _own_product(output)
    stage = ("merge" if kind == "catalogue" else
             products.PRODUCTS[kind].stage if kind in products.PRODUCTS else None)
    parts = marker.get("parts")
    algorithm = parts.get("algorithm") if isinstance(parts, dict) else None
    info.update(output=str(output), output_exists=output.is_file(),
                output_complete=products.is_complete(output), stage=stage,
                size=marker.get("size"), key=marker.get("key"), version=marker.get("version"),
                algorithm=algorithm, n_spectra=marker.get("n_spectra"),
                inputs=sorted(marker.get("inputs") or {})
                if isinstance(marker.get("inputs"), dict) else [])
    return info


def _table_summary(table, info: dict) -> None:
    """Rows, columns and the plates/exposures/cameras of a table (keys as columns)."""
    names = list(table.colnames)
    info.update(n_rows=len(table), n_columns=len(names))
    if "PLATE" in names and "MJD" in names:
        pm = np.column_stack([np.asarray(table["PLATE"]), np.asarray(table["MJD"])])
        info["n_plates"] = int(len(np.unique(pm, axis=0))) if len(pm) else 0
    if "IMG" in names:
        info["n_exposures"] = int(len(np.unique(np.asarray(table["IMG"]))))
    if "CAMERA" in names:
        info["cameras"] = sorted({str(c).strip() for c in np.asarray(table["CAMERA"])})


def _describe_catalogue(path: Path, info: dict) -> dict:
    from astropy.table import Table

    from . import products

    info["complete"] = products.is_complete(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
            cols = [c for c in ("PLATE", "MJD", "IMG", "CAMERA") if c in pf.schema_arrow.names]
            table = Table(pf.read(columns=cols).to_pydict())
            meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
            n_columns = len(pf.schema_arrow.names)
        except Exception as exc:   # pyarrow's errors are of several kinds
            raise BossFileError(path, f"unreadable Parquet ({exc})") from None
        info.update(format="parquet", catalogue=meta.get("PRODUCT", path.stem.split(".")[0]),
                    version=meta.get("SMVERS"))
    else:
        with open_fits(path) as hdul:
            hdr = hdul[0].header
            if "CATALOG" not in hdul:
                raise BossFileError(path, "no CATALOG table (not a merged catalogue)")
            table = Table.read(hdul["CATALOG"], unit_parse_strict="silent")
            n_columns = len(table.colnames)
        info.update(format="fits", catalogue=str(hdr.get("PRODUCT", path.stem)),
                    version=hdr.get("SMVERS"))
    _table_summary(table, info)
    info["n_columns"] = n_columns
    return info


def _describe_output(path: Path, info: dict, product) -> dict:
    from . import products

    info["complete"] = products.is_complete(path)
    with open_fits(path) as hdul:
        hdr = hdul[0].header
        if product.table not in hdul:
            raise BossFileError(path, f"no {product.table} table (a damaged or unfinished "
                                      f"{product.stage} output?)")
        table = products.read_table(hdul[product.table], product.table)
        info.update(stage=str(hdr.get("SMSTAGE", product.stage)), version=hdr.get("SMVERS"),
                    algorithm=hdr.get("SMALGO"), plate=header_int(hdr, "PLATE"),
                    mjd=header_int(hdr, "MJD"), table=product.table,
                    hdus=[h.name for h in hdul[1:]])
    _table_summary(table, info)
    return info


def describe_folder(path) -> dict:
    """What a folder holds: an output folder OUT (per stage: files, complete or not) or a
    BOSS reduction tree RAW (plates and files per product).

    Raises
    ------
    BossFileError
        A folder that is neither.
    """
    from . import products

    path = Path(path)
    info: dict = {"path": str(path)}
    stages = {}
    for key, product in products.PRODUCTS.items():
        found = product.files(path, complete=False)
        if not found and not (path / product.folder).is_dir():
            continue
        done = [p for p in found if products.is_complete(p)]
        stages[key] = {"stage": product.stage, "files": len(found), "complete": len(done),
                       "plates": len({product.parse(p)[0] for p in found})}
    merge = path / "merge"
    if merge.is_dir():
        targets = [merge / f"{c}.{e}" for c in products.CATALOGUES for e in ("fits", "parquet")]
        stages["catalogue"] = {"stage": "merge", "files": sum(t.is_file() for t in targets),
                               "complete": sum(products.is_complete(t) for t in targets),
                               "expected": len(targets)}
    if stages:
        failures = sorted((path / "failures").glob("*.csv"))
        info.update(product="output folder", stages=stages,
                    failure_files=len(failures), run_log=(path / "run.log").is_file())
        return info
    counts: dict = {}
    plates = set()
    for f in path.glob("*/*/*"):
        parsed = parse_filename(f)
        if parsed:
            counts[parsed["product"]] = counts.get(parsed["product"], 0) + 1
            plates.add((f.parent.parent.name, f.parent.name))
    platelists = [str(p.relative_to(path)) for p in
                  [path / "platelist.fits", *sorted(path.glob("*/platelist.fits"))]
                  if p.is_file()]
    if counts or platelists:
        info.update(product="BOSS reduction tree", run2d=sorted({r for r, _ in plates}),
                    n_plates=len(plates), files=dict(sorted(counts.items())),
                    platelists=platelists)
        return info
    raise BossFileError(path, "neither a BOSS reduction tree (RAW/<run2d>/<plate4>/spPlate-"
                              "...) nor a skymodelling output folder (OUT/extract/...)")


def format_description(info: dict) -> str:
    """A few human-readable lines from :func:`describe_file` output."""
    product = info.get("product", "?")
    lines = [f"{info.get('path', '?')}: {product}"]
    if product == "output folder":
        for key, s in info["stages"].items():
            if key == "catalogue":
                lines.append(f"  merge: {s['files']} of {s['expected']} catalogue files "
                             f"({s['complete']} complete)")
                continue
            state = "complete" if s["complete"] == s["files"] else "INCOMPLETE"
            lines.append(f"  {s['stage']} ({key}): {s['files']} file(s) for {s['plates']} "
                         f"plate(s), {s['complete']} complete: {state}")
        lines.append(f"  {info['failure_files']} problem files in failures/"
                     + ("; run.log" if info["run_log"] else ""))
    elif product == "BOSS reduction tree":
        per = ", ".join(f"{n} {k}" for k, n in info["files"].items())
        lines.append(f"  {info['n_plates']} plate folders (RUN2D {', '.join(info['run2d'])}): "
                     f"{per or 'no BOSS files'}")
        lines.append(f"  platelist: {', '.join(info['platelists']) or 'none'}")
    elif product == "marker":
        state = ("complete" if info["output_complete"] else
                 "INCOMPLETE (size differs)" if info["output_exists"] else "output missing")
        lines.append(f"  completion marker of {info['output']} ({info['stage'] or '?'}): "
                     f"{state}; size {info['size']}, key {info['key']}"
                     + (f", {info['n_spectra']} spectra" if info["n_spectra"] is not None
                        else ""))
    elif product == "catalogue":
        lines.append(f"  merged catalogue {info['catalogue']} ({info['format']}), "
                     f"{info['n_rows']} rows x {info['n_columns']} columns, "
                     f"{info.get('n_plates', '?')} plate-MJDs, "
                     f"{info.get('n_exposures', '?')} exposures; "
                     f"{'complete' if info['complete'] else 'no completion marker'}")
    elif "table" in info:   # a per-plate output of the package
        lines[0] += f" (skymodelling {info['stage']} output)"
        lines.append(f"  plate {info['plate']}  MJD {info['mjd']}  {info['table']}: "
                     f"{info['n_rows']} rows, {info.get('n_exposures', '?')} exposures, "
                     f"cameras {', '.join(info.get('cameras', []))}; "
                     f"{'complete' if info['complete'] else 'no completion marker'}")
        lines.append(f"  skymodelling {info['version']}, algorithm {info['algorithm']}; "
                     f"HDUs {', '.join(info['hdus'])}")
    elif product == "spPlate":
        per_cam = ", ".join(f"{k} {v}" for k, v in info["nexp_per_camera"].items())
        lines.append(f"  plate {info['plate']}  MJD {info['mjd']}  NEXP {info['nexp']} "
                     f"({per_cam})")
        expids = sorted({e["expid"] for e in info["exposures"]})
        lines.append(f"  {len(info['exposures'])} camera-frames, exposures "
                     f"{', '.join(map(str, expids))}")
        if not info["complete"]:
            lines.append("  WARNING: EXPIDnn cards do not list all NEXP frames "
                         "(list the spCFrame files instead)")
    elif product in ("spFrame", "spCFrame"):
        lo, hi = info["wavelength_range_A"]
        lines.append(f"  camera {info['camera']}  exposure {info['exposure']}  plate "
                     f"{info['plate']}  MJD {info['mjd']}  EXPTIME {info['exptime']:g} s")
        lines.append(f"  {info['n_fibers']} fibres ({info['n_sky_fibers']} sky), "
                     f"{lo:.1f}-{hi:.1f} A")
    elif product == "spFluxcalib":
        lines.append(f"  camera {info['camera']}  exposure {info['exposure']}  shape "
                     f"{tuple(info['shape'])}  WAVEMIN-WAVEMAX {info['WAVEMIN']:g}-"
                     f"{info['WAVEMAX']:g} A")
    elif product == "platelist":
        lines.append(f"  {info['n_plates']} plate-MJDs ({info['n_bad']} bad), MJD "
                     f"{info['mjd_range']}, RUN2D {', '.join(info['run2d'])}")
    return "\n".join(lines)
