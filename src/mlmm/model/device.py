"""Where training and inference run: ``training.device`` resolved to a torch device.

``auto`` takes the GPU when torch sees one and the CPU otherwise; ``cpu`` and ``cuda`` force the
choice (``cuda`` without a usable GPU is an error, not a silent fall-back). Training, the ensemble
and every stage that evaluates members move models and tensors with ``.to(device)``: the CPU and
the CUDA run take the same code path.
"""

from __future__ import annotations

import torch

#: Values of ``training.device``.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(setting: str) -> torch.device:
    """The torch device of ``training.device`` (``auto`` | ``cpu`` | ``cuda``)."""
    if setting not in DEVICES:
        raise ValueError(f"training.device: expected one of {list(DEVICES)}, got {setting!r}")
    gpu = torch.cuda.is_available()
    if setting == "cuda" and not gpu:
        raise RuntimeError(
            "training.device: 'cuda' requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none: a CPU-only build'}); "
            "set training.device to 'auto' or 'cpu', or run on a GPU node with a CUDA build of torch"
        )
    return torch.device("cuda" if setting == "cuda" or (setting == "auto" and gpu) else "cpu")


def lightning_accelerator(device: torch.device) -> str:
    """The PyTorch Lightning ``accelerator`` that trains on ``device``."""
    return "gpu" if device.type == "cuda" else "cpu"
