#!/usr/bin/env bash
# Newer Vulkan and SPIR-V headers for building llama.cpp's Vulkan backend on systems whose own
# are too old (Debian 12 ships Vulkan 1.3.239; llama.cpp's backend uses VK_EXT_layer_settings,
# headers 1.3.261 or later). Takes Debian 13 (trixie)'s libvulkan-dev and spirv-headers
# packages from deb.debian.org, checks their SHA-256 against trixie's package index (fetched
# from the same mirror; its signature is not checked), and unpacks only their headers and CMake files into target/gpu-deps/vulkan (the
# system's Vulkan loader library is still the one linked and used). Prints the prefix; pass it
# to the build as CMAKE_PREFIX_PATH (scripts/test-gpu.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
prefix="$PWD/target/gpu-deps/vulkan"
stamp="$prefix/.complete"
if [ -f "$stamp" ]; then echo "$prefix/usr"; exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -m 120 "$MIRROR/dists/trixie/main/binary-amd64/Packages.xz" -o "$work/Packages.xz" ||
  { echo "fetch-vulkan-headers: cannot download the trixie package index from $MIRROR" >&2; exit 1; }
xz -dc "$work/Packages.xz" >"$work/Packages"
rm -rf "$prefix.partial" && mkdir -p "$prefix.partial"
for pkg in libvulkan-dev spirv-headers; do
  # Filename and SHA256 of the package's entry (entries are separated by blank lines).
  read -r file sha < <(awk -v p="$pkg" '
    /^Package: /{on = ($2 == p)} on && /^Filename: /{f = $2} on && /^SHA256: /{s = $2}
    /^$/{if (on && f != "") {print f, s; exit} on = 0}' "$work/Packages")
  [ -n "${file:-}" ] || { echo "fetch-vulkan-headers: $pkg is not in trixie's index" >&2; exit 1; }
  curl -fsSL --retry 3 -m 300 "$MIRROR/$file" -o "$work/$pkg.deb"
  echo "$sha  $work/$pkg.deb" | sha256sum -c --quiet - ||
    { echo "fetch-vulkan-headers: $file does not match the index's SHA-256" >&2; exit 1; }
  dpkg-deb -x "$work/$pkg.deb" "$prefix.partial"
  echo "fetch-vulkan-headers: $(basename "$file")" >&2
done
# Headers only: the package's libvulkan.so link would point at a loader not unpacked here.
find "$prefix.partial" -name 'libvulkan.so*' -delete
rm -rf "$prefix" && mv "$prefix.partial" "$prefix" && touch "$stamp"
echo "$prefix/usr"
