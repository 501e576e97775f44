"""Extract the ASTM G173-03 extraterrestrial solar spectrum for skymodelling.

One-off generator for ``src/skymodelling/data/solar_spectrum.csv``.

The ASTM G173-03 reference spectra (ASTM 2003; Gueymard 2004, Solar Energy 76, 423)
include an extraterrestrial (ETR) spectrum at 1 AU derived from Wehrli (1985). The
``pvlib`` package ships it as ``pvlib/data/ASTMG173.csv``. Get it without installing
pvlib::

    pip download --no-deps -d /tmp/pv pvlib
    unzip -o /tmp/pv/pvlib-*.whl 'pvlib/data/ASTMG173.csv' -d /tmp/pv
    python tools/make_solar_spectrum.py /tmp/pv/pvlib/data/ASTMG173.csv

The ETR column (W m^-2 nm^-1) is converted to erg s^-1 cm^-2 A^-1 (x 100) and the
wavelength to Angstrom (x 10). The ASTM wavelengths are nominal; we treat them as
vacuum wavelengths (the air-vacuum difference, 0.8-3 A here, is below the 5-10 A
sampling and the ~1 nm resolution of the spectrum).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HEADER = """\
# Solar spectral irradiance at 1 AU (extraterrestrial, ETR column) from the ASTM G173-03
# reference spectra (ASTM G173-03, 2003; Gueymard 2004, Solar Energy 76, 423), derived
# from Wehrli (1985, WRC publ. 615). Extracted from pvlib/data/ASTMG173.csv by
# tools/make_solar_spectrum.py. Sampling 5 A below 4000 A and 10 A above; resolution ~1 nm.
# Wavelengths are nominal ASTM values, treated as vacuum (difference below the resolution).
# WAVE: Angstrom; FLUX: erg s^-1 cm^-2 A^-1 (1 W m^-2 nm^-1 = 100 erg s^-1 cm^-2 A^-1).
WAVE,FLUX
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    src = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else (
        Path(__file__).resolve().parents[1] / "src/skymodelling/data/solar_spectrum.csv"
    )
    data = np.loadtxt(src, delimiter=",", skiprows=2, usecols=(0, 1))
    wave = data[:, 0] * 10.0
    flux = data[:, 1] * 100.0
    keep = (wave >= 2900.0) & (wave <= 11100.0)
    lines = [f"{w:.1f},{f:.4g}" for w, f in zip(wave[keep], flux[keep], strict=True)]
    out.write_text(HEADER + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
