#!/usr/bin/env python3
"""Write a GGUF model with a real architecture's shapes and random weights, for timing.

A benchmark of an 8B model on a GPU machine needs a file with Llama-3-8B's shapes, but model
files do not travel to that machine (docs/performance.md). This script writes one there from
a few megabytes: the tokenizer (vocabulary, merges, chat template) is copied from a real GGUF,
and every weight matrix is random Q4_0 data scaled so that activations stay near unit size.
The answers of such a model mean nothing; its speed is that of the real shapes.

    # here: keep only the tokenizer of the default model (about 2 MB)
    python3 scripts/synth_gguf.py --vocab-from models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --preset vocab-only --out vocab.gguf
    # there: an 8B-shaped model (about 4.4 GB) with that tokenizer
    python3 scripts/synth_gguf.py --vocab-from vocab.gguf --preset llama3-8b --out l8b.gguf

Only the standard library and numpy. The GGUF layout follows ggml's gguf.h (version 3).
"""

import argparse
import struct
import sys

import numpy as np

# Shapes of the llama architecture's presets (from the models' published configs).
PRESETS = {
    "llama3-8b": dict(n_embd=4096, n_layer=32, n_head=32, n_head_kv=8, n_ff=14336,
                      rope_base=500000.0, ctx=8192, tied=False),
    "smollm2-135m": dict(n_embd=576, n_layer=30, n_head=9, n_head_kv=3, n_ff=1536,
                         rope_base=100000.0, ctx=8192, tied=True),
}

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
FIXED = {T_U8: 1, T_I8: 1, T_U16: 2, T_I16: 2, T_U32: 4, T_I32: 4, T_F32: 4, T_BOOL: 1,
         T_U64: 8, T_I64: 8, T_F64: 8}
GGML_F32, GGML_Q4_0 = 0, 2
ALIGN = 32


class Reader:
    """Reads the key-value section of a GGUF file, keeping each pair's raw bytes."""

    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, n):
        if self.p + n > len(self.d):
            raise ValueError(f"truncated GGUF at byte {self.p}")
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return self.take(self.u64()).decode("utf-8")

    def skip_value(self, t):
        if t in FIXED:
            self.take(FIXED[t])
        elif t == T_STR:
            self.take(self.u64())
        elif t == T_ARR:
            et, n = self.u32(), self.u64()
            if et in FIXED:
                self.take(FIXED[et] * n)
            else:
                for _ in range(n):
                    self.skip_value(et)
        else:
            raise ValueError(f"unknown GGUF value type {t} at byte {self.p}")


def tokenizer_pairs(path):
    """The raw bytes of every `tokenizer.*` key-value pair of a GGUF file, and the vocab size."""
    with open(path, "rb") as f:
        head = f.read(64 << 20)  # the key-value section of a small model fits in this
    r = Reader(head)
    if r.take(4) != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    version = r.u32()
    if version != 3:
        sys.exit(f"{path}: GGUF version {version}, expected 3")
    r.u64()  # tensors
    n_kv = r.u64()
    pairs, n_vocab = [], None
    for _ in range(n_kv):
        start = r.p
        key = r.string()
        t = r.u32()
        vstart = r.p
        r.skip_value(t)
        if key.startswith("tokenizer."):
            pairs.append(head[start:r.p])
        if key == "tokenizer.ggml.tokens":
            n_vocab = struct.unpack("<Q", head[vstart + 4:vstart + 12])[0]
    if n_vocab is None:
        sys.exit(f"{path}: no tokenizer.ggml.tokens array")
    return pairs, n_vocab


def s(text):
    b = text.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, t, value):
    fmt = {T_U32: "<I", T_F32: "<f"}
    body = s(value) if t == T_STR else struct.pack(fmt[t], value)
    return s(key) + struct.pack("<I", t) + body


