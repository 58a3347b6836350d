#!/usr/bin/env bash
# Create .venv with everything the pack's core, CLI and tests need, on a fresh machine.
#
# torch is installed first and pinned (torch==2.13.0, CPU wheel where one is offered), then
# torchvision 0.28.0 (the release made for torch 2.13) under a constraints file so that nothing can
# swap torch for another build, then requirements.txt. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
CONSTRAINTS="$VENV/constraints.txt"
printf '%s\ntorchvision==0.28.0\n' "$TORCH_SPEC" > "$CONSTRAINTS"
"$VPY" -m pip install -q "$TORCH_SPEC"
"$VPY" -m pip install -q -c "$CONSTRAINTS" torchvision==0.28.0 -r requirements.txt -r requirements-test.txt
# The only torchvision 0.28.0 wheel on PyPI is a CUDA build. Next to a CPU torch its import fails until
# two fake-op registrations are guarded; the shared test-environment shim does exactly that. Users'
# ComfyUI installs have a matching torchvision and never need it.
if ! "$VPY" -c "import torchvision" >/dev/null 2>&1; then
  SHIM="${CPU_COMPAT:-../shared/tools/comfy_harness/cpu_compat.py}"
  if [ -f "$SHIM" ]; then
    "$VPY" "$SHIM" >/dev/null
  else
    echo "torchvision does not import next to this torch build and $SHIM is missing." >&2
    echo "Install a torchvision that matches your torch (e.g. from the same index) and re-run." >&2
    exit 1
  fi
fi
"$VPY" -c "import torch, torchvision, open_clip, diffusers, transformers; print('environment ready: torch', torch.__version__, '| torchvision', torchvision.__version__)"
