"""The SPPIXMASK bits of BOSS spFrame/spCFrame/spPlate mask images.

Our own copy of the SPPIXMASK section of idlutils ``data/sdss/sdssMaskbits.par``
(idlutils tag v5_5_x; also the SDSS DR9 page
https://www.sdss3.org/dr9/algorithms/bitmask_sppixmask.php and bossdata
``bits.py``). Bits 0-15 flag a whole fibre, bits 16-31 single pixels; bits
13-15 and 29-31 are unused. Set bits without a name are reported as
``"BITnn"`` by :func:`decode` and :func:`names_of`, and :func:`bitmask`
accepts those names too.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "SPPIXMASK",
    "FIBER_BITS",
    "PIXEL_BITS",
    "bitmask",
    "test",
    "decode",
    "names_of",
]

#: name -> bit number (idlutils data/sdss/sdssMaskbits.par, maskbits SPPIXMASK).
SPPIXMASK: dict[str, int] = {
    "NOPLUG": 0,           # fibre not listed in the plugmap file
    "BADTRACE": 1,         # bad trace from routine TRACE320CRUDE
    "BADFLAT": 2,          # low counts in fibre-flat
    "BADARC": 3,           # bad arc solution
    "MANYBADCOLUMNS": 4,   # more than 10% of pixels are bad columns
    "MANYREJECTED": 5,     # more than 10% of pixels are rejected in extraction
    "LARGESHIFT": 6,       # large spatial shift between flat and object position
    "BADSKYFIBER": 7,      # sky fibre shows extreme residuals
    "NEARWHOPPER": 8,      # within 2 fibres of a whopping fibre (deprecated)
    "WHOPPER": 9,          # whopping fibre, with a very bright source
    "SMEARIMAGE": 10,      # smear available for red and blue cameras (deprecated)
    "SMEARHIGHSN": 11,     # S/N sufficient for full smear fit (deprecated)
    "SMEARMEDSN": 12,      # S/N only sufficient for scaled median fit (deprecated)
    "NEARBADPIXEL": 16,    # bad pixel within 3 pixels of trace
    "LOWFLAT": 17,         # flat field less than 0.5
    "FULLREJECT": 18,      # pixel fully rejected in extraction (ivar = 0)
    "PARTIALREJECT": 19,   # some pixels rejected in extraction
    "SCATTEREDLIGHT": 20,  # scattered light significant
    "CROSSTALK": 21,       # cross-talk significant
    "NOSKY": 22,           # sky level unknown at this wavelength (ivar = 0)
    "BRIGHTSKY": 23,       # sky level > flux + 10 sigma and > 1.25 x median(sky, 99 pix)
    "NODATA": 24,          # no data available in combine B-spline (ivar = 0)
    "COMBINEREJ": 25,      # rejected in combine B-spline
    "BADFLUXFACTOR": 26,   # low flux-calibration or flux-correction factor
    "BADSKYCHI": 27,       # relative chi^2 > 3 in sky residuals at this wavelength
    "REDMONSTER": 28,      # contiguous region of bad chi^2 in sky residuals
}

_NAME_OF_BIT = {bit: name for name, bit in SPPIXMASK.items()}

#: Names of the whole-fibre bits (0-15).
FIBER_BITS: tuple[str, ...] = tuple(n for n, b in SPPIXMASK.items() if b < 16)
#: Names of the per-pixel bits (16-31).
PIXEL_BITS: tuple[str, ...] = tuple(n for n, b in SPPIXMASK.items() if b >= 16)


def _bit_of(name: str) -> int:
    key = str(name).strip().upper()
    if key in SPPIXMASK:
        return SPPIXMASK[key]
    if key.startswith("BIT") and key[3:].isdigit() and 0 <= int(key[3:]) < 32:
        return int(key[3:])
    raise ValueError(f"unknown SPPIXMASK bit name {name!r}")


def _name_of(bit: int) -> str:
    return _NAME_OF_BIT.get(bit, f"BIT{bit:02d}")


def bitmask(names: str | Iterable[str]) -> int:
    """OR of ``1 << bit`` over the named bits.

    Parameters
    ----------
    names : str or iterable of str
        One name or several (case-insensitive).

    Raises
    ------
    ValueError
        A name is not an SPPIXMASK bit.

    Examples
    --------
    >>> bitmask(["NOPLUG", "FULLREJECT"]) == 1 | 1 << 18
    True
    >>> bitmask("NOSKY")
    4194304
    """
    if isinstance(names, str):
        names = [names]
    value = 0
    for name in names:
        value |= 1 << _bit_of(name)
    return value


def _unsigned(mask) -> np.ndarray:
    """View an integer mask as unsigned, so that bit 31 needs no special care."""
    m = np.asarray(mask)
    if m.dtype.kind == "i":
        m = m.view(m.dtype.str.replace("i", "u"))
    elif m.dtype.kind != "u":
        raise TypeError(f"mask must be an integer array, not {m.dtype}")
    return m


def test(mask_array, names: str | Iterable[str]) -> np.ndarray:
    """True where any of the named bits is set (one bitwise AND over the array).

    Examples
    --------
    >>> m = np.array([[0, 1, 1 << 18, 4]], dtype=np.int32)
    >>> test(m, ["NOPLUG", "FULLREJECT"])
    array([[False,  True,  True, False]])
    """
    m = _unsigned(mask_array)
    return (m & np.asarray(bitmask(names), dtype=m.dtype)) != 0


def decode(mask_array) -> dict[str, np.ndarray]:
    """Boolean image per bit, for the bits that occur somewhere in ``mask_array``.

    Examples
    --------
    >>> m = np.array([1, 0, 1 | 1 << 22], dtype=np.int32)
    >>> {k: v.tolist() for k, v in decode(m).items()}
    {'NOPLUG': [True, False, True], 'NOSKY': [False, False, True]}
    """
    m = _unsigned(mask_array)
    present = int(np.bitwise_or.reduce(m, axis=None)) if m.size else 0
    out = {}
    for bit in range(m.dtype.itemsize * 8):
        if present >> bit & 1:
            out[_name_of(bit)] = (m & np.asarray(1 << bit, dtype=m.dtype)) != 0
    return out


def names_of(value: int) -> list[str]:
    """Names of the bits set in one mask value, lowest bit first.

    Examples
    --------
    >>> names_of((1 << 18) | 1)
    ['NOPLUG', 'FULLREJECT']
    """
    value = int(value) & 0xFFFFFFFF  # a negative int32 means bit 31 is set
    return [_name_of(bit) for bit in range(32) if value >> bit & 1]
