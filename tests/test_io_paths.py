"""File names and folder layout."""
from __future__ import annotations

from pathlib import Path

import pytest

from skymodelling.io import paths


def test_names():
    assert paths.spframe_name("b1", 116475) == "spFrame-b1-00116475.fits.gz"
    assert paths.spcframe_name("b1", 116475) == "spCFrame-b1-00116475.fits"
    assert paths.spfluxcalib_name("b1", 116475) == "spFluxcalib-b1-00116475.fits.gz"
    assert paths.spplate_name(4055, 55359) == "spPlate-4055-55359.fits"
    assert paths.plate_dir("/raw", "v5_7_0", 399) == Path("/raw/v5_7_0/0399")
    assert paths.CAMERAS == ("b1", "b2", "r1", "r2") and paths.RUN2D_DEFAULT == "v5_7_0"
    with pytest.raises(ValueError):
        paths.spframe_name("g1", 1)


def test_parse_filename():
    assert paths.parse_filename("spFrame-b1-00116475.fits.gz") == {
        "product": "spFrame", "camera": "b1", "expid": 116475}
    assert paths.parse_filename("/x/spCFrame-r2-00116475.fits")["product"] == "spCFrame"
    assert paths.parse_filename("spFluxcalib-r1-00116475.fits")["camera"] == "r1"
    assert paths.parse_filename("spFluxcorr-b2-00116475.fits.gz")["product"] == "spFluxcorr"
    assert paths.parse_filename("spPlate-4055-55359.fits.gz") == {
        "product": "spPlate", "plate": 4055, "mjd": 55359}
    assert paths.parse_filename("platelist.fits") == {"product": "platelist"}
    assert paths.parse_filename("spFrame-b3-00116475.fits") is None
    assert paths.parse_filename("notes.txt") is None


def test_spectrographs():
    assert [paths.spectrograph_of(c) for c in paths.CAMERAS] == [1, 2, 1, 2]
    assert [paths.fiberid_offset(c) for c in paths.CAMERAS] == [0, 500, 0, 500]


def test_find(tmp_path):
    assert paths.find_platelist(tmp_path) is None
    (tmp_path / "v5_7_2").mkdir()
    (tmp_path / "v5_7_2" / "platelist.fits").write_bytes(b"")
    assert paths.find_platelist(tmp_path) == tmp_path / "v5_7_2" / "platelist.fits"
    (tmp_path / "platelist.fits").write_bytes(b"")
    assert paths.find_platelist(tmp_path) == tmp_path / "platelist.fits"

    folder = paths.plate_dir(tmp_path, "v5_7_0", 4055)
    folder.mkdir(parents=True)
    assert paths.find_frame(folder, "spFrame", "b1", 116475) is None
    (folder / "spFrame-b1-00116475.fits").write_bytes(b"")
    (folder / "spCFrame-b1-00116475.fits.gz").write_bytes(b"")
    assert paths.find_frame(folder, "spFrame", "b1", 116475).name == "spFrame-b1-00116475.fits"
    assert paths.find_frame(folder, "spCFrame", "b1", 116475).name.endswith(".fits.gz")
    with pytest.raises(ValueError):
        paths.find_frame(folder, "spArc", "b1", 1)
