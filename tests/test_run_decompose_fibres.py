"""``skymodelling run --decompose-spectra`` and the decompositions in the merged catalogue."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling.cli import main
from skymodelling.io import products
from skymodelling.pipeline import run_pipeline

slow = pytest.mark.slow   # the whole pipeline on a small tree, fibres decomposed: ~40 s


@pytest.fixture(scope="module")
def both_run(noiseless_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("runfibres") / "out"
    code = main(["run", str(noiseless_tree), str(out), "--executor", "serial",
                 "--decompose-spectra", "both"])
    return out, code


def _catalogue(out, name="all"):
    return Table.read(products.catalogue_path(out, name), hdu="CATALOG",
                      unit_parse_strict="silent", mask_invalid=False)


@slow
def test_run_both_makes_the_mean_and_fibre_decompositions(both_run):
    out, code = both_run
    assert code == 0
    assert products.DECOMP.files(out) and products.DECOMP_FIBRES.files(out)
    for path in products.DECOMP.files(out) + products.DECOMP_FIBRES.files(out):
        assert products.is_complete(path)
    log = (out / "run.log").read_text()
    assert "decompfibres:" in log and "decompose:" in log


@slow
def test_catalogue_carries_the_mean_decomposition_of_each_exposure_camera(both_run):
    out, _ = both_run
    cat = _catalogue(out)
    for col in ("DECOMP_OI5577_FLUX", "DECOMP_OI5577_FLUX_ERR", "DECOMP_RCHI2", "DECOMP_FLAG",
                "DECOMPFIB_OI5577_FLUX", "DECOMPFIB_OI5577_FLUX_ERR", "DECOMPFIB_RCHI2",
                "DECOMPFIB_FLAG"):
        assert col in cat.colnames, col
    assert cat["DECOMP_OI5577_FLUX"].unit is not None
    dec = Table.read(products.DECOMP.files(out)[0], hdu="DECOMPMETA", mask_invalid=False)
    cams = np.char.strip(np.asarray(cat["CAMERA"]).astype(str))
    for row in dec:
        sel = ((np.asarray(cat["IMG"]) == row["IMG"]) & (np.asarray(cat["PLATE"]) == row["PLATE"])
               & (cams == str(row["CAMERA"]).strip()))
        assert sel.sum() > 1                    # every fibre row of the exposure-camera
        np.testing.assert_array_equal(np.asarray(cat["DECOMP_OI6300_FLUX"])[sel],
                                      float(row["OI6300_FLUX"]))
        np.testing.assert_array_equal(np.asarray(cat["DECOMP_FLAG"])[sel], int(row["FLAG"]))
    # per fibre: the fibre table's own values, matched by fibre
    fib = Table.read(products.DECOMP_FIBRES.files(out)[0], hdu="DECOMPFIBRES", mask_invalid=False)
    fcams = np.char.strip(np.asarray(fib["CAMERA"]).astype(str))
    for k in (0, len(fib) // 2, len(fib) - 1):
        sel = ((np.asarray(cat["IMG"]) == fib["IMG"][k]) & (cams == fcams[k])
               & (np.asarray(cat["FIB"]) == fib["FIB"][k]))
        assert sel.sum() == 1
        np.testing.assert_array_equal(np.asarray(cat["DECOMPFIB_OI5577_FLUX"])[sel],
                                      np.asarray(fib["OI5577_FLUX"])[k])
    # the joined fluxes are no lines-stage measurement: the clean cut is unchanged
    from skymodelling.stages.merge import line_measure_columns

    assert not any(c.startswith("DECOMP") for c in line_measure_columns(cat))
    # and the Parquet catalogue has them, with units
    import pyarrow.parquet as pq

    schema = pq.read_schema(products.catalogue_path(out, "clean", "parquet"))
    assert schema.field("DECOMP_OI5577_FLUX").metadata[b"unit"]


@slow
def test_rerun_skips_both_modes_and_the_catalogue_follows_a_new_fibre_run(both_run, tmp_path,
                                                                          capsys):
    import shutil

    src, _ = both_run
    out = tmp_path / "out"
    shutil.copytree(src, out)
    summary = run_pipeline(None, out, first="decompose", decompose_spectra="both", show=False,
                           workers=1)
    parts = [s for s in summary.stages]
    assert [p.stage for p in parts] == ["decompose", "decompfibres"]
    assert all(p.n_skipped == p.n_tasks > 0 for p in parts)
    # the stage command: both modes, one summary line each
    capsys.readouterr()
    assert main(["decompose", str(out), "--spectra", "both"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["decompose", "decompfibres"]
    # without the fibre decompositions, merge is redone and drops the per-fibre columns
    for path in products.DECOMP_FIBRES.files(out):
        products.marker_path(path).unlink()
    run_pipeline(None, out, first="merge", show=False, workers=1)
    cat = _catalogue(out)
    assert "DECOMP_OI5577_FLUX" in cat.colnames and "DECOMPFIB_OI5577_FLUX" not in cat.colnames


def test_decompose_spectra_choices_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "raw", str(tmp_path), "--decompose-spectra", "objects"])
    from skymodelling.errors import SkyModellingError

    with pytest.raises(SkyModellingError, match="decompose_spectra"):
        run_pipeline(None, tmp_path, first="decompose", decompose_spectra="objects")


def test_join_fills_rows_without_a_decomposition():
    from skymodelling.stages.merge import NO_DECOMP_FLAG, join_decomposition

    meta = Table({"PLATE": [1, 1, 1], "IMG": [5, 5, 6], "CAMERA": ["b1", "r1 ", "b1"]})
    dec = Table({"PLATE": [1, 1], "IMG": [5, 5], "CAMERA": ["r1", "b1"],
                 "OI5577_FLUX": [2.0, 1.0], "OI5577_FLUX_ERR": [0.2, 0.1],
                 "RCHI2": [1.5, 1.1], "FLAG": [4, 0], "LSF_SIGMA": [1.0, 1.0]})
    dec["OI5577_FLUX"].unit = "1e-17 erg / (s cm2)"
    t = join_decomposition(meta.copy(), dec, ("PLATE", "IMG", "CAMERA"), "DECOMP_")
    np.testing.assert_array_equal(t["DECOMP_OI5577_FLUX"], [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(t["DECOMP_FLAG"], [0, 4, NO_DECOMP_FLAG])
    assert "DECOMP_LSF_SIGMA" not in t.colnames
    assert str(t["DECOMP_OI5577_FLUX"].unit) == str(dec["OI5577_FLUX"].unit)


# ------------------------------------------------- skymodelling inspect on what run wrote

@slow
def test_inspect_knows_every_output_and_the_folders(both_run, noiseless_tree, capsys):
    import json

    from skymodelling.io.inspect import describe_file

    out, _ = both_run
    for key, product in products.PRODUCTS.items():
        path = product.files(out)[0]
        info = describe_file(path)
        assert info["product"] == key and info["complete"], key
        table = Table.read(path, hdu=product.table)
        assert info["n_rows"] == len(table) > 0
        assert (info["plate"], info["mjd"]) == product.parse(path)
        assert "platelist" not in main_output(["inspect", str(path)], capsys)
    for ext in ("fits", "parquet"):
        path = products.catalogue_path(out, "clean", ext)
        info = describe_file(path)
        assert info["product"] == "catalogue" and info["format"] == ext
        assert info["n_rows"] == len(_catalogue(out, "clean")) and info["complete"]
    marker = products.marker_path(products.MEAN.files(out)[0])
    info = describe_file(marker)
    assert info["product"] == "marker" and info["output_complete"]
    assert info["stage"] == "mean" and info["n_spectra"] == len(Table.read(
        products.MEAN.files(out)[0], hdu="MEANMETA"))
    # OUT: every stage, complete
    text = main_output(["inspect", str(out)], capsys)
    for stage in ("extract", "enrich", "lines", "mean", "decompose", "decompfibres", "merge"):
        assert stage in text, stage
    assert "INCOMPLETE" not in text
    info = json.loads(main_output(["inspect", str(out), "--json"], capsys))
    assert info["stages"]["sky"]["files"] == info["stages"]["sky"]["complete"] == 1
    assert info["stages"]["catalogue"]["complete"] == 8
    # RAW: plate folders and frames
    info = describe_file(noiseless_tree)
    assert info["product"] == "BOSS reduction tree" and info["n_plates"] == 1
    assert info["files"]["spPlate"] == 1 and info["files"]["spCFrame"] > 0


def main_output(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out


def test_inspect_an_incomplete_output_and_unknown_paths(tmp_path, capsys):
    from skymodelling.io.inspect import describe_file

    # an OUT whose extract file has no marker: listed, not complete
    path = products.SKY.path(tmp_path / "out", 3985, 55320)
    path.parent.mkdir(parents=True)
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"PLATE": [3985], "MJD": [55320]}),
                                                       name="META")]).writeto(path)
    info = describe_file(tmp_path / "out")
    assert info["stages"]["sky"] == {"stage": "extract", "files": 1, "complete": 0,
                                     "plates": 1}
    assert "INCOMPLETE" in main_output(["inspect", str(tmp_path / "out")], capsys)
    assert describe_file(path)["product"] == "sky" and not describe_file(path)["complete"]
    # anything else: one line naming the path, exit 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.parquet").write_text("x")
    (tmp_path / "run.log").write_text("x")
    for bad in (tmp_path / "empty", tmp_path / "missing", tmp_path / "notes.parquet",
                tmp_path / "run.log"):
        capsys.readouterr()
        assert main(["inspect", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert str(bad) in err and len(err.splitlines()) == 1
