"""Samplers producing the initial training frames (xTB/MM MD, metadynamics, normal modes, Wigner, PCA, adaptive).

Only some of them draw from a physical ensemble; the others bias or extend it on purpose (to
cover configurations for training) and their frames carry no Boltzmann weights. Averages over
frames, such as an absorption spectrum, may only use :data:`UNBIASED_SAMPLERS`.
"""

from __future__ import annotations

#: Samplers whose frames are an unbiased sample of a physical ensemble (``Frame.info["sampler"]``).
UNBIASED_SAMPLERS: dict[str, str] = {
    "xtb_md": "canonical ensemble of the xTB/MM potential (Langevin MD at sampling.xtb_md.temperature)",
    "wigner": "harmonic Wigner distribution of the QM region at sampling.wigner.temperature",
}
#: Samplers whose frames are biased or extended (no reweighting is done anywhere).
BIASED_SAMPLERS: dict[str, str] = {
    "metadynamics": "history-dependent PLUMED bias along the CVs",
    "normal_modes": "displacements along normal modes (distribution and environment set by the config)",
    "pca": "extrapolated along the principal components beyond the sampled range",
    "adaptive": "walkers restarted in rarely visited CV bins",
}


def check_unbiased(samplers: dict[str, int], source: str, purpose: str) -> None:
    """Raise ValueError naming ``source`` if frames of any sampler outside :data:`UNBIASED_SAMPLERS`
    (``samplers``: sampler name -> number of frames) would enter ``purpose``."""
    biased = {name: n for name, n in samplers.items() if name not in UNBIASED_SAMPLERS}
    if biased:
        why = "; ".join(f"{n} {name} frame(s): {BIASED_SAMPLERS.get(name, 'not a known unbiased sampler')}"
                        for name, n in sorted(biased.items()))
        raise ValueError(f"{source}: {purpose} takes unbiased frames only ({', '.join(UNBIASED_SAMPLERS)}), "
                         f"without reweighting; got {why}")
