"""Environment scan: one MM molecule pulled away from the QM region, QM geometry fixed.

The cleanest test of an environment-aware model: only the environment changes, so a model blind
to the MM charges predicts a flat curve, and the reference curve is the QM region's electrostatic
embedding energy (PySCF, the labels' level) as a function of that molecule's distance. Energies
are relative to the farthest point (eV); distances are between the molecule's anchor site (the MM
site with the most negative charge nearest to the QM region, e.g. a water O) and the nearest QM
heavy atom (Å). The molecule is the anchor's MM group (``mm_molecule``), moved whole, and carries
its embedding weight (:mod:`mlmm.embedding`) at every distance, as in the labels. With a covalent
boundary the MM groups holding the cut bonds' M1 atoms stay in place (and are never the one moved).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from ase import Atoms

from mlmm.frames import LINK_INFO, encode_link_atoms, link_atoms

#: Anchor–QM distances of the scan (Å): H-bond contact to nearly free.
DEFAULT_DISTANCES_ANG = (2.5, 2.7, 2.9, 3.1, 3.4, 3.8, 4.5, 6.0)


def scan_frames(frame: Atoms, distances_ang: Sequence[float] = DEFAULT_DISTANCES_ANG) -> tuple[list[Atoms], dict[str, Any]]:
    """Frames of the QM region plus one MM molecule moved rigidly along the anchor–QM axis.

    The anchor is the most negative MM site among those closest to a QM heavy atom (within 0.5 Å
    of the nearest); the molecule is the anchor's MM group (``mm_molecule``).
    Returns (frames, description with the anchor's index, charge and starting distance in Å).
    """
    qm = np.asarray(frame.arrays["qm_mask"], bool)
    charges = frame.get_initial_charges()
    groups = np.asarray(frame.arrays["mm_molecule"])
    links, ratios = link_atoms(frame)
    bonded = np.isin(groups, groups[links[:, 2]]) & ~qm  # the MM groups of cut bonds stay where they are
    heavy = np.flatnonzero(qm & (frame.numbers > 1))
    mm = np.flatnonzero(~qm & ~bonded & (charges < 0))
    if len(heavy) == 0 or len(mm) == 0:
        raise ValueError("environment scan: the frame needs a QM heavy atom and a negatively charged MM site")
    dist = np.linalg.norm(frame.positions[mm][:, None] - frame.positions[heavy][None], axis=2)
    nearest = dist.min(axis=1)
    close = mm[nearest < nearest.min() + 0.5]
    anchor = int(close[np.argmin(charges[close])])
    molecule = np.flatnonzero(frame.arrays["mm_molecule"] == frame.arrays["mm_molecule"][anchor])
    qm_atom = int(heavy[np.argmin(np.linalg.norm(frame.positions[heavy] - frame.positions[anchor], axis=1))])
    axis = frame.positions[anchor] - frame.positions[qm_atom]
    d0 = float(np.linalg.norm(axis))
    axis /= d0
    keep = np.r_[np.flatnonzero(qm), np.flatnonzero(bonded), molecule]
    base = frame[keep]
    if len(links):
        position = {int(k): i for i, k in enumerate(keep)}
        base.info[LINK_INFO] = encode_link_atoms(np.vectorize(position.__getitem__)(links), ratios)
    moved = np.arange(len(keep) - len(molecule), len(base))
    frames = []
    for d in distances_ang:
        f = base.copy()
        f.positions[moved] += (float(d) - d0) * axis
        frames.append(f)
    return frames, {"anchor_site": anchor, "anchor_charge_e": float(charges[anchor]), "qm_atom": qm_atom,
                    "start_distance_ang": d0, "molecule_sites": int(len(molecule))}


def environment_scan(
    frame: Atoms, level: Any, ensembles: Mapping[str, Any], distances_ang: Sequence[float] = DEFAULT_DISTANCES_ANG
) -> dict[str, Any]:
    """Reference (PySCF QM/MM at ``level``) and model energy curves of :func:`scan_frames`.

    ``ensembles`` maps a name to an object with ``compute(frame)["energy"]`` (eV). Returns the
    distances (Å), curves relative to the farthest point (eV) and, per model, the mean absolute
    deviation from the reference curve and the binding at the closest point (eV).
    """
    from mlmm.engines.pyscf_qmmm import qmmm_energy_forces

    frames, info = scan_frames(frame, distances_ang)
    far = int(np.argmax(distances_ang))
    ref = np.array([qmmm_energy_forces(f, level).energy_ev for f in frames])
    ref -= ref[far]
    out: dict[str, Any] = {**info, "distances_ang": [float(d) for d in distances_ang], "reference_ev": ref.tolist(),
                           "models": {}}
    close = int(np.argmin(distances_ang))
    for name, ensemble in ensembles.items():
        curve = np.array([float(ensemble.compute(f)["energy"]) for f in frames])
        curve -= curve[far]
        out["models"][name] = {
            "curve_ev": curve.tolist(),
            "mad_ev": float(np.mean(np.abs(curve - ref))),
            "closest_ev": float(curve[close]),
        }
    out["reference_closest_ev"] = float(ref[close])
    return out
