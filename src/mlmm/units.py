"""Unit conversions used at engine boundaries.

Internally mlmm works in eV, Å, e (elementary charge), fs and K. Engines speak other units
(PySCF: Hartree and Bohr; xtb: Hartree/Bohr for gradients; OpenMM and PLUMED: kJ/mol, nm, ps);
convert with these constants exactly once, where data enters or leaves an engine.
"""

from __future__ import annotations

from ase import units as _ase_units

#: 1 Hartree in eV (ASE's CODATA value, so all of mlmm agrees with ASE).
HARTREE_TO_EV: float = float(_ase_units.Hartree)
#: 1 Bohr in Å.
BOHR_TO_ANGSTROM: float = float(_ase_units.Bohr)
ANGSTROM_TO_BOHR: float = 1.0 / BOHR_TO_ANGSTROM
#: Force conversion Hartree/Bohr -> eV/Å.
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = HARTREE_TO_EV / BOHR_TO_ANGSTROM
#: Coulomb constant k_e = 1/(4 pi eps0) in eV·Å/e² (≈ 14.3996).
COULOMB_EV_ANGSTROM: float = HARTREE_TO_EV * BOHR_TO_ANGSTROM
#: 1 kcal/mol in eV.
KCAL_PER_MOL_TO_EV: float = float(_ase_units.kcal / _ase_units.mol)
#: Boltzmann constant in eV/K.
BOLTZMANN_EV_PER_K: float = float(_ase_units.kB)
#: 1 kJ/mol in eV.
KJ_PER_MOL_TO_EV: float = float(_ase_units.kJ / _ase_units.mol)
#: 1 nm in Å.
NM_TO_ANGSTROM: float = 10.0
#: Force conversion kJ/mol/nm -> eV/Å.
KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM: float = KJ_PER_MOL_TO_EV / NM_TO_ANGSTROM
