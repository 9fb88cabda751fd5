"""PCA-based sampling: new QM geometries along the leading principal components of a trajectory.

The QM coordinates of a trajectory's Frames are aligned (iterative Kabsch onto their mean),
MDAnalysis' ``PCA`` is fitted on them, and new structures are drawn uniformly in the box spanned
by the sampled projections on the ``n_components`` leading components, widened by ``extend``
(1.0 = the sampled range, 1.5 = 50 % beyond it). A new structure is re-embedded in the
environment of the trajectory Frame nearest in PC space and rejected when an atom pair involving
a QM atom is closer than ``min_distance_ang``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlmm.frames import n_real_qm
from mlmm.sampling.common import embed_qm, kabsch, min_qm_distance
from mlmm.settings import PCASettings

_log = logging.getLogger(__name__)


@dataclass
class PCAModel:
    mean: np.ndarray  #: (n, 3) Å
    components: np.ndarray  #: (3n, k) orthonormal columns
    variance: np.ndarray  #: (k,) Å²
    projections: np.ndarray  #: (T, k) Å of the fitted frames
    aligned: np.ndarray  #: (T, n, 3) aligned input coordinates

    def reconstruct(self, projections: np.ndarray) -> np.ndarray:
        """Coordinates (…, n, 3) from projections (…, m ≤ k) on the leading m components."""
        m = projections.shape[-1]
        flat = self.mean.ravel() + projections @ self.components[:, :m].T
        return flat.reshape(*projections.shape[:-1], *self.mean.shape)

    def project(self, coords: np.ndarray) -> np.ndarray:
        """Projections (…, k) of aligned coordinates (…, n, 3)."""
        flat = coords.reshape(*coords.shape[:-2], -1) - self.mean.ravel()
        return flat @ self.components


def align_to_mean(coords: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Coordinates (T, n, 3) rigidly aligned onto their (iteratively refined) mean."""
    coords = np.asarray(coords, float)
    ref = coords[0] - coords[0].mean(axis=0)
    out = coords.copy()
    for _ in range(iterations):
        for t in range(len(coords)):
            rot, cm, ct = kabsch(coords[t], ref)
            out[t] = (coords[t] - cm) @ rot.T + ct
        new_ref = out.mean(axis=0)
        if np.abs(new_ref - ref).max() < 1e-8:
            break
        ref = new_ref
    return out


def fit_pca(qm_coords: np.ndarray, symbols: list[str]) -> PCAModel:
    """Align, then fit MDAnalysis' PCA on QM coordinates (T, n, 3) in Å (all 3n components)."""
    import MDAnalysis as mda
    from MDAnalysis.analysis.pca import PCA
    from MDAnalysis.coordinates.memory import MemoryReader

    aligned = align_to_mean(qm_coords)
    n = aligned.shape[1]
    u = mda.Universe.empty(n, trajectory=True)
    u.add_TopologyAttr("types", list(symbols))
    u.load_new(aligned.astype(np.float32), format=MemoryReader)
    pc = PCA(u, select="all", align=False).run()
    comps = np.real(pc.results.p_components).astype(float)
    mean = np.asarray(pc.mean, float).reshape(n, 3)
    proj = (aligned.reshape(len(aligned), -1) - mean.ravel()) @ comps
    return PCAModel(mean, comps, np.real(pc.results.variance).astype(float), proj, aligned)


def sample_pca(trajectory: list[Atoms], sampler: PCASettings, *, log: logging.Logger | None = None) -> tuple[list[Atoms], dict]:
    """``sampler.n_frames`` PCA-sampled Frames from trajectory Frames (module docstring;
    ``sampler.min_distance`` Å) and stats."""
    log = log or _log
    n_frames, n_components, extend = sampler.n_frames, sampler.n_components, sampler.extend
    seed, min_distance_ang = sampler.seed, sampler.min_distance
    if len(trajectory) < 3:
        raise ValueError(f"pca: need at least 3 trajectory frames, got {len(trajectory)}")
    n_qm = n_real_qm(trajectory[0])  # link atoms follow their bonds
    symbols = trajectory[0].get_chemical_symbols()[:n_qm]
    coords = np.array([f.positions[:n_qm] for f in trajectory])
    model = fit_pca(coords, symbols)
    k = min(n_components, model.components.shape[1])
    lo, hi = model.projections[:, :k].min(axis=0), model.projections[:, :k].max(axis=0)
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * extend
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    draws: list[np.ndarray] = []
    rejected = 0
    for _ in range(200 * n_frames):
        c = centre + half * rng.uniform(-1.0, 1.0, k)
        nearest = int(np.argmin(np.linalg.norm(model.projections[:, :k] - c, axis=1)))
        ref = trajectory[nearest]
        frame = embed_qm(ref, model.reconstruct(c), sampler="pca", seed=seed,
                         source=f"pca:env={ref.info.get('source', '')}", pca_projection=c.tolist())
        if min_qm_distance(frame) < min_distance_ang:
            rejected += 1
            continue
        frames.append(frame)
        draws.append(c)
        if len(frames) == n_frames:
            break
    else:
        raise RuntimeError(f"pca: only {len(frames)} of {n_frames} structures pass min_distance {min_distance_ang} Å")
    explained = model.variance[:k].sum() / model.variance.sum()
    log.info("pca: %d trajectory frames, %d components explain %.1f %% of the variance; %d frames, %d rejected",
             len(trajectory), k, 100 * explained, len(frames), rejected)
    stats = {"n_trajectory_frames": len(trajectory), "n_components": k, "explained_variance_fraction": explained,
             "variance_ang2": model.variance[:k], "trajectory_projections": model.projections[:, :k],
             "sample_projections": np.array(draws), "rejected": rejected}
    return frames, stats
