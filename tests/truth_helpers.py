"""Test helpers for the simulator's truth, computed independently of the simulator."""
from __future__ import annotations

import numpy as np


def smoothed_transmission(tell, sigma_a: float) -> tuple[np.ndarray, np.ndarray]:
    """The truth's TELLURIC transmission (a table with WAVE, TRANS on a uniform grid)
    through a Gaussian of ``sigma_a`` Angstrom: what a calibration at the instrument's
    resolution carries. Returns (wave, smoothed transmission)."""
    tw, tt = np.asarray(tell["WAVE"], dtype=float), np.asarray(tell["TRANS"], dtype=float)
    step = tw[1] - tw[0]
    x = np.arange(-int(5 * sigma_a / step), int(5 * sigma_a / step) + 1) * step
    kernel = np.exp(-0.5 * (x / sigma_a) ** 2)
    smooth = np.convolve(np.pad(tt, x.size // 2, mode="edge"), kernel / kernel.sum(), "valid")
    return tw, smooth
