#!/usr/bin/env bash
# Create (or update) the project virtual environment in .venv, idempotently.
#
# Why this is not a plain `pip install -e .`: schnetpack 2.2.0 declares Python >= 3.12, but its code
# runs on 3.11; pip on 3.11 would otherwise fall back to schnetpack 2.1.x, whose pins drag torch down
# to a CUDA build. So torch is installed first (pinned CPU build), then schnetpack's run-time
# dependencies and mlmm, and schnetpack itself last, without dependency resolution: it declares
# pre-commit and tensorboard, which it does not need at run time, and any pip step after it would
# print "ERROR: pip's dependency resolver ..." about them although nothing is wrong.
# hillclimber is installed without its ~80 dependencies: we only use the PLUMED kernel it bundles.
#
# Output: one "==> step" line per step; pip's own output goes to $VENV/install.log. A failing step
# prints the end of that log and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MLMM_VENV:-.venv}
STAMP="$VENV/.mlmm-installed"
HASH=$(cat tools/install.sh pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
    echo "mlmm environment in $VENV is up to date"
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
LOG="$VENV/install.log"
: > "$LOG"

# step DESCRIPTION ARGS...: one progress line, `pip ARGS...` with its output in $LOG; on failure the
# log's tail goes to stderr and the script stops with pip's exit status.
step() {
    local what=$1
    shift
    echo "==> $what"
    echo "==> $what: pip $*" >> "$LOG"
    local rc=0
    "$VENV/bin/python" -m pip --disable-pip-version-check install "$@" >> "$LOG" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "install.sh: '$what' failed (pip exit status $rc); end of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        exit "$rc"
    fi
}

step "pip" --upgrade pip
step "torch 2.13.0 (CPU)" torch==2.13.0
step "schnetpack's run-time dependencies" "numpy>=2.0" "sympy>=1.13" "ase>=3.23" h5py pyyaml \
    "hydra-core>=1.1" hydra-colorlog "pytorch_lightning>=2.0" torchmetrics rich fasteners dirsync torch-ema \
    "matscipy>=1.1" tqdm progressbar petname vesin tensorboardX protobuf
step "PLUMED kernel (hillclimber, without its dependencies)" --no-deps hillclimber==0.1.8
step "mlmm (editable) and its dependencies" -e ".[dev]"
step "schnetpack 2.2.0 (without dependency resolution)" --no-deps --ignore-requires-python schnetpack==2.2.0
"$VENV/bin/python" -c "import schnetpack, mlmm" >> "$LOG" 2>&1 || {
    echo "install.sh: the new environment cannot import schnetpack and mlmm; end of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
}
echo "$HASH" > "$STAMP"
echo "mlmm environment ready in $VENV (pip's output: $LOG)"
