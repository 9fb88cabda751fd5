"""Samplers producing the initial training frames (xTB/MM MD, ...)."""
