"""SPPIXMASK bit table and vectorised bit tests."""
from __future__ import annotations

import numpy as np
import pytest

from skymodelling.io import sppixmask as spm


def test_table_matches_idlutils():
    expected = ["NOPLUG", "BADTRACE", "BADFLAT", "BADARC", "MANYBADCOLUMNS", "MANYREJECTED",
                "LARGESHIFT", "BADSKYFIBER", "NEARWHOPPER", "WHOPPER", "SMEARIMAGE",
                "SMEARHIGHSN", "SMEARMEDSN"]
    assert [spm.SPPIXMASK[n] for n in expected] == list(range(13))
    pixel = ["NEARBADPIXEL", "LOWFLAT", "FULLREJECT", "PARTIALREJECT", "SCATTEREDLIGHT",
             "CROSSTALK", "NOSKY", "BRIGHTSKY", "NODATA", "COMBINEREJ", "BADFLUXFACTOR",
             "BADSKYCHI", "REDMONSTER"]
    assert [spm.SPPIXMASK[n] for n in pixel] == list(range(16, 29))
    assert len(spm.SPPIXMASK) == 26
    assert set(spm.FIBER_BITS) == set(expected) and set(spm.PIXEL_BITS) == set(pixel)


def test_bitmask():
    assert spm.bitmask(["NOPLUG", "FULLREJECT"]) == 1 | 1 << 18
    assert spm.bitmask("COMBINEREJ") == 1 << 25
    assert spm.bitmask([]) == 0
    with pytest.raises(ValueError, match="NOTABIT"):
        spm.bitmask(["NOPLUG", "NOTABIT"])


def test_test_and_decode():
    mask = np.zeros((3, 4), dtype=">i4")
    mask[0, 1] = 1
    mask[1, 2] = 1 << 18 | 1 << 23
    mask[2, 3] = np.int32(-(1 << 31))  # bit 31, unnamed
    hit = spm.test(mask, ["NOPLUG", "FULLREJECT"])
    assert hit.dtype == bool and hit.shape == (3, 4)
    assert np.flatnonzero(hit).tolist() == [1, 6]
    decoded = spm.decode(mask)
    assert sorted(decoded) == ["BIT31", "BRIGHTSKY", "FULLREJECT", "NOPLUG"]
    np.testing.assert_array_equal(decoded["BRIGHTSKY"], mask == (1 << 18 | 1 << 23))
    assert spm.names_of(1 << 18 | 1 << 23) == ["FULLREJECT", "BRIGHTSKY"]
    assert spm.names_of(-(1 << 31)) == ["BIT31"]
    assert spm.decode(np.zeros(5, np.int32)) == {}
    with pytest.raises(TypeError):
        spm.test(np.zeros(3), "NOPLUG")
