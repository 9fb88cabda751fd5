"""Solute → water hydrogen-bond scans: a linear H-bond's geometry, its relaxed scan and the curve's minimum.

The water accepts the donor's H: its O on the donor's X–H axis at X···O = r, the rigid water
turned about its O to the orientation of lowest energy at each r. One definition for the
benchmark (benchmarks/hbond_scan.py: xTB/MM, PySCF/MM and MLP/MM on one set of geometries) and
the test of the samplers' xTB/MM H-bond (tests/test_mm.py). Lengths in Å, energies in eV.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mlmm.units import KCAL_PER_MOL_TO_EV


def water_on_axis(positions_ang: np.ndarray, donor: int, hydrogen: int, water: Sequence[int], r_ang: float,
                  rotvec: np.ndarray) -> np.ndarray:
    """Positions with the water (atom indices ``water``, its O first) moved rigidly: O at ``r_ang``
    from the donor along the donor–H bond (linear H-bond), turned by ``rotvec`` (rad) about its O."""
    from scipy.spatial.transform import Rotation

    water = np.asarray(water)
    pos = np.array(positions_ang, float)
    xh = pos[hydrogen] - pos[donor]
    pos[water] = (pos[donor] + r_ang * xh / np.linalg.norm(xh)
                  + Rotation.from_rotvec(rotvec).apply(pos[water] - pos[water[0]]))
    return pos


def relaxed_water_scan(energy_ev: Callable[[np.ndarray], float], start_ang: np.ndarray, donor: int, hydrogen: int,
                       water: Sequence[int], r_grid_ang: Sequence[float]) -> tuple[list[np.ndarray], np.ndarray]:
    """Geometries and energies (eV) of the scan: at each r the water orientation minimising
    ``energy_ev(positions)`` (Powell from four orientations at the first r, then from the
    previous r's optimum, which follows one minimum along the curve)."""
    from scipy.optimize import minimize

    starts = [np.zeros(3), np.r_[np.pi, 0, 0], np.r_[0, np.pi / 2, 0], np.r_[0, 0, np.pi / 2]]
    geometries, energies = [], []
    for r in r_grid_ang:
        best = min((minimize(lambda v: energy_ev(water_on_axis(start_ang, donor, hydrogen, water, r, v)), x0,
                             method="Powell", options={"xtol": 1e-3, "ftol": 1e-8}) for x0 in starts),
                   key=lambda res: res.fun)
        geometries.append(water_on_axis(start_ang, donor, hydrogen, water, r, best.x))
        energies.append(float(best.fun))
        starts = [best.x]
    return geometries, np.array(energies)


def curve_summary(r_grid_ang: Sequence[float], energies_ev: Sequence[float]) -> dict[str, Any]:
    """Minimum of a scan (grid point and vertex of the parabola through it and its neighbours, Å)
    and the binding energy E(minimum) − E(last grid point) in eV and kcal/mol."""
    r = np.asarray(r_grid_ang, float)
    e = np.asarray(energies_ev, float)
    k = int(np.argmin(e))
    r_fit = float(r[k])
    if 0 < k < len(e) - 1:
        a, b, _ = np.polyfit(r[k - 1 : k + 2], e[k - 1 : k + 2], 2)
        r_fit = float(-b / (2 * a))
    binding = float(e[k] - e[-1])
    return {"r_min_ang": float(r[k]), "r_min_fit_ang": r_fit, "binding_eV": binding,
            "binding_kcal_per_mol": binding / KCAL_PER_MOL_TO_EV, "relative_energies_eV": (e - e[-1]).tolist()}
