#!/usr/bin/env bash
# The GPU path without a GPU: builds culturetune with llama.cpp's Vulkan backend and runs
# tests/gpu.rs on Mesa's lavapipe (Vulkan on the CPU) with the default model: the device report
# and layer plan, offloaded answers against the CPU's, the soft prompt offloaded, and a memory
# cap. Lavapipe is slow: one survey of the default model takes minutes (docs/performance.md).
#
#   scripts/test-gpu.sh            Vulkan on whatever device is there (lavapipe on a server)
#   BENCH=1 scripts/test-gpu.sh    also `bench` on the offloaded model (on lavapipe: an hour)
#
# The build has its own target directory (target/vulkan): a backend changes llama.cpp's build,
# and sharing target/ would rebuild the CPU one each time. Cold, it takes about 45 minutes on 2
# cores, so it is not part of scripts/test.sh (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --gpu vulkan
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ -d target/gpu-deps/vulkan/usr ]; then
  # Newer Vulkan headers fetched by setup (the system's are too old for llama.cpp).
  export CMAKE_PREFIX_PATH="$PWD/target/gpu-deps/vulkan/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
export CARGO_TARGET_DIR="$PWD/target/vulkan"
# llama.cpp's Vulkan backend skips devices of type CPU unless named; lavapipe is one. Device 0
# is the first the loader lists (on a machine with a real GPU, pick it instead).
export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
cargo build --release --locked --features vulkan --bin culturetune
./target/vulkan/release/culturetune info
cargo test --release --locked --features vulkan --test gpu -- --nocapture --test-threads 1
if [ "${BENCH:-0}" != 0 ]; then
  ./target/vulkan/release/culturetune bench --gpu-layers 0 --reps 1
  ./target/vulkan/release/culturetune bench --reps 1
fi
echo "test-gpu: ok"
