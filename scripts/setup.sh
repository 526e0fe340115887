#!/usr/bin/env bash
# Create .venv and install omniembed with its training and test dependencies.
# On a host without an NVIDIA GPU the CPU build of torch goes in first, so that nothing later pulls the
# multi-GB CUDA build; on a GPU host the default (CUDA) build and the GPU runtimes are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    has_gpu=1
else
    has_gpu=0
fi

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    if [ "$has_gpu" = 0 ]; then
        # The CPU wheel index is tried first; where it is unreachable (offline mirrors, local wheel
        # folders) the plain pin is used, which resolves to a local CPU wheel when one is configured.
        pip install --retries 0 --extra-index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}+cpu" \
            || pip install "torch==${TORCH_VERSION}"
    else
        pip install "torch==${TORCH_VERSION}"
    fi
fi

# The editable install only changes when pyproject.toml does (code changes need no reinstall): a stamp of it
# skips the ~25 s pip re-check on later runs of the two commands.
stamp="$VENV/.omniembed-install"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) gpu=$has_gpu"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$VENV/bin/python" -c "import omniembed" >/dev/null 2>&1; then
    pip install -e ".[dev,milvus,ray]"
    if [ "$has_gpu" = 1 ]; then
        # Same import names as the CPU packages: swap them rather than install side by side.
        pip uninstall -y onnxruntime faiss-cpu || true
        pip install -e ".[dev,milvus,ray,gpu]"
    fi
    echo "$want" > "$stamp"
fi
echo "omniembed installed in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
