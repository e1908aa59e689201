#!/usr/bin/env bash
# Sets up everything (packages, Rust check, the default model) and runs culturetune's main job
# on the default model: tune a soft prompt toward a region (U.S.A. unless one is given), then
# show naive vs ICL vs tuned on the training and the held-out survey. About 10 minutes on a
# 2-core laptop the first time (calibration included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
region=${1:-USA}
exec target/release/culturetune tune --region "$region"
