"""Committee of field-aware SchNet members: mean energy/forces and the force uncertainty σ.

σ (eV/Å) = max over atoms of the norm of the per-atom force standard deviation across members
(QM atoms and MM sites), as in DESIGN.md §2. :meth:`Ensemble.compute` implements the QM-term
protocol of :mod:`mlmm.potentials` for MLP/MM dynamics; for Δ-learned members (``mlmm_settings["delta"]``
not "none") it gives the learned correction, and the ``delta`` potential adds the baseline.
Members run on the device they are given (:func:`mlmm.model.device.resolve_device`); saved
members load on any device (``map_location``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np
import torch
from ase import Atoms
from schnetpack import properties
from schnetpack.data import AtomsLoader, ASEAtomsData
from schnetpack.model import NeuralNetworkPotential
from schnetpack.transform import CastTo32

from mlmm.embedding import frame_embedding
from mlmm.labeling.db import db_embedding
from mlmm.model.committee import BatchedCommittee, committee_results
from mlmm.model.field import MM_CHARGES, MM_MOLECULE, QM_MASK, QMPairList, frame_to_inputs
from mlmm.settings import EmbeddingSettings

#: Per-atom and per-frame properties read from a labels DB.
DB_PROPERTIES = [properties.energy, properties.forces, QM_MASK, MM_CHARGES, MM_MOLECULE]


def load_model(path: str | Path, device: torch.device | str) -> NeuralNetworkPotential:
    """Load one member saved with ``torch.save`` (full pickled module) onto ``device``, in eval mode.

    Members saved before ``training.representation`` existed are SchNet: their settings get
    ``representation: schnet``, so they still match a fresh SchNet build (warm start, reports).
    """
    model = torch.load(path, map_location=device, weights_only=False)
    model.mlmm_settings.setdefault("representation", "schnet")
    return model.eval()


def predict(models: Sequence[NeuralNetworkPotential], inputs: Dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (members, frames) in eV and forces (members, atoms, 3) in eV/Å for one batch.

    The input dict is built once; each member gets a shallow copy (members add their own keys).
    """
    energies, forces = [], []
    for model in models:
        out = model(dict(inputs))
        energies.append(out[properties.energy].detach())
        forces.append(out[properties.forces].detach())
    return torch.stack(energies), torch.stack(forces)


def force_spread(member_forces: torch.Tensor) -> torch.Tensor:
    """Per-atom norm (eV/Å) of the force standard deviation over members (axis 0); 0 for one member."""
    std = member_forces.std(dim=0, correction=1 if member_forces.shape[0] > 1 else 0)
    return torch.linalg.vector_norm(std, dim=-1)