def tensors(shape, n_vocab):
    """(name, dims, type) of the llama architecture's tensors, in file order."""
    e, ff, kvd = shape["n_embd"], shape["n_ff"], shape["n_embd"] // shape["n_head"] * shape["n_head_kv"]
    out = [("token_embd.weight", [e, n_vocab], GGML_Q4_0), ("output_norm.weight", [e], GGML_F32)]
    if not shape["tied"]:
        out.append(("output.weight", [e, n_vocab], GGML_Q4_0))
    for i in range(shape["n_layer"]):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", [e], GGML_F32),
                (b + "attn_q.weight", [e, e], GGML_Q4_0),
                (b + "attn_k.weight", [e, kvd], GGML_Q4_0),
                (b + "attn_v.weight", [e, kvd], GGML_Q4_0),
                (b + "attn_output.weight", [e, e], GGML_Q4_0),
                (b + "ffn_norm.weight", [e], GGML_F32),
                (b + "ffn_gate.weight", [e, ff], GGML_Q4_0),
                (b + "ffn_up.weight", [e, ff], GGML_Q4_0),
                (b + "ffn_down.weight", [ff, e], GGML_Q4_0)]
    return out


def nbytes(dims, t):
    n = int(np.prod(dims))
    return n * 4 if t == GGML_F32 else n // 32 * 18


def data(dims, t, rng, pattern):
    if t == GGML_F32:
        return np.ones(int(np.prod(dims)), dtype=np.float32).tobytes()
    # Q4_0 block: f16 scale, 16 bytes of 4-bit values (value - 8) * scale. Scale the rows so
    # that a product with a unit-size input has unit size (std of (q - 8) is about 4.6).
    blocks = np.resize(pattern, (int(np.prod(dims)) // 32, 18))
    d = np.float16(1.0 / (4.6 * np.sqrt(dims[0])))
    blocks[:, 0:2] = np.frombuffer(d.tobytes(), dtype=np.uint8)
    return blocks.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-from", required=True, help="GGUF file whose tokenizer is copied")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS) + ["vocab-only"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=2013)
    a = ap.parse_args()

    pairs, n_vocab = tokenizer_pairs(a.vocab_from)
    if a.preset == "vocab-only":
        head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs)) + b"".join(pairs)
        with open(a.out, "wb") as f:
            f.write(head)
        print(f"{a.out}: {len(pairs)} tokenizer keys, vocabulary {n_vocab}")
        return

    shape = PRESETS[a.preset]
    if shape["n_embd"] % 32 or shape["n_ff"] % 32:
        sys.exit("widths must be multiples of 32 for Q4_0")
    meta = [kv("general.architecture", T_STR, "llama"),
            kv("general.name", T_STR, f"synthetic {a.preset} (random weights)"),
            kv("general.file_type", T_U32, 2),
            kv("llama.block_count", T_U32, shape["n_layer"]),
            kv("llama.context_length", T_U32, shape["ctx"]),
            kv("llama.embedding_length", T_U32, shape["n_embd"]),
            kv("llama.feed_forward_length", T_U32, shape["n_ff"]),
            kv("llama.attention.head_count", T_U32, shape["n_head"]),
            kv("llama.attention.head_count_kv", T_U32, shape["n_head_kv"]),
            kv("llama.rope.dimension_count", T_U32, shape["n_embd"] // shape["n_head"]),
            kv("llama.rope.freq_base", T_F32, shape["rope_base"]),
            kv("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
            kv("llama.vocab_size", T_U32, n_vocab)] + pairs
    ts = tensors(shape, n_vocab)
    infos, offset = [], 0
    for name, dims, t in ts:
        infos.append(s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", t, offset))
        offset += -(-nbytes(dims, t) // ALIGN) * ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(meta)) + b"".join(meta) + b"".join(infos)
    rng = np.random.default_rng(a.seed)
    pattern = rng.integers(0, 256, size=(1 << 16, 18), dtype=np.uint8)
    with open(a.out, "wb") as f:
        f.write(head + b"\0" * (-len(head) % ALIGN))
        for name, dims, t in ts:
            b = data(dims, t, rng, pattern)
            f.write(b + b"\0" * (-len(b) % ALIGN))
    total = sum(int(np.prod(d)) for _, d, _ in ts)
    print(f"{a.out}: {a.preset}, {len(ts)} tensors, {total / 1e9:.2f} B parameters, "
          f"{(len(head) + offset) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
