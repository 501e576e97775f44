"""platelist.fits reading and writing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling.errors import BossFileError
from skymodelling.io.platelist import read_platelist, write_platelist

REFERENCE = Path("/work/shared/reference/platelist.fits")


def test_round_trip(tmp_path):
    table = Table({"PLATE": np.array([4055, 4056], np.int32),
                   "MJD": np.array([55359, 55360], np.int32),
                   "RUN2D": ["v5_7_0", "v5_7_2"],
                   "PLATEQUALITY": ["good", "bad "],
                   "SEEING50": np.array([1.2, 0.0], np.float32)})
    path = tmp_path / "platelist.fits"
    write_platelist(path, table)
    with fits.open(path) as hdul:
        assert hdul[1].data["PLATE"].dtype == np.dtype(">i4")
    got = read_platelist(path)
    assert got["PLATE"].dtype == np.int32 and got["PLATE"].dtype.isnative
    assert got["PLATEQUALITY"].tolist() == ["good", "bad"]
    assert got["RUN2D"].tolist() == ["v5_7_0", "v5_7_2"]


def test_missing_table(tmp_path):
    path = tmp_path / "platelist.fits"
    fits.PrimaryHDU().writeto(path)
    with pytest.raises(BossFileError, match="HDU 1"):
        read_platelist(path)


@pytest.mark.skipif(not REFERENCE.is_file(), reason="reference platelist not available")
def test_reference_platelist():
    table = read_platelist(REFERENCE)
    assert len(table) == 2647
    assert int((table["PLATEQUALITY"] == "bad").sum()) == 135
    assert set(table["RUN2D"]) == {"v5_7_0", "v5_7_2"}
    assert all(table[c].dtype.isnative for c in table.colnames if table[c].dtype.kind in "iuf")
