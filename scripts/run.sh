#!/usr/bin/env bash
# Sets up everything (packages, the front end, the default model) and starts the culturetune
# desktop app with the default model. Without a display (a server, CI), it runs the main job
# on the command line instead: tune a soft prompt toward a region (U.S.A. unless one is
# given) and compare naive vs ICL vs tuned on the training and the held-out survey.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  cargo build --release --locked -p culturetune-app
  exec target/release/culturetune-app
fi
echo "run: no display; running the main job on the command line instead of the desktop app" >&2
cargo build --release --locked -p culturetune
region=${1:-USA}
exec target/release/culturetune tune --region "$region"
