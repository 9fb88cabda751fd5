"""How much QM–MM electrostatics the embedding leaves out, on the demo frame.

The demo system (config/config.yaml: ethanol in a periodic TIP3P box, QM = the selection there) at
its input geometry, with the config's ``system.embedding``. The QM region's HF/STO-3G density is
computed in the embedding-weighted charges (PySCF, as the labels). Left out are the charges
(1 − w_g) q_a of every MM molecule of the box, each placed whole at its minimum image relative to the
QM region (periodic images farther out are not counted; the box edge is 18.6 Å). Reported:

* ``energy_exact_ev``: first-order energy of the left-out charges in the potential of the QM nuclei
  and electrons, Σ_a φ_a (1 − w_a) q_a (φ of :func:`mlmm.engines.pyscf_qmmm.potential_at_points`);
  the QM region's polarisation by them is second order and not included;
* ``energy_mulliken_ev``: the same with the QM region as its Mulliken charges;
* ``potential_at_qm_v``: potential of the left-out charges at the QM atoms (V): mean, spread
  (max − min) and RMS about the QM mean (a uniform part couples only to the QM charge, 0 here).

    OMP_NUM_THREADS=1 python benchmarks/embedding_truncation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--basis", default="sto-3g")
    parser.add_argument("--quick", action="store_true", help="same calculation (it takes seconds); for the smoke test")
    parser.add_argument("--out", default="benchmarks/results/embedding_truncation.json")
    args = parser.parse_args(argv)

    from mlmm.config import load_config
    from mlmm.embedding import frame_weights, weights_of
    from mlmm.engines.pyscf_qmmm import embedded_scf, potential_at_points, run_scf
    from mlmm.jobs import system_from_config, write_json
    from mlmm.settings import Settings
    from mlmm.units import COULOMB_EV_ANGSTROM, HARTREE_TO_EV

    settings = Settings.from_config(load_config(args.config))
    structure = Path(settings.system.structure)
    system = system_from_config(str(structure if structure.is_absolute() else ROOT / structure), settings.system)
    embedding = settings.system.embedding
    info = dict(sampler="benchmark", iteration=0, source="embedding_truncation", seed=0)
    frame, _ = system.cut_frame(system.atoms.positions, embedding, **info)
    # every molecule of the box at its minimum image: an embedding wider than the box diagonal
    box = replace(embedding, cutoff=2.0 * float(np.linalg.norm(system.atoms.cell.lengths())) + embedding.switch_width)
    everything, _ = system.cut_frame(system.atoms.positions, box, **info)
    mask = everything.arrays["qm_mask"]
    w_box = weights_of(everything.positions, mask, everything.arrays["mm_molecule"], embedding)[~mask]
    left_out = (1.0 - w_box) * everything.get_initial_charges()[~mask]
    sites = everything.positions[~mask]

    level = replace(settings.labeling.level, method="hf", basis=args.basis, density_fit=False)
    mol, mf = embedded_scf(frame, level)
    mf, _ = run_scf(mf, level, stabilised=False)
    dm = mf.make_rdm1()
    phi = potential_at_points(mol, dm, sites) * HARTREE_TO_EV  # eV/e
    _, mulliken = mf.mulliken_pop(mol, dm, verbose=0)
    qm = everything.positions[mask]
    r = np.linalg.norm(qm[:, None] - sites[None], axis=2)
    v_qm = COULOMB_EV_ANGSTROM * (left_out[None] / r).sum(axis=1)  # V at each QM atom
    groups = everything.arrays["mm_molecule"][~mask]
    w = frame_weights(frame)[~frame.arrays["qm_mask"]]
    result = {
        "structure": str(settings.system.structure),
        "embedding": embedding.to_dict(),
        "level": f"hf/{args.basis}",
        "n_qm": int(mask.sum()),
        "n_molecules_box": int(len(np.unique(groups))),
        "n_molecules_embedded": int(len(np.unique(frame.arrays["mm_molecule"][~frame.arrays["qm_mask"]]))),
        "n_molecules_switched": int(len(np.unique(frame.arrays["mm_molecule"][~frame.arrays["qm_mask"]][w < 1.0]))),
        "left_out_charge_e": float(left_out.sum()),
        "energy_exact_ev": float(phi @ left_out),
        "energy_mulliken_ev": float(np.asarray(mulliken) @ v_qm),
        "potential_at_qm_v": {"mean": float(v_qm.mean()), "spread": float(np.ptp(v_qm)),
                              "rms_about_mean": float(np.sqrt(np.mean((v_qm - v_qm.mean()) ** 2)))},
        "units": {"energy": "eV", "potential": "V", "charge": "e", "length": "Å"},
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
