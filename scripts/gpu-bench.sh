#!/usr/bin/env bash
# Measures culturetune on an NVIDIA GPU machine that has CMake and the CUDA toolkit but no Rust
# and no network (docs/performance.md, "CUDA").
#
# It builds llama.cpp's shared libraries with CUDA from a llama.cpp source tree (the one
# vendored by llama-cpp-sys-2, so the API matches), writes synthetic GGUF models with real
# shapes (scripts/synth_gguf.py), and runs `culturetune bench` - built elsewhere with
# `cargo build --release --features dynamic-link` - against those libraries, fully offloaded.
#
# usage: scripts/gpu-bench.sh LLAMA_SRC CULTURETUNE_BIN VOCAB_GGUF OUT_DIR
#   LLAMA_SRC        llama.cpp source tree (e.g. llama-cpp-sys-2-0.1.160/llama.cpp)
#   CULTURETUNE_BIN  the dynamic-link binary
#   VOCAB_GGUF       a GGUF holding a tokenizer (synth_gguf.py --preset vocab-only)
#   OUT_DIR          where logs and JSON reports go
# Environment: CUDA_ARCH (default native), WORK (default /tmp/gpu-bench), PRESETS (default
# "llama3-8b smollm2-135m"), BACKEND (cuda, default; cpu builds the same libraries without a
# GPU, to try this script on any machine), STEPS (default "bench tune").
set -euo pipefail
src=$1 bin=$2 vocab=$3 out=$4
work=${WORK:-/tmp/gpu-bench}
presets=${PRESETS:-llama3-8b smollm2-135m}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" "$out"

backend=${BACKEND:-cuda}
gpu_flags=()
if [ "$backend" = cuda ]; then
    gpu_flags=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}"
        -DGGML_CUDA_FA_QUANTS=f16-f16 -DGGML_CUDA_NCCL=OFF)
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free --format=csv
        nvcc --version | tail -2
    } | tee "$out/device.txt"
fi
echo "CPU cores: $(nproc)" | tee -a "$out/device.txt"

# The models are written while llama.cpp compiles (the build is CPU-bound, the writing is I/O).
(
    for p in $presets; do
        python3 "$here/synth_gguf.py" --vocab-from "$vocab" --preset "$p" --out "$work/$p.gguf"
    done
) >"$out/models.log" 2>&1 &
models=$!

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
start=$(date +%s)
cmake -S "$src" -B "$work/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF -DGGML_NATIVE=ON \
    "${gpu_flags[@]}" >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build "$work/build" --target llama -j"$(nproc)" >>"$out/cmake.log" 2>&1 ||
    { tail -30 "$out/cmake.log"; exit 1; }
echo "llama.cpp $backend build: $(($(date +%s) - start)) s" | tee -a "$out/device.txt"
wait "$models"
cat "$out/models.log"

export LD_LIBRARY_PATH="$work/build/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd "$bin" | grep -E 'llama|ggml' | tee -a "$out/device.txt"
"$bin" info --json >"$out/info.json" 2>&1 || true

steps=${STEPS:-bench tune}
for p in $presets; do
    [[ " $steps " == *" bench "* ]] || break
    m="$work/$p.gguf"
    # Full offload, then the same model on the CPU for the ratio (one rep: 8B is slow there).
    "$bin" bench --model "$m" --gpu-layers 999 --reps 5 --max-group 16 --json --verbose \
        >"$out/bench-$p-gpu.json" 2>"$out/bench-$p-gpu.log" || tail -20 "$out/bench-$p-gpu.log"
    grep -E "offloaded|CUDA0 model buffer|KV buffer" "$out/bench-$p-gpu.log" | head -5 || true
    "$bin" survey --region USA --model "$m" --gpu-layers 999 --json >"$out/survey-$p-gpu.json" 2>/dev/null || true
    "$bin" survey --region USA --model "$m" --gpu-layers 0 --json >"$out/survey-$p-cpu.json" 2>/dev/null || true
    "$bin" bench --model "$m" --gpu-layers 0 --reps 1 --max-group 4 --json \
        >"$out/bench-$p-cpu.json" 2>"$out/bench-$p-cpu.log" || tail -5 "$out/bench-$p-cpu.log"
done
# The automatic plan under a small memory cap: fewer layers, a message, no abort.
[[ " $steps " == *" bench "* ]] && "$bin" info --model "$work/${presets%% *}.gguf" --gpu-memory 2048 --json >"$out/info-capped.json" 2>&1 || true
"$bin" survey --region USA --model "$work/${presets%% *}.gguf" --gpu-memory 2048 --json \
    >"$out/survey-capped.json" 2>"$out/survey-capped.log" || true
grep -E "GPU plan|retrying|model:" "$out/survey-capped.log" || true
# The whole job (calibration, baselines, search at the default budget) on the first preset,
# then again with one candidate per decode (calibration now cached in the database).
if [[ " $steps " == *" tune "* ]]; then
    for cpd in default 1; do
        flag=()
        [ "$cpd" = default ] || flag=(--candidates-per-decode "$cpd")
        start=$(date +%s)
        timeout "${TUNE_TIMEOUT:-180}" "$bin" tune --model "$work/${presets%% *}.gguf" --region USA \
            --db "$work/tune.db" --events jsonl "${flag[@]}" >"$out/tune-$cpd.jsonl" \
            2>"$out/tune-$cpd.log" || tail -5 "$out/tune-$cpd.log"
        echo "tune, ${presets%% *}, USA, candidates per decode $cpd: $(($(date +%s) - start)) s" |
            tee -a "$out/device.txt"
        grep -E "GPU plan|model:" "$out/tune-$cpd.log" || true
    done
    "$bin" show 1 --db "$work/tune.db" >"$out/show-1.txt" 2>&1 || true
fi
ls -la "$out"
