"""Stage merge: the catalogue, its cuts and its record of removals."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling.cli import main
from skymodelling.config import Config
from skymodelling.io.platelist import read_platelist, write_platelist
from skymodelling.stages.enrich import run_enrich
from skymodelling.stages.extract import run_extract
from skymodelling.stages.lines import run_lines
from skymodelling.stages.merge import (
    REASON_BAD,
    REASON_EXCLUDED,
    REASON_NO_LINES,
    run_merge,
)

KEYS = ("PLATE", "MJD", "IMG", "CAMERA", "FIB")


@pytest.fixture(scope="module")
def staged(sim_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("merge") / "out"
    run_extract(sim_tree, out, workers=2)
    run_enrich(out)
    run_lines(out)
    return out


def _read(out, product):
    return Table.read(out / "merge" / f"{product}.fits", hdu="CATALOG",
                      unit_parse_strict="silent", mask_invalid=False)


def _keys(table):
    return {tuple(str(v) for v in row) for row in table[KEYS]}


def test_partition_and_reasons(staged, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(staged, out)
    platelist = read_platelist(out / "platelist.fits")
    all_plates = sorted(int(p.name) for p in (out / "extract").iterdir())
    bad_plate, excluded_plate = all_plates
    platelist["PLATEQUALITY"][platelist["PLATE"] == bad_plate] = "bad"
    write_platelist(out / "platelist.fits", platelist)
    stats = run_merge(out, Config().replace("merge", exclude_plates=(excluded_plate,)),
                      verbose=False)
    every, good, clean, removed = (_read(out, p) for p in ("all", "good", "clean", "removed"))
    assert len(_keys(every)) == len(every)  # no duplicate spectrum
    assert _keys(clean) | _keys(removed) == _keys(every)
    assert not _keys(clean) & _keys(removed)
    assert len(clean) + len(removed) == len(every)
    reasons = dict(zip(map(int, removed["PLATE"]), removed["REASON"], strict=False))
    assert np.all(removed["REASON"][removed["PLATE"] == bad_plate] == REASON_BAD)
    assert reasons[excluded_plate] in (REASON_EXCLUDED, REASON_NO_LINES)
    assert len(good) == 0 and len(clean) == 0
    assert stats["all"]["spectra"] == len(every) and stats["removed"]["spectra"] == len(removed)


def test_clean_cut_removes_unusable_spectra(staged):
    run_merge(staged, verbose=False)
    every, good, clean, removed = (_read(staged, p) for p in ("all", "good", "clean", "removed"))
    assert len(good) == len(every)  # no plate of this tree is bad
    no_lines = removed[removed["REASON"] == REASON_NO_LINES]
    assert len(no_lines) > 0  # the unplugged sky fibre has nothing to measure
    assert _keys(clean) | _keys(removed) == _keys(every)
    sums = [c for c in clean.colnames if c.endswith(("_SUM", "_FLUX"))]
    values = np.column_stack([np.asarray(clean[c], dtype=float) for c in sums])
    assert np.all(np.any(np.isfinite(values) & (values != 0), axis=1))


def test_units_provenance_and_parquet(staged):
    import pyarrow.parquet as pq

    run_merge(staged, verbose=False)
    with fits.open(staged / "merge" / "clean.fits") as hdul:
        header = hdul[0].header
        assert header["SMSTAGE"] == "merge" and "SMVERS" in header and "DATE" in header
        units = {hdul[1].header[f"TTYPE{i}"]: hdul[1].header.get(f"TUNIT{i}")
                 for i in range(1, hdul[1].header["TFIELDS"] + 1)}
    assert units["MOON_ALT"] == "deg" and units["TAI-BEG"] == "s"
    assert units["OI5577_FLUX"].startswith("10**-17")
    assert units["SDSS_G"] == "mag arcsec-2"
    table = pq.read_table(staged / "merge" / "clean.parquet")
    assert table.num_rows == len(_read(staged, "clean"))
    assert table.schema.field("MOON_ALT").metadata[b"unit"] == b"deg"
    assert b"SMVERS" in table.schema.metadata
    assert sorted(p.name for p in (staged / "merge").glob("*.fits")) == [
        "all.fits", "clean.fits", "good.fits", "removed.fits"]


def test_rerun_is_skipped_and_new_settings_redo(staged, capsys):
    run_merge(staged, verbose=False)
    before = (staged / "merge" / "all.fits").stat().st_mtime_ns
    run_merge(staged, verbose=False)
    assert (staged / "merge" / "all.fits").stat().st_mtime_ns == before
    assert main(["merge", str(staged), "--exclude-plates", "3985"]) == 0
    out = capsys.readouterr().out
    assert "plate-MJDs" in out and "spectra" in out and "removed" in out
    assert (staged / "merge" / "all.fits").stat().st_mtime_ns != before
    removed = _read(staged, "removed")
    assert np.all(removed["REASON"][(removed["PLATE"] == 3985)
                                    & (removed["REASON"] != REASON_NO_LINES)]
                  == REASON_EXCLUDED)


def test_merge_needs_lines(sim_tree, tmp_path):
    from skymodelling.errors import SkyModellingError

    run_extract(sim_tree, tmp_path / "out", plates=[3985])
    with pytest.raises(SkyModellingError, match="run skymodelling lines"):
        run_merge(tmp_path / "out", verbose=False)


def test_parquet_takes_big_endian_fits_columns(tmp_path):
    """A catalogue of one plate keeps the FITS byte order; Arrow needs native order."""
    pq = pytest.importorskip("pyarrow.parquet")
    from skymodelling.stages.merge import write_parquet

    table = Table({"FLUX": np.arange(3, dtype=">f4"), "IVAR": np.ones((3, 2), dtype=">f8"),
                   "PLATE": np.array([1, 2, 3], dtype=">i4")})
    write_parquet(tmp_path / "c.parquet", table, {"FLUX": "1e-17 erg/(s cm2 Angstrom)"},
                  [("VERSION", "x", "")])
    back = pq.read_table(tmp_path / "c.parquet")
    assert back.column("FLUX").to_pylist() == [0.0, 1.0, 2.0]
    assert back.column("IVAR").to_pylist() == [[1.0, 1.0]] * 3
    assert back.schema.field("FLUX").metadata[b"unit"] == b"1e-17 erg/(s cm2 Angstrom)"