def per_frame_max(values: torch.Tensor, idx_m: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Maximum of per-atom ``values`` within each frame of a batch (``_idx_m``)."""
    out = torch.zeros(n_frames, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, idx_m, values, reduce="amax", include_self=False)


def db_dataset(db_path: str | Path, cutoff_ang: float, float32: bool = True) -> ASEAtomsData:
    """A labels DB as schnetpack dataset with QM-only neighbour pairs (and float32 casting)."""
    transforms = [QMPairList(cutoff_ang)] + ([CastTo32()] if float32 else [])
    return ASEAtomsData(str(db_path), load_properties=DB_PROPERTIES, transforms=transforms)


class Ensemble:
    """N independently trained members evaluated on the same inputs."""

    def __init__(self, models: Sequence[NeuralNetworkPotential], device: torch.device | str | None = None) -> None:
        """``device``: where the members run (None: where the first member's parameters are)."""
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.device = torch.device(device) if device is not None else next(models[0].parameters()).device
        self.models = [m.to(self.device).eval() for m in models]
        self.dtype = next(self.models[0].parameters()).dtype
        # pairs up to the largest member cutoff; a member's cutoff function zeroes the longer ones
        self.cutoff_ang = max(float(m.mlmm_settings["cutoff"]) for m in self.models)
        self.pair_list = QMPairList(self.cutoff_ang)
        deltas = {str(m.mlmm_settings["delta"]) for m in self.models}
        if len(deltas) != 1:
            raise ValueError(f"ensemble members were trained on different Δ baselines: {sorted(deltas)}")
        self.delta = deltas.pop()
        if any("embedding" not in m.mlmm_settings for m in self.models):
            raise ValueError("ensemble member without a stored embedding (trained before system.embedding "
                             "existed): retrain it")
        embeddings = {tuple(sorted(m.mlmm_settings["embedding"].items())) for m in self.models}
        if len(embeddings) != 1:
            raise ValueError(f"ensemble members were trained with different embeddings: {sorted(embeddings)}")
        #: The embedding (system.embedding) the members were trained with.
        self.embedding = EmbeddingSettings.from_dict(dict(embeddings.pop()), "members' embedding")
        #: All members in one batched pass (None if their architectures differ: then one by one).
        self.committee = BatchedCommittee(self.models) if BatchedCommittee.can_stack(self.models) else None

    def check_embedding(self, embedding: EmbeddingSettings, where: str) -> None:
        """Raise ValueError unless ``embedding`` is the one the members were trained with (naming both)."""
        if embedding != self.embedding:
            raise ValueError(
                f"{where}: embedding {embedding.to_dict()} differs from the one the ensemble members were trained "
                f"with, {self.embedding.to_dict()} (system.embedding must stay as it was for training)"
            )

    @classmethod
    def load(cls, model_paths: Sequence[str | Path], device: torch.device | str) -> "Ensemble":
        """Load the members written by :func:`mlmm.model.train.train_member` onto ``device``."""
        return cls([load_model(p, device) for p in model_paths], device=device)

    @classmethod
    def load_for(cls, model_paths: Sequence[str | Path], device_setting: str) -> "Ensemble":
        """Load the members onto the device the ``training.device`` setting (auto|cpu|cuda) resolves to."""
        from mlmm.model.device import resolve_device

        return cls.load(model_paths, resolve_device(device_setting))

    def _to_device(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in inputs.items()}

    def compute(self, frame: Atoms) -> dict[str, Any]:
        """QM term of one Frame: ``energy`` (eV, member mean), ``forces`` ((n_atoms,3) eV/Å, mean),
        ``sigma_force`` (eV/Å), ``energies`` (per member, eV), ``member_forces`` ((M,n_atoms,3) eV/Å).

        For Δ-learned members this is the correction alone (:class:`mlmm.potentials.DeltaTerm`
        adds the baseline). The frame must have been cut with the members' embedding.
        """
        self.check_embedding(frame_embedding(frame), f"frame {frame.info.get('source', '')}")
        if self.committee is None:
            energies, forces = predict(self.models, self._to_device(frame_to_inputs(frame, self.pair_list, self.dtype)))
            return committee_results(energies[:, 0], forces)
        qm = np.asarray(frame.arrays[QM_MASK], bool)
        pos = np.asarray(frame.positions, float)
        geometry = self.committee.geometry(frame.numbers[qm], frame.get_initial_charges()[~qm],
                                           np.asarray(frame.arrays[MM_MOLECULE])[~qm], pos[qm])
        energies, f_qm, f_mm = self.committee(geometry, pos[qm], pos[~qm])
        forces = torch.zeros((self.committee.n_members, len(frame), 3), dtype=f_qm.dtype)
        forces[:, torch.as_tensor(qm)] = f_qm.cpu()
        forces[:, torch.as_tensor(~qm)] = f_mm.cpu()
        return committee_results(energies, forces)

    def evaluate_db(
        self,
        db_path: str | Path,
        indices: Sequence[int] | None = None,
        batch_size: int = 16,
        return_arrays: bool = False,
    ) -> dict[str, Any]:
        """Ensemble-mean errors against a labels DB (rows ``indices``, 0-based; all if None).

        Returns ``energy_mae`` (eV), ``force_mae_qm`` / ``force_mae_mm`` (eV/Å, mean absolute
        Cartesian component error on QM atoms / MM sites; None if there are none),
        ``member_force_mae_qm`` (the same QM-force MAE of each member alone), ``n_frames`` and
        per-frame lists ``sigma_force`` (eV/Å), ``max_force_error`` (eV/Å, max over atoms of the
        error-vector norm) and ``energy_error`` (eV, prediction − reference). ``return_arrays`` adds
        NumPy arrays for parity plots: ``energy_ref`` (eV), ``forces_ref_qm``/``forces_pred_qm`` and
        ``forces_ref_mm``/``forces_pred_mm`` (eV/Å, Cartesian components). Labels of a Δ DB give
        the errors of the correction, which equal those of baseline + correction.
        """
        embedding = db_embedding(db_path)
        if embedding is not None:
            self.check_embedding(embedding, f"labels {db_path}")
        data = db_dataset(db_path, self.cutoff_ang, float32=self.dtype == torch.float32)
        if indices is not None:
            data = data.subset([int(i) for i in indices])
        sigmas, max_errors, energy_errors = [], [], []
        arrays: dict[str, list[np.ndarray]] = {k: [] for k in ("energy_ref", "qm_ref", "qm_pred", "mm_ref", "mm_pred")}
        abs_sum = {"qm": 0.0, "mm": 0.0}
        count = {"qm": 0, "mm": 0}
        member_abs_qm = np.zeros(len(self.models))
        for batch in AtomsLoader(data, batch_size=batch_size, shuffle=False):
            batch = self._to_device(batch)
            energies, forces = predict(self.models, batch)
            idx_m = batch[properties.idx_m]
            n_frames = batch[properties.n_atoms].shape[0]
            error = forces.mean(0) - batch[properties.forces]
            is_qm = batch[QM_MASK] > 0.5
            for key, sel in (("qm", is_qm), ("mm", ~is_qm)):
                abs_sum[key] += float(error[sel].abs().sum())
                count[key] += int(sel.sum()) * 3
            member_abs_qm += (forces[:, is_qm] - batch[properties.forces][is_qm]).abs().sum(dim=(1, 2)).double().cpu().numpy()
            sigmas += per_frame_max(force_spread(forces), idx_m, n_frames).tolist()
            max_errors += per_frame_max(torch.linalg.vector_norm(error, dim=-1), idx_m, n_frames).tolist()
            energy_errors += (energies.mean(0) - batch[properties.energy]).tolist()
            if return_arrays:
                arrays["energy_ref"].append(batch[properties.energy].double().cpu().numpy())
                for key, sel in (("qm", is_qm), ("mm", ~is_qm)):
                    arrays[f"{key}_ref"].append(batch[properties.forces][sel].double().cpu().numpy().ravel())
                    arrays[f"{key}_pred"].append(forces.mean(0)[sel].double().cpu().numpy().ravel())
        e = np.abs(energy_errors)
        extra = {}
        if return_arrays:
            cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in arrays.items()}
            extra = {
                "energy_ref": cat["energy_ref"],
                "forces_ref_qm": cat["qm_ref"], "forces_pred_qm": cat["qm_pred"],
                "forces_ref_mm": cat["mm_ref"], "forces_pred_mm": cat["mm_pred"],
            }
        return {
            **extra,
            "n_frames": len(energy_errors),
            "energy_mae": float(e.mean()) if len(e) else None,
            "force_mae_qm": abs_sum["qm"] / count["qm"] if count["qm"] else None,
            "member_force_mae_qm": (member_abs_qm / count["qm"]).tolist() if count["qm"] else None,
            "force_mae_mm": abs_sum["mm"] / count["mm"] if count["mm"] else None,
            "sigma_force": sigmas,
            "max_force_error": max_errors,
            "energy_error": energy_errors,
        }
