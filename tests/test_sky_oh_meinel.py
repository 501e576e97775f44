"""The simulator's full OH Meinel line list (sky/oh_meinel.py)."""
import numpy as np
import pytest

from skymodelling.sky import oh_meinel
from skymodelling.sky.airglow import _honl_london
from skymodelling.sky.units import vacuum_to_air

# Measured air wavelengths of bright sky lines (Osterbrock et al. 1996, PASP 108, 277):
# the P1 lines also used by tests/test_sky_airglow.py, and four Q1(1.5) lines.
P1_LINES = {
    "OH(6-2)P1(2.5)": 8399.17, "OH(6-2)P1(3.5)": 8430.17, "OH(6-2)P1(4.5)": 8465.36,
    "OH(8-3)P1(2.5)": 7316.28, "OH(8-3)P1(3.5)": 7340.89, "OH(9-3)P1(2.5)": 6287.43,
    "OH(5-1)P1(2.5)": 7964.65, "OH(5-1)P1(3.5)": 7993.33, "OH(5-1)P1(4.5)": 8025.67,
    "OH(7-2)P1(3.5)": 6923.22, "OH(7-3)P1(2.5)": 8885.85, "OH(7-3)P1(4.5)": 8958.10,
    "OH(9-4)P1(2.5)": 7794.11, "OH(9-4)P1(3.5)": 7821.50,
}
Q1_LINES = {"OH(8-3)Q1(1.5)": 7276.405, "OH(6-2)Q1(1.5)": 8344.602,
            "OH(5-1)Q1(1.5)": 7913.708, "OH(9-4)Q1(1.5)": 7750.640}


def _air(table, name):
    sel = np.asarray(table["NAME"]) == name
    assert sel.sum() == 1, name
    return float(vacuum_to_air(table["WAVE"][sel][0]))


def test_thousands_of_lines_in_the_boss_range():
    t = oh_meinel.oh_meinel_lines()
    inside = (t["WAVE"] > 3600) & (t["WAVE"] < 10400)
    assert inside.sum() > 5000
    assert np.all(t["INTENSITY"] > 0) and set(t["SPECIES"]) == {"OH"}
    # most are faint: the brightest 1000 carry > 99 % of the intensity
    s = np.sort(np.asarray(t["INTENSITY"]))[::-1]
    assert s[:1000].sum() / s.sum() > 0.99 and s.size - 1000 > 4000


def test_bright_line_positions_against_measured_sky_lines():
    # Measured here: median |delta| 0.51 A over the 14 P1 lines (max 1.42 A), Q1(1.5)
    # lines 1.1-3.0 A too blue: the effective constants are the limit (see docs).
    t = oh_meinel.oh_meinel_lines()
    dp = np.array([_air(t, n) - w for n, w in P1_LINES.items()])
    dq = np.array([_air(t, n) - w for n, w in Q1_LINES.items()])
    assert np.median(np.abs(dp)) < 0.6
    assert np.max(np.abs(dp)) < 1.5
    assert np.max(np.abs(dq)) < 3.5


def test_wigner3j_against_closed_forms():
    # Edmonds (1957) Table 2: (j+1 j 1; m -m 0) and (j j 1; m -m 0)
    j = np.array([0.5, 1.5, 2.5, 7.5])
    m = np.array([0.5, 0.5, 1.5, 1.5])
    want_p = ((-1.0) ** (j - m + 1)
              * np.sqrt(2 * (j + m + 1) * (j - m + 1) / ((2 * j + 3) * (2 * j + 2) * (2 * j + 1))))
    assert oh_meinel.wigner3j(j + 1, j, 1.0, m, -m, 0.0) == pytest.approx(want_p)
    want_q = (-1.0) ** (j - m) * m / np.sqrt(j * (j + 1) * (2 * j + 1))
    assert oh_meinel.wigner3j(j, j, 1.0, m, -m, 0.0) == pytest.approx(want_q)
    assert oh_meinel.wigner3j(1.5, 1.0, 3.5, 0.5, 0.0, -0.5) == 0.0   # triangle rule


def test_strengths_obey_the_sum_rule_and_satellites_are_weak():
    sig, ju, jl, fu, fl, s, names = oh_meinel.band_lines(6, 2)
    for f in (1, 2):
        for j in (1.5, 4.5, 12.5):
            sel = (ju == j) & (fu == f)
            assert s[sel].sum() == pytest.approx(2 * j + 1, rel=1e-9)
    assert s[fu != fl].sum() / s.sum() < 0.01


def test_low_j_strengths_approach_hunds_case_a():
    # OH (A/B ~ -7.5) is close to case (a) at low J: F1 is Omega = 3/2
    sig, ju, jl, fu, fl, s, names = oh_meinel.band_lines(6, 2)
    names = list(names)
    j_up = np.array([1.5])
    for branch, low in (("P", 2.5), ("Q", 1.5), ("R", 0.5)):
        name = f"OH(6-2){branch}1({low:.1f})"
        if name not in names:   # R1(0.5) does not exist (F1 starts at J = 1.5)
            continue
        got = s[names.index(name)]
        assert got == pytest.approx(_honl_london(branch, j_up, 1.5)[0], rel=0.1)


def test_rotational_temperature_and_hot_population_move_intensity_to_high_j():
    def high_j_share(**kw):
        t = oh_meinel.oh_meinel_lines(**kw)
        j = np.array([float(n.split("(")[-1].rstrip(")")) for n in t["NAME"]])
        return t["INTENSITY"][j > 8].sum() / t["INTENSITY"].sum()

    cold = high_j_share(hot_fraction=0.0)
    assert high_j_share(hot_fraction=0.0, t_rot=250.0) > cold
    assert high_j_share() > 3 * cold
    base = oh_meinel.oh_meinel_lines()
    scaled = oh_meinel.oh_meinel_lines(vib_scale={6: 2.0})
    six = np.char.startswith(np.asarray(base["NAME"], dtype=str), "OH(6-")
    assert scaled["INTENSITY"][six] == pytest.approx(2 * base["INTENSITY"][six])
    assert scaled["INTENSITY"][~six] == pytest.approx(base["INTENSITY"][~six])
