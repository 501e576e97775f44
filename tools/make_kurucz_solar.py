"""Extract R. L. Kurucz's computed solar flux at R = 2000 for skymodelling.

One-off generator for ``src/skymodelling/data/solar_kurucz.csv``, the template that the
decompose stage fits for scattered sunlight (moonlight, zodiacal light, twilight).

Source: ``fsunallp.2000resam125`` from http://kurucz.harvard.edu/stars/sun/ (Kurucz's
solar model atmosphere with all his line lists, the flux degraded to a resolving power of
2000 and sampled every 1/4000 in ln(lambda); vacuum wavelengths in
nm). Kurucz's files are distributed freely from his site; the same file ships in the
Apache-2.0 ``rms-solar`` package on PyPI (PDS Ring-Moon Systems Node), which is the easy
way to get it offline::

    pip download --no-deps -d /tmp/rs rms-solar
    unzip -o /tmp/rs/rms_solar-*.whl 'solar/data_files/kurucz-fsunallp.2000resam125.txt' -d /tmp/rs
    python tools/make_kurucz_solar.py /tmp/rs/solar/data_files/kurucz-fsunallp.2000resam125.txt

Column 2 of the file is the flux moment H at the solar surface (erg s^-1 cm^-2 sr^-1 nm^-1);
the irradiance at 1 AU is 4 pi (R_sun / AU)^2 H (Kurucz's ``00asun.readme``), converted to
erg s^-1 cm^-2 A^-1 (/ 10). Kept: 3000-11000 A.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: 4 pi (R_sun / AU)^2 with the IAU nominal solar radius and the astronomical unit.
FACTOR = 4.0 * np.pi * (695700.0 / 149597870.7) ** 2

HEADER = """\
# Solar spectral irradiance at 1 AU computed by R. L. Kurucz (model atmosphere with all his
# line lists), degraded to a resolving power of 2000 and sampled every 1/4000 in ln(lambda):
# file fsunallp.2000resam125 of http://kurucz.harvard.edu/stars/sun/ (also in the Apache-2.0
# rms-solar package, solar/data_files/kurucz-fsunallp.2000resam125.txt). Irradiance =
# 4 pi (R_sun/AU)^2 x the flux moment; extracted by tools/make_kurucz_solar.py, 3000-11000 A.
# WAVE: Angstrom, vacuum; FLUX: erg s^-1 cm^-2 A^-1.
WAVE,FLUX
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    src = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else (
        Path(__file__).resolve().parents[1] / "src/skymodelling/data/solar_kurucz.csv")
    data = np.fromfile(src, sep=" ").reshape(-1, 3)
    wave = data[:, 0] * 10.0
    flux = data[:, 1] * FACTOR / 10.0
    keep = (wave >= 3000.0) & (wave <= 11000.0)
    rows = [f"{w:.3f},{f:.5g}" for w, f in zip(wave[keep], flux[keep], strict=True)]
    out.write_text(HEADER + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
