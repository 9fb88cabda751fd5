"""Training figures for the Snakemake report: learning curves, parity plots, σ calibration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlmm.frames import atomic_write  # noqa: E402

if TYPE_CHECKING:
    from mlmm.model.calibration import Calibration
    from mlmm.model.train import MemberMetrics


def _save(fig, path: str) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def plot_learning_curves(metrics: Sequence[MemberMetrics], path: str) -> None:
    """Per-epoch train and validation loss of every member (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in metrics:
        label = f"member {m.seed if m.member is None else m.member}"
        val = m.val_losses
        line = ax.plot(np.arange(1, len(val) + 1), val, label=f"{label} val")[0]
        train = m.train_losses
        if train:
            ax.plot(np.arange(1, len(train) + 1), train, ls="--", color=line.get_color(), label=f"{label} train")
    ax.set(xlabel="epoch", ylabel="loss (weighted MSE, eV², (eV/Å)²)", yscale="log", title="Learning curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _parity(ax, ref: np.ndarray, pred: np.ndarray, title: str, unit: str) -> None:
    if len(ref):
        ax.scatter(ref, pred, s=4, alpha=0.5)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_title(f"{title}\nMAE {np.mean(np.abs(pred - ref)):.3g} {unit}", fontsize=9)
    else:
        ax.set_title(f"{title}\n(no data)", fontsize=9)
    ax.set(xlabel=f"reference ({unit})", ylabel=f"ensemble ({unit})")


def plot_parity(result: Mapping[str, Any], path: str) -> None:
    """Ensemble vs reference on held-out frames: energy (relative to the mean reference), QM and MM forces."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    e_ref = np.asarray(result.get("energy_ref", []), float)
    e_pred = e_ref + np.asarray(result.get("energy_error", []), float) if len(e_ref) else e_ref
    shift = e_ref.mean() if len(e_ref) else 0.0
    _parity(axes[0], e_ref - shift, e_pred - shift, "energy (minus mean reference)", "eV")
    _parity(axes[1], np.asarray(result.get("forces_ref_qm", [])), np.asarray(result.get("forces_pred_qm", [])),
            "forces on QM atoms", "eV/Å")
    _parity(axes[2], np.asarray(result.get("forces_ref_mm", [])), np.asarray(result.get("forces_pred_mm", [])),
            "forces on MM sites", "eV/Å")
    fig.suptitle(f"Held-out frames: {result.get('n_test', 0)}")
    fig.tight_layout()
    _save(fig, path)


def plot_calibration(calibrations: Sequence[Calibration], path: str) -> None:
    """Left: σ vs max force error on held-out frames, one colour per AL iteration, with the
    calibration map f(σ) (solid) and its conformal bound q·f(σ) (dashed). Right: the out-of-fold
    reliability curve, mean predicted vs mean observed error per bin (eV/Å)."""
    fig, (ax, rel) = plt.subplots(1, 2, figsize=(10, 4.5))
    top = 0.0
    for c in calibrations:
        s, e = np.asarray(c.sigma_force or [], float), np.asarray(c.max_force_error or [], float)
        if not len(s):
            continue
        rho = c.spearman_rho
        label = f"it{c.iteration}: ρ={rho:.2f}, scale={c.scale:.2f}" if rho is not None else f"it{c.iteration}"
        if c.coverage_oof is not None:
            label += f", {c.coverage_oof:.0%} within q·f"
        points = ax.scatter(s, e, s=10, label=label)
        top = max(top, float(s.max()), float(e.max()))
        if c.map_sigma:
            grid = np.linspace(0.0, float(s.max()), 200)
            colour = points.get_facecolor()[0]
            ax.plot(grid, c.apply(grid), color=colour, lw=1.2)
            if c.conformal_q is not None:
                ax.plot(grid, c.upper_bound(grid), color=colour, lw=0.8, ls="--")
        if c.reliability:
            rel.plot(c.reliability["predicted"], c.reliability["observed"], "o-", ms=4, label=f"it{c.iteration}")
    if top > 0:
        ax.plot([0, top], [0, top], "k:", lw=0.8)
        ax.legend(fontsize=7)
    ax.set(xlabel="ensemble σ (eV/Å)", ylabel="max force error (eV/Å)", title="Uncertainty calibration")
    hi = rel.get_xlim()[1]
    rel.plot([0, hi], [0, hi], "k:", lw=0.8)
    if rel.get_legend_handles_labels()[0]:
        rel.legend(fontsize=7)
    rel.set(xlabel="predicted max force error f(σ) (eV/Å)", ylabel="observed mean max force error (eV/Å)",
            title="Reliability (out of fold)")
    fig.tight_layout()
    _save(fig, path)


def plot_environment_scan(scan: Mapping[str, Any], path: str) -> None:
    """Energy vs distance of the scanned MM molecule: PySCF reference and each model (eV, relative to the farthest point)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    d = np.asarray(scan["distances_ang"], float)
    ax.plot(d, scan["reference_ev"], "ko-", label="reference (PySCF)")
    for name, model in scan["models"].items():
        ax.plot(d, model["curve_ev"], "s--", label=f"{name} (MAD {model['mad_ev']:.3f} eV)")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("anchor site – QM heavy atom distance (Å)")
    ax.set_ylabel("energy relative to farthest point (eV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
