#!/usr/bin/env bash
# Sets up everything and runs culturetune's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
ct=target/release/culturetune
echo "== published scores of the regions used in the examples"
$ct regions | grep -E '^(CODE|USA|CHI|IND|ARA) '
echo
echo "== scoring human survey data (a small made-up sample) against the U.S.A."
$ct score --responses surveys/examples/example-responses.csv --region USA
