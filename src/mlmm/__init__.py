"""mlmm: machine-learning potentials for QM/MM."""
