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
# The only torchvision 0.28.0 wheel on PyPI is built for PyPI's CUDA torch 2.13.0. Next to a CPU-only torch
# (what this script installs where a local CPU wheel is offered, as on the project's machines) its import
# fails until two fake-op registrations are guarded. The project's machines and CI have a shim that does
# exactly that in the shared/ folder (../shared/tools/comfy_harness/cpu_compat.py): a test-environment
# aid, not part of this repository. Without it, set-up still finishes and says plainly what is missing.
# Users' ComfyUI installs have a matching torchvision and never need it.
TORCHVISION=ok
if ! "$VPY" -c "import torchvision" >/dev/null 2>&1; then
  SHIM="${CPU_COMPAT:-../shared/tools/comfy_harness/cpu_compat.py}"
  if [ -f "$SHIM" ]; then
    "$VPY" "$SHIM" >/dev/null
  fi
  if ! "$VPY" -c "import torchvision" >/dev/null 2>&1; then
    TORCHVISION=missing
    TORCH_BUILD="$("$VPY" -c 'import torch; print(torch.__version__)')"
    cat >&2 <<MSG
warning: torchvision does not import in $VENV: this torch is $TORCH_BUILD, and the torchvision 0.28.0
wheel on PyPI is built for PyPI's CUDA torch. The test-environment shim that makes it import next to a
CPU torch is not here ($SHIM).
The shim is part of the project's shared/ folder: the development folder (official key lists, parity
fixtures, the ComfyUI test harness) that sits beside the clone at ../shared on the project's machines and
in CI. It is not in this repository, and users never need it.
Until torchvision imports, only convert and inspect work (open_clip, which the text encoders' tokenizer
comes from, imports torchvision). Either:
  - use PyPI's own torch build, which that torchvision wheel matches: TORCH_SPEC='torch===2.13.0' (===
    excludes a local +cpu build; a download of several GB; it runs on machines without a GPU too), or
  - point CPU_COMPAT at a copy of shared/tools/comfy_harness/cpu_compat.py and run this script again.
MSG
  fi
fi
if [ "$TORCHVISION" = ok ]; then
  "$VPY" -c "import torch, torchvision, open_clip, diffusers, transformers; print('environment ready: torch', torch.__version__, '| torchvision', torchvision.__version__)"
else
  "$VPY" -c "import torch, diffusers, transformers; print('environment set up without torchvision: torch', torch.__version__)"
fi
