"""Analysis of MLP/MM trajectories (MDAnalysis) and their plots."""
