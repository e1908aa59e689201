#!/usr/bin/env python3
"""Numeric cross-check of culturetune's answers against an independent forward pass.

culturetune reads each survey answer from llama.cpp's next-token probabilities. This script
recomputes them without llama.cpp: the GGUF's weights are dequantized by the `gguf` Python
package (llama.cpp's gguf-py, a separate implementation of the block formats), and a plain
NumPy Llama forward pass (RMSNorm, rotary positions, grouped-query causal attention, SwiGLU;
float32 like Hugging Face transformers' fp32 default, or float64) runs on the token ids
culturetune decoded (`culturetune survey --dump-prompts FILE` writes them). The answer
probabilities over the options' digit tokens and the expected answers are compared item by
item with culturetune's own (`culturetune survey --json`).

With `--hf-tokens` the same forward pass also runs on the ids transformers' GGUF tokenizer
produces for the same text, which shows how much of a difference tokenization alone makes.

  culturetune survey --region USA --dump-prompts /tmp/usa.jsonl
  for w in f32 auto original; do culturetune survey --region USA --weights $w --json > /tmp/usa-$w.json; done
  scripts/reference_forward.py models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/usa.jsonl /tmp/usa-*.json [--hf-tokens]

Needs numpy and gguf (python3 -m pip install numpy gguf); `--hf-tokens` also needs
transformers and tokenizers. No PyTorch.
"""
import argparse
import json

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class Model:
    """The weights and hyperparameters of a llama-architecture GGUF, dequantized."""

    def __init__(self, path, dtype):
        r = GGUFReader(path)
        f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.chat")}
        arch = f["general.architecture"]
        if arch != "llama":
            raise SystemExit(f"{path}: architecture {arch!r}, this check knows only 'llama'")
        self.n_layer = f[f"{arch}.block_count"]
        self.n_head = f[f"{arch}.attention.head_count"]
        self.n_head_kv = f[f"{arch}.attention.head_count_kv"]
        self.eps = f[f"{arch}.attention.layer_norm_rms_epsilon"]
        self.base = f.get(f"{arch}.rope.freq_base", 10000.0)
        self.tokens = f["tokenizer.ggml.tokens"]
        self.dtype = dtype
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type)
            # gguf-py gives the tensor in row-major order with ne[0] (the input dimension of
            # a matrix) last: shape (out, in).
            self.w[t.name] = np.asarray(a, dtype=dtype).reshape([int(n) for n in reversed(t.shape)])
        self.n_embd = self.w["token_embd.weight"].shape[1]
        self.head_dim = self.n_embd // self.n_head
        self.output = self.w.get("output.weight", self.w["token_embd.weight"])

    def rms(self, x, weight):
        v = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(v + self.dtype(self.eps)) * weight

    def rope(self, x, pos):
        """Rotary positions as llama.cpp applies them to GGUF llama weights: adjacent pairs
        (the converter permuted Hugging Face's q/k rows into this order)."""
        d = self.head_dim
        inv = self.base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = np.outer(pos, inv)  # (T, d/2)
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def last_logits(self, ids):
        """Logits of the token after `ids`."""
        T = len(ids)
        x = self.w["token_embd.weight"][np.asarray(ids)]
        pos = np.arange(T)
        mask = np.triu(np.full((T, T), -np.inf, dtype=self.dtype), 1)
        group = self.n_head // self.n_head_kv
        for i in range(self.n_layer):
            w = lambda n: self.w[f"blk.{i}.{n}.weight"]  # noqa: E731
            h = self.rms(x, w("attn_norm"))
            q = (h @ w("attn_q").T).reshape(T, self.n_head, self.head_dim)
            k = (h @ w("attn_k").T).reshape(T, self.n_head_kv, self.head_dim)
            v = (h @ w("attn_v").T).reshape(T, self.n_head_kv, self.head_dim)
            q, k = self.rope(q, pos), self.rope(k, pos)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / self.dtype(np.sqrt(self.head_dim)) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            a = np.einsum("hts,shd->thd", s, v).reshape(T, self.n_embd)
            x = x + a @ w("attn_output").T
            h = self.rms(x, w("ffn_norm"))
            g = h @ w("ffn_gate").T
            x = x + ((g / (1 + np.exp(-g))) * (h @ w("ffn_up").T)) @ w("ffn_down").T
        x = self.rms(x[-1:], self.w["output_norm.weight"])
        return (x @ self.output.T)[0].astype(np.float64)


