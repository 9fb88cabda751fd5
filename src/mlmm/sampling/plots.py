"""Diagnostic PNGs of the samplers (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlmm.frames import atomic_write


def _figure(ncols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.0 * ncols, 4.0))
    return plt, fig, np.atleast_1d(axes)


def _save(plt, fig, path: str | Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def plot_metadynamics(colvar: tuple[list[str], np.ndarray], fes: tuple[list[str], np.ndarray], path: str | Path) -> None:
    """CV time series histogram (first CV) and the FES from sum_hills (1D line or 2D map)."""
    plt, fig, ax = _figure(2)
    names, data = colvar
    ax[0].hist(data[:, 1], bins=40, color="tab:blue")
    ax[0].set_xlabel(names[1])
    ax[0].set_ylabel("count (COLVAR)")
    ax[0].set_title("sampled CV")
    fnames, f = fes
    free = fnames.index("file.free")
    if free == 1:
        ax[1].plot(f[:, 0], f[:, 1], color="tab:red")
        ax[1].set_xlabel(fnames[0])
        ax[1].set_ylabel("free energy (kJ/mol)")
    else:
        x, y = np.unique(f[:, 0]), np.unique(f[:, 1])
        z = f[:, free].reshape(len(y), len(x))
        cs = ax[1].contourf(x, y, z, levels=20)
        fig.colorbar(cs, ax=ax[1], label="free energy (kJ/mol)")
        ax[1].set_xlabel(fnames[0])
        ax[1].set_ylabel(fnames[1])
    ax[1].set_title("FES (plumed sum_hills)")
    _save(plt, fig, path)


def plot_energy_distribution(harmonic_ev: np.ndarray, expected_mean_ev: float, title: str, path: str | Path,
                             kinetic_ev: np.ndarray | None = None) -> None:
    """Histogram of the harmonic (and kinetic) energies with the expected mean."""
    plt, fig, ax = _figure(1)
    ax[0].hist(harmonic_ev, bins=20, alpha=0.7, label="harmonic potential")
    if kinetic_ev is not None:
        ax[0].hist(kinetic_ev, bins=20, alpha=0.5, label="kinetic")
    ax[0].axvline(expected_mean_ev, color="k", ls="--", label=f"expected mean {expected_mean_ev:.3f} eV")
    ax[0].set_xlabel("energy above the minimum (eV)")
    ax[0].set_ylabel("frames")
    ax[0].set_title(title)
    ax[0].legend()
    _save(plt, fig, path)


def plot_pca(trajectory_proj: np.ndarray, sample_proj: np.ndarray, path: str | Path) -> None:
    """Trajectory and new structures in the plane of the two leading components."""
    plt, fig, ax = _figure(1)
    ty = trajectory_proj[:, 1] if trajectory_proj.shape[1] > 1 else np.zeros(len(trajectory_proj))
    sy = sample_proj[:, 1] if sample_proj.shape[1] > 1 else np.zeros(len(sample_proj))
    ax[0].scatter(trajectory_proj[:, 0], ty, s=10, label="trajectory")
    ax[0].scatter(sample_proj[:, 0], sy, s=18, marker="x", label="PCA samples")
    ax[0].set_xlabel("PC1 (Å)")
    ax[0].set_ylabel("PC2 (Å)")
    ax[0].legend()
    _save(plt, fig, path)


def plot_adaptive(coverage: list[int], cv_values: np.ndarray, picked: list[int], path: str | Path) -> None:
    """Coverage per round and the visited CV space (first two CVs) with the picked frames."""
    plt, fig, ax = _figure(2)
    ax[0].plot(np.arange(len(coverage)), coverage, "o-")
    ax[0].set_xlabel("round")
    ax[0].set_ylabel("visited bins")
    y = cv_values[:, 1] if cv_values.shape[1] > 1 else np.zeros(len(cv_values))
    ax[1].scatter(cv_values[:, 0], y, s=6, label="snapshots")
    ax[1].scatter(cv_values[picked, 0], y[picked], s=20, marker="x", label="frames")
    ax[1].set_xlabel("CV 1")
    ax[1].set_ylabel("CV 2")
    ax[1].legend()
    _save(plt, fig, path)
