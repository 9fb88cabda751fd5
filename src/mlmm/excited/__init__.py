"""Bright-state workflow: property model, excited-state MLP/MM dynamics, spectra stages."""
