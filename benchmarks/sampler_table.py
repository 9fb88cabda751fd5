"""Comparison table of the samplers from a finished run (frames, wall time, energy/geometry spread).

Usage: python benchmarks/sampler_table.py [RESULTS_DIR] [--json OUT.json]

For every ``RESULTS_DIR/sampling/<sampler>/`` with frames.extxyz and stats.json it reports the
frames, the sampler's wall time (stats.json), and — on one common footing for all samplers —
the GFN2-xTB vacuum energy of the QM region of each frame (std and range, eV, plus the mean
above the lowest frame of all samplers) and the geometric spread of the QM region (mean RMSD to
the aligned mean structure, Å, and the mean std of the QM interatomic distances, Å). Prints a
Markdown table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mlmm.embedding import frame_embedding  # noqa: E402
from mlmm.engines.xtb import XTBTerm  # noqa: E402
from mlmm.frames import make_frame, qm_mask, read_frames  # noqa: E402
from mlmm.jobs import write_json  # noqa: E402
from mlmm.sampling.pca import align_to_mean  # noqa: E402

ORDER = ["xtb_md", "metadynamics", "normal_modes", "wigner", "pca", "adaptive"]


def qm_energies(frames) -> np.ndarray:
    """GFN2-xTB vacuum energies (eV) of the QM regions."""
    term = XTBTerm()
    out = []
    for f in frames:
        n = int(qm_mask(f).sum())
        qm = make_frame(f.get_chemical_symbols()[:n], f.positions[:n], [], np.zeros((0, 3)), [],
                        mm_molecule=[], embedding=frame_embedding(f), qm_charge=f.info["qm_charge"], multiplicity=f.info["multiplicity"], sampler="table",
                        iteration=0, source="table", seed=0)
        out.append(term.compute(qm)["energy"])
    return np.array(out)


def geometry_spread(frames) -> tuple[float, float]:
    n = int(qm_mask(frames[0]).sum())
    coords = np.array([f.positions[:n] for f in frames])
    aligned = align_to_mean(coords)
    rmsd = np.sqrt(((aligned - aligned.mean(axis=0)) ** 2).sum(axis=2).mean(axis=1)).mean()
    iu = np.triu_indices(n, 1)
    dist = np.linalg.norm(coords[:, :, None] - coords[:, None], axis=-1)[:, iu[0], iu[1]]
    return float(rmsd), float(dist.std(axis=0).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default="results")
    ap.add_argument("--json", default="benchmarks/sampler_table.json")
    args = ap.parse_args()
    base = Path(args.results) / "sampling"
    rows = {}
    for name in ORDER:
        d = base / name
        if not (d / "frames.extxyz").is_file() or not (d / "stats.json").is_file():
            continue
        frames = read_frames(d / "frames.extxyz")
        stats = json.loads((d / "stats.json").read_text())
        e = qm_energies(frames)
        rmsd, dstd = geometry_spread(frames)
        rows[name] = {"n_frames": len(frames), "wall_s": stats["wall_s"], "energy_std_ev": float(e.std()),
                      "energy_range_ev": float(np.ptp(e)), "energies_ev": e, "rmsd_to_mean_ang": rmsd,
                      "distance_std_ang": dstd, "has_momenta": bool(frames[0].has("momenta"))}
    e_min = min(float(r["energies_ev"].min()) for r in rows.values())
    print("| sampler | frames | wall time (s) | ⟨E⟩ − E_min (eV) | σ(E) (eV) | E range (eV) | RMSD to mean (Å) | σ(r_ij) (Å) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        r["energy_mean_above_min_ev"] = float(r["energies_ev"].mean() - e_min)
        print(f"| {name} | {r['n_frames']} | {r['wall_s']:.1f} | {r['energy_mean_above_min_ev']:.3f} | "
              f"{r['energy_std_ev']:.3f} | {r['energy_range_ev']:.3f} | {r['rmsd_to_mean_ang']:.3f} | "
              f"{r['distance_std_ang']:.3f} |")
    write_json(args.json, {"results": str(args.results), "samplers": rows})


if __name__ == "__main__":
    main()
