"""Fit, predict, save and load a predictive sky model (docs/model.md).

A :class:`SkyModel` holds, for each *target* (a catalogue column: a continuum
band ``<NAME>_CONT`` in 1e-17 erg/s/cm2/A or a line flux ``<NAME>_FLUX`` in
1e-17 erg/s/cm2), a physically structured fit (:mod:`.physical`) and/or a
gradient-boosted fit (:mod:`.boosted`), each giving a prediction and a 68 %
interval from the observing conditions (:mod:`.features`).

Saved as two files: ``MODEL.json`` (format, package version, training
provenance, conditions and features with units, every target with its
physical parameters) and ``MODEL.npz`` (the boosted trees as plain arrays,
named ``<target>/<point|spread>/<array>``; its SHA-256 is in the JSON). No
pickle: :func:`load_model` needs numpy only.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from .. import __version__
from .._atomic import atomic_path, write_text_atomic
from ..errors import SkyModellingError
from .boosted import TREE_ARRAYS, fit_boosted, predict_boosted
from .columns import CONDITION_COLUMNS, CONDITION_NAMES
from .features import (
    EXPOSURE_KEYS,
    FEATURE_NAMES,
    FEATURES,
    TIME_COLUMN,
    aggregate_exposures,
    conditions_arrays,
    feature_matrix,
)
from .physical import INTERVAL, PARAMS, SPREAD_PARAMS, fit_physical, predict_physical

log = logging.getLogger(__name__)

FORMAT = "skymodelling-model"
FORMAT_VERSION = 1
KIND_CHOICES = ("physical", "boosted", "both")
#: Line fluxes fitted by default when present (blended halves left out).
MAIN_LINES = ("OI5577", "NAD", "OI6300", "OI6364", "NI5200", "HG4358", "HG5461", "NA5686",
              "O28607", "O28697")
#: Fewest exposures with a positive target for each kind.
MIN_ROWS = {"physical": 5, "boosted": 30}
LINE_UNIT = "1e-17 erg s-1 cm-2"
CONT_UNIT = "1e-17 erg s-1 cm-2 Angstrom-1"


def catalogue_targets(colnames) -> dict[str, dict]:
    """The targets a catalogue offers: every ``<NAME>_CONT`` band and main ``<NAME>_FLUX``.

    Returns
    -------
    dict
        column -> ``{"kind": "continuum" | "line", "wave": vacuum A, "camera": b | r,
        "unit": ...}``, from the bundled feature list.

    Examples
    --------
    >>> sorted(catalogue_targets(["C460B_CONT", "OI5577_FLUX", "NAD1_FLUX", "X"]))
    ['C460B_CONT', 'OI5577_FLUX']
    """
    from ..spectral.features import load_features

    out = {}
    for row in load_features():
        name, kind = str(row["NAME"]), str(row["KIND"])
        col = f"{name}_CONT" if kind == "continuum" else f"{name}_FLUX"
        if col in colnames and (kind == "continuum" or name in MAIN_LINES):
            out[col] = {"kind": kind, "wave": float(row["WAVE"]), "camera": str(row["CAMERA"]),
                        "unit": CONT_UNIT if kind == "continuum" else LINE_UNIT}
    return out


class SkyModel:
    """A fitted sky model: targets, their fits and the provenance.

    Use :func:`fit_model` or :func:`load_model` to get one.
    """

    def __init__(self, targets: dict, meta: dict, arrays: dict | None = None):
        self.targets = targets
        self.meta = meta
        self._arrays = arrays or {}

    def kinds(self, target: str) -> list[str]:
        """The fitted kinds of ``target`` (``physical``, ``boosted``)."""
        return [k for k in ("physical", "boosted") if self.targets[target].get(k)]

    def default_kind(self, target: str) -> str:
        """``boosted`` when fitted (better on the real BOSS data, docs/model.md), else physical."""
        return "boosted" if "boosted" in self.kinds(target) else "physical"

    def predict(self, conditions, *, kind: str | None = None, targets=None) -> Table:
        """Predicted targets and their 68 % intervals for each row of ``conditions``.

        Parameters
        ----------
        conditions : astropy.table.Table or mapping
            Enrich columns (:data:`~skymodelling.model.features.CONDITION_NAMES`).
        kind : {"physical", "boosted"}, optional
            Default: :meth:`default_kind` of each target.
        targets : sequence of str, optional
            Default: all.

        Returns
        -------
        astropy.table.Table
            For each target ``T``: ``T`` (prediction), ``T_LO`` and ``T_HI``
            (68 % interval), with units; ``meta["KIND_T"]`` the kind used.

        Examples
        --------
        >>> from skymodelling.model.synthetic import synthetic_conditions, synthetic_sky
        >>> cond = synthetic_conditions(300, seed=1)
        >>> cond["C460B_CONT"] = synthetic_sky(conditions_arrays(cond), seed=2)
        >>> model = fit_model(cond, kind="physical")
        >>> pred = model.predict(cond[:2])
        >>> bool((pred["C460B_CONT_LO"] < pred["C460B_CONT_HI"]).all())
        True
        """
        cond = conditions_arrays(conditions)
        out = Table()
        for target in targets or list(self.targets):
            if target not in self.targets:
                raise SkyModellingError(f"the model has no target {target}; it has "
                                        f"{', '.join(self.targets)}")
            use = kind or self.default_kind(target)
            if use not in self.kinds(target):
                raise SkyModellingError(f"target {target} has no {use} fit; refit with "
                                        f"--kind {use} or both")
            info = self.targets[target]
            if use == "physical":
                mean, lo, hi = predict_physical(info["physical"], cond)
            else:
                mean, lo, hi = predict_boosted(self._trees(target), feature_matrix(cond))
            for suffix, values in (("", mean), ("_LO", lo), ("_HI", hi)):
                out[target + suffix] = values
                out[target + suffix].unit = info.get("unit") or None
            out.meta[f"KIND_{target}"] = use
        return out

    def _trees(self, target: str) -> dict:
        info = self.targets[target]["boosted"]
        return {"point": {k: self._arrays[f"{target}/point/{k}"] for k in
                          ("baseline", "tree_start", *TREE_ARRAYS)},
                "spread": {k: self._arrays[f"{target}/spread/{k}"] for k in
                           ("baseline", "tree_start", *TREE_ARRAYS)},
                **{k: v for k, v in info.items() if k not in ("point", "spread")}}

    def save(self, path) -> Path:
        """Write ``path`` (JSON, ``.json`` added if absent) and its ``.npz`` beside it.

        Both are written atomically, the npz first; the JSON records the npz's
        SHA-256, so a JSON with a stale or missing npz is refused on loading.
        """
        path = Path(path)
        if path.suffix != ".json":
            path = path.with_name(path.name + ".json")
        npz = path.with_suffix(".npz")
        buf = io.BytesIO()
        np.savez_compressed(buf, **self._arrays)
        data = buf.getvalue()
        with atomic_path(npz) as tmp:
            Path(tmp).write_bytes(data)
        doc = {**self.meta, "arrays": npz.name, "arrays_sha256": hashlib.sha256(data).hexdigest(),
               "targets": self.targets}
        write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")
        log.info("model written to %s (+ %s)", path, npz.name)
        return path


def load_model(path) -> SkyModel:
    """Read a model written by :meth:`SkyModel.save`.

    Raises
    ------
    SkyModellingError
        The file is missing, not a skymodelling model, of a newer format, or its
        npz is missing or does not match the recorded checksum.
    """
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".json").exists():
        path = path.with_name(path.name + ".json")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SkyModellingError(f"cannot read model {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SkyModellingError(f"{path} is not a skymodelling model (no format "
                                f"{FORMAT!r}); make one with 'skymodelling model fit'")
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise SkyModellingError(f"{path} has model format {doc['format_version']}; this "
                                f"skymodelling reads up to {FORMAT_VERSION}: upgrade it")
    npz = path.with_name(doc["arrays"])
    try:
        data = npz.read_bytes()
    except OSError:
        raise SkyModellingError(f"model {path} needs {npz}, which is missing; copy it "
                                "beside the JSON or refit") from None
    if hashlib.sha256(data).hexdigest() != doc["arrays_sha256"]:
        raise SkyModellingError(f"{npz} does not match the checksum in {path}; refit the model")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    saved = [f.get("name") for f in doc.get("features", [])]
    boosted = any("boosted" in t for t in doc.get("targets", {}).values())
    if boosted and saved != list(FEATURE_NAMES):
        raise SkyModellingError(
            f"{path} was fitted on the inputs {', '.join(saved)}; this skymodelling's "
            f"boosted model uses {', '.join(FEATURE_NAMES)}: refit it with 'skymodelling "
            "model fit'")
    targets = doc.pop("targets")
    for k in ("arrays", "arrays_sha256"):
        doc.pop(k)
    return SkyModel(targets, doc, arrays)


def _provenance(table: Table, source) -> dict:
    keys = [np.asarray(table[k]).astype(np.int64) for k in EXPOSURE_KEYS if k in table.colnames]
    digest = hashlib.sha256()
    for k in keys:
        digest.update(np.ascontiguousarray(k).tobytes())
    prov = {"rows": len(table), "keys_sha256": digest.hexdigest()}
    if "PLATE" in table.colnames:
        prov["plates"] = int(len(np.unique(np.asarray(table["PLATE"]))))
    if source is not None:
        p = Path(source)
        prov["file"] = str(p)
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            prov["file_sha256"] = h.hexdigest()
    for card in ("SMVERS", "SMCONFIG"):
        if card in table.meta:
            prov[f"catalogue_{card}"] = str(table.meta[card])[:2000]
    return prov


def fit_model(table: Table, *, targets=None, kind: str = "both", source=None,
              group_column: str = "PLATE", seed: int = 0) -> SkyModel:
    """Fit a model of each target from a table of conditions and targets (one row per exposure).

    Parameters
    ----------
    table : astropy.table.Table
        Enrich columns and targets, one row per exposure (see
        :func:`fit_catalogue` for a per-spectrum catalogue).
    targets : sequence of str or dict, optional
        Target columns (or column -> wavelength in A); default
        :func:`catalogue_targets`.
    kind : {"physical", "boosted", "both"}
    source : path, optional
        The training file, recorded (name, SHA-256) in the model.
    group_column : str
        Groups (plates) of the boosted model's inner split.
    seed : int

    Returns
    -------
    SkyModel

    Examples
    --------
    >>> from skymodelling.model.synthetic import synthetic_conditions, synthetic_sky
    >>> cond = synthetic_conditions(200, seed=1)
    >>> cond["SKY"] = synthetic_sky(conditions_arrays(cond), seed=2)
    >>> fit_model(cond, targets={"SKY": 4700.0}, kind="physical").kinds("SKY")
    ['physical']
    """
    if kind not in KIND_CHOICES:
        raise SkyModellingError(f"kind must be one of {', '.join(KIND_CHOICES)}, not {kind!r}")
    kinds = ("physical", "boosted") if kind == "both" else (kind,)
    if targets is None:
        info = catalogue_targets(table.colnames)
    elif isinstance(targets, dict):
        info = {t: {"kind": "continuum", "wave": float(w), "unit": str(
            getattr(table[t], "unit", "") or "")} for t, w in targets.items()}
    else:
        known = catalogue_targets(table.colnames)
        info = {t: known.get(t, {"kind": "continuum", "wave": None, "unit": ""})
                for t in targets}
    missing = [t for t in info if t not in table.colnames]
    if not info or missing:
        raise SkyModellingError(
            f"no target column {', '.join(missing) if missing else ''} in the table; "
            "give a catalogue with <NAME>_CONT / <NAME>_FLUX columns (docs/lines.md)")
    cond = conditions_arrays(table)
    X = feature_matrix(cond) if "boosted" in kinds else None
    groups = np.asarray(table[group_column]) if group_column in table.colnames else None
    fitted, arrays = {}, {}
    for target, tinfo in info.items():
        y = np.ma.filled(np.ma.asarray(table[target], dtype=float), np.nan)
        n_ok = int((np.isfinite(y) & (y > 0)).sum())
        entry = dict(tinfo, n_positive=n_ok, n_rows=len(y))
        for k in kinds:
            if n_ok < MIN_ROWS[k]:
                log.warning("target %s: %d exposures with a positive value, fewer than the %d "
                            "a %s fit needs; not fitted", target, n_ok, MIN_ROWS[k], k)
        if "physical" in kinds and n_ok >= MIN_ROWS["physical"]:
            entry["physical"] = fit_physical(cond, y, groups)
        if "boosted" in kinds and n_ok >= MIN_ROWS["boosted"]:
            fit = fit_boosted(X, y, groups, seed=seed)
            for part in ("point", "spread"):
                for k, v in fit.pop(part).items():
                    arrays[f"{target}/{part}/{k}"] = v
            entry["boosted"] = fit
        if "physical" not in entry and "boosted" not in entry:
            continue
        fitted[target] = entry
        log.info("fitted %s (%d exposures)", target, n_ok)
    if not fitted:
        raise SkyModellingError(
            f"no target has enough exposures with a positive value to fit (physical needs "
            f"{MIN_ROWS['physical']}, boosted {MIN_ROWS['boosted']}); give a larger catalogue")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "interval": INTERVAL, "kinds": list(kinds),
            "training": _provenance(table, source),
            "conditions": [{"name": n, "unit": u, "description": d}
                           for n, u, d in CONDITION_COLUMNS],
            "features": [{"name": n, "unit": u} for n, u in FEATURES],
            "physical_params": list(PARAMS), "physical_spread_params": list(SPREAD_PARAMS)}
    return SkyModel(fitted, meta, arrays)


def read_table(path) -> Table:
    """A FITS (first table HDU) or Parquet table; one-line errors for the user."""
    path = Path(path)
    if not path.exists():
        raise SkyModellingError(f"{path} does not exist")
    try:
        if path.suffix == ".parquet":
            return Table.read(path, format="parquet")
        if path.suffix in (".csv", ".ecsv"):
            return Table.read(path, format="ascii.ecsv" if path.suffix == ".ecsv" else "csv")
        return Table.read(path, hdu=1)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
        raise SkyModellingError(f"cannot read table {path}: {exc}") from None


def fit_catalogue(path, *, kind: str = "both", targets=None, seed: int = 0) -> SkyModel:
    """Fit from a merged catalogue (per spectrum): median per exposure, then :func:`fit_model`.

    Parameters
    ----------
    path : path
        ``OUT/merge/clean.fits`` or ``.parquet`` (docs/merge.md), or any
        table with PLATE, MJD, IMG, the enrich columns and the targets.
    kind, targets, seed
        As :func:`fit_model`.
    """
    table = read_table(path)
    info = catalogue_targets(table.colnames) if targets is None else {
        t: {} for t in targets}
    time = [TIME_COLUMN] if TIME_COLUMN in table.colnames else []
    per_exposure = aggregate_exposures(table, [*CONDITION_NAMES, *time, *info])
    per_exposure.meta.update(table.meta)
    log.info("%s: %d rows, %d exposures", path, len(table), len(per_exposure))
    return fit_model(per_exposure, targets=targets, kind=kind, source=path, seed=seed)
