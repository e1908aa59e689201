#!/usr/bin/env bash
# Sets up everything (packages, Rust check, the default model) and runs culturetune's main job
# on the default model: the survey answered as a person from the U.S.A. (naive persona and
# in-context profile), scored against the published U.S.A. scores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
ct=target/release/culturetune
region=${1:-USA}
$ct regions | grep -E "^(CODE|$region) "
for method in naive icl; do
  echo
  echo "== survey on the default model, method $method, region $region"
  $ct survey --region "$region" --method "$method"
done
