"""Active learning: uncertainty-window selection with diversity, and the convergence decision."""