def answer(model, ids, n_options):
    """Normalized probabilities of the option digits "1".."n" after `ids`, their mass in the
    full distribution, and the expected answer."""
    logits = model.last_logits(ids)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    digits = [model.tokens.index(str(i)) for i in range(1, n_options + 1)]
    mass = float(p[digits].sum())
    probs = p[digits] / mass
    return probs, mass, float(np.dot(np.arange(1, n_options + 1), probs))


def hf_ids(gguf_path, texts):
    """Token ids of transformers' GGUF tokenizer (built as scripts/hf_tokenizer_check.py
    builds it: transformers' own conversion of the GGUF's vocabulary)."""
    from hf_tokenizer_check import tokenizers_from
    _, toks = tokenizers_from(gguf_path)
    tok = toks["transformers-gguf"]
    return [tok.encode(t, add_special_tokens=False).ids for t in texts]


def compare(ref, items, n):
    """Per-item and summary differences between the reference answers and culturetune's."""
    rows = []
    for i in range(n):
        probs, mass, exp = ref[i]
        ours = items[i]
        rows.append({"item": ours["id"],
                     "max_prob_diff": float(np.max(np.abs(probs - np.asarray(ours["probs"])))),
                     "expected_diff": exp - ours["expected"], "mass_diff": mass - ours["digit_mass"]})
    return rows, {"max_prob_diff": max(r["max_prob_diff"] for r in rows),
                  "mean_abs_expected_diff": float(np.mean([abs(r["expected_diff"]) for r in rows])),
                  "max_abs_expected_diff": max(abs(r["expected_diff"]) for r in rows)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gguf")
    p.add_argument("prompts", help="JSON lines from `culturetune survey --dump-prompts`")
    p.add_argument("surveys", nargs="+",
                   help="`culturetune survey --json` outputs of the same survey (e.g. one per --weights)")
    p.add_argument("--float64", action="store_true", help="compute in float64 instead of float32")
    p.add_argument("--hf-tokens", action="store_true", help="also run on transformers' GGUF token ids")
    p.add_argument("--items", type=int, default=0, help="only the first N items (0: all)")
    a = p.parse_args()
    model = Model(a.gguf, np.float64 if a.float64 else np.float32)
    prompts = [json.loads(line) for line in open(a.prompts) if line.strip()]
    surveys = {path: json.load(open(path)) for path in a.surveys}
    for path, v in surveys.items():
        if len(v["items"]) != len(prompts):
            raise SystemExit(f"{a.prompts}: {len(prompts)} prompts, but {path} has {len(v['items'])} items")
    n = a.items or len(prompts)
    k = [len(it["probs"]) for it in next(iter(surveys.values()))["items"]]
    ref = [answer(model, prompts[i]["token_ids"], k[i]) for i in range(n)]
    out = {"items": n, "dtype": "float64" if a.float64 else "float32", "against": {}}
    for path, v in surveys.items():
        rows, summary = compare(ref, v["items"], n)
        for r in rows:
            print(json.dumps({"survey": path, **r}))
        out["against"][path] = {"weights": v["model"]["description"], **summary}
    if a.hf_tokens:
        texts = [pr["text"] for pr in prompts[:n]]
        ids = hf_ids(a.gguf, texts)
        hf = [answer(model, ids[i], k[i]) for i in range(n)]
        # The same forward pass on other ids: the difference is tokenization alone.
        diffs = [hf[i][2] - ref[i][2] for i in range(n)]
        out["hf_tokens"] = {
            "identical_ids": sum(ids[i] == prompts[i]["token_ids"] for i in range(n)),
            "token_counts": [[len(prompts[i]["token_ids"]), len(ids[i])] for i in range(3)],
            "mean_abs_expected_diff": float(np.mean(np.abs(diffs))),
            "max_abs_expected_diff": float(np.max(np.abs(diffs))),
            "max_prob_diff": float(max(np.max(np.abs(hf[i][0] - ref[i][0])) for i in range(n)))}
    print(json.dumps({"summary": out}, indent=1))


if __name__ == "__main__":
    main()
