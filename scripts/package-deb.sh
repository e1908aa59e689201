#!/usr/bin/env bash
# Builds a Debian package of the desktop app with the Tauri CLI (npm's @tauri-apps/cli, which
# ships a prebuilt binary): target/release/bundle/deb/culturetune_<version>_amd64.deb.
#
# The CLI expects tauri.conf.json inside the app's crate directory and resolves the paths in it
# from there, while this repository keeps it at the root (the product's layout). So, for the
# length of the build only, a link src-tauri/tauri.conf.json -> ../tauri.conf.json is made, and
# the front end and icon paths are passed as absolute overrides. AppImage bundles need a
# download from GitHub and fail offline; .deb needs nothing from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
root=$(pwd)
link=src-tauri/tauri.conf.json
if [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "package-deb: $link exists and is not the build's link; remove it first" >&2
  exit 1
fi
ln -sfn ../tauri.conf.json "$link"
trap 'rm -f "$root/$link"' EXIT
TAURI_APP_PATH=src-tauri ui/node_modules/.bin/tauri build --bundles deb --ci \
  --config "{\"build\":{\"frontendDist\":\"$root/ui/dist\"},\"bundle\":{\"icon\":[\"$root/icons/icon.png\"]}}" "$@"
ls -l target/release/bundle/deb/*.deb
