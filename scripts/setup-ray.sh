#!/usr/bin/env bash
# Installs the pinned Ray of scripts/ray-requirements.txt into a virtual environment of its own,
# target/ray-venv (the driver scripts/ray_sweep.py and tests/ray.rs use its python). Idempotent:
# does nothing when the environment already has the pinned versions. Needs python3 with venv
# (Debian/Ubuntu: python3-venv; scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ray-venv
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s scripts/ray-requirements.txt "$stamp"; then
  exit 0
fi
echo "setup-ray: installing $(grep -v '^#' scripts/ray-requirements.txt | xargs) into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/ray-requirements.txt
cp scripts/ray-requirements.txt "$stamp"
