"""Tests of sky/airglow.py: OH line positions and line lists."""
import numpy as np
import pytest

from skymodelling.sky.airglow import (
    airglow_continuum,
    airglow_lines,
    atomic_lines,
    hps_continuum,
    light_pollution_lines,
    o2_atmospheric_lines,
    oh_lines,
)
from skymodelling.sky.units import vacuum_to_air

# Air wavelengths of strong OH sky lines (Osterbrock et al. 1996, PASP 108, 277).
# The first group was used to adjust the effective constants (see airglow.py);
# the second group was not and is an independent check.
FIT_LINES = {
    "OH(6-2)P1(2.5)": 8399.17, "OH(6-2)P1(3.5)": 8430.17, "OH(6-2)P1(4.5)": 8465.36,
    "OH(8-3)P1(2.5)": 7316.28, "OH(8-3)P1(3.5)": 7340.89, "OH(9-3)P1(2.5)": 6287.43,
}
CHECK_LINES = {
    "OH(5-1)P1(2.5)": 7964.65, "OH(5-1)P1(3.5)": 7993.33, "OH(5-1)P1(4.5)": 8025.67,
    "OH(7-2)P1(3.5)": 6923.22, "OH(7-3)P1(2.5)": 8885.85, "OH(7-3)P1(4.5)": 8958.10,
    "OH(9-4)P1(2.5)": 7794.11, "OH(9-4)P1(3.5)": 7821.50,
}
TOLERANCE_A = 2.0


@pytest.mark.parametrize("name,air", list({**FIT_LINES, **CHECK_LINES}.items()))
def test_oh_positions(name, air):
    t = oh_lines()
    sel = np.asarray(t["NAME"]) == name
    assert sel.sum() == 1
    assert float(vacuum_to_air(t["WAVE"][sel][0])) == pytest.approx(air, abs=TOLERANCE_A)


def test_oh_rms_independent_lines():
    t = oh_lines()
    names = np.asarray(t["NAME"])
    err = [float(vacuum_to_air(t["WAVE"][names == n][0])) - w for n, w in CHECK_LINES.items()]
    assert np.sqrt(np.mean(np.square(err))) < 1.2


def test_oh_table_columns_and_range():
    t = oh_lines()
    assert set(t.colnames) == {"WAVE", "INTENSITY", "NAME", "SPECIES"}
    assert t["WAVE"].min() >= 3500 and t["WAVE"].max() <= 10500
    assert np.all(t["INTENSITY"] > 0)
    # P1 lines of a band at 190 K peak at low J: P1(2.5) or P1(3.5) beats P1(8.5).
    names = np.asarray(t["NAME"])
    i25 = t["INTENSITY"][names == "OH(6-2)P1(3.5)"][0]
    i85 = t["INTENSITY"][names == "OH(6-2)P1(8.5)"][0]
    assert i25 > 3 * i85


def test_o2_band_near_8650():
    t = o2_atmospheric_lines()
    air = vacuum_to_air(np.asarray(t["WAVE"]))
    # The (0-1) atmospheric band lies between ~8600 and ~8720 A (air).
    assert air.min() > 8590 and air.max() < 8730


def test_atomic_and_artificial_lines():
    t = atomic_lines()
    w = dict(zip(t["NAME"], t["WAVE"], strict=True))
    assert w["[OI]5577"] == pytest.approx(5578.89, abs=0.05)  # vacuum
    assert w["NaD2"] == pytest.approx(5891.58, abs=0.05)
    lp = light_pollution_lines()
    assert {"Hg", "NaHPS"} == set(lp["SPECIES"])
    assert len(airglow_lines()) > 1000


def test_continua_positive():
    w = np.linspace(3500, 10500, 500)
    c = airglow_continuum(w)
    assert np.all(c > 0.1) and np.all(c < 5)
    h = hps_continuum(w)
    assert h.max() > 0 and h[w < 5400].max() == 0
