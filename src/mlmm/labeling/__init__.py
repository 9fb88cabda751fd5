"""Reference labels: PySCF QM/MM energies and forces of Frames, stored as schnetpack databases."""
