#!/usr/bin/env python3
"""Cross-check of culturetune's tokenization against Hugging Face tokenizers, on the exact
prompts culturetune evaluates (`culturetune survey --dump-prompts FILE` writes their text and
token ids).

Two HF tokenizers are built from the same GGUF's vocabulary and merges:
  transformers-gguf: what transformers' GGUF loader builds (AutoTokenizer.from_pretrained(...,
      gguf_file=...)). It maps GGUF pre-tokenizer names to split rules, has no entry for
      SmolLM's `smollm`, and falls back to plain GPT-2 splitting.
  smollm-reference: the split SmolLM2's own tokenizer.json declares (digits isolated one by
      one, then GPT-2 byte-level splitting), which llama.cpp implements as `smollm`.
Prints, per tokenizer, how many prompts match culturetune's ids exactly and the first
difference otherwise.

  python3 -m pip install transformers tokenizers gguf   # no torch needed
  culturetune survey --region USA --dump-prompts /tmp/usa.jsonl
  scripts/hf_tokenizer_check.py models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/usa.jsonl
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import pre_tokenizers
from transformers.integrations.gguf.gguf_tokenizer_mapping import (
    GGUF_TOKENIZER_MAPPING,
    convert_gguf_tokenizer,
)


def tokenizers_from(gguf_path):
    r = GGUFReader(gguf_path)
    d = {}
    for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items():
        k = "tokenizer." + key
        if k in r.fields:
            d[name] = r.fields[k].contents()
    arch = r.fields["general.architecture"].contents()
    plain, _ = convert_gguf_tokenizer(arch, d)
    reference, _ = convert_gguf_tokenizer(arch, d)
    reference.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    return d.get("pre_tokenizer_type"), {"transformers-gguf": plain, "smollm-reference": reference}


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    pre, toks = tokenizers_from(sys.argv[1])
    prompts = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
    print(f"{len(prompts)} prompts; the GGUF's pre-tokenizer: {pre}")
    for name, tok in toks.items():
        same, first = 0, None
        for p in prompts:
            enc = tok.encode(p["text"], add_special_tokens=False)
            ours = p["token_ids"]
            # culturetune's ids include BOS when the model adds one; the text does not.
            if ours[: len(ours) - len(enc.ids)] and ours[len(ours) - len(enc.ids):] == enc.ids:
                ours = ours[len(ours) - len(enc.ids):]
            if enc.ids == ours:
                same += 1
            elif first is None:
                i = next((j for j, (a, b) in enumerate(zip(enc.ids, ours)) if a != b),
                         min(len(enc.ids), len(ours)))
                first = (p["item"], len(enc.ids), len(ours), enc.tokens[max(0, i - 3): i + 3],
                         [tok.id_to_token(t) for t in ours[max(0, i - 3): i + 3]])
        print(f"{name}: {same}/{len(prompts)} prompts tokenized exactly as culturetune does")
        if first:
            item, n_hf, n_ours, hf_ctx, our_ctx = first
            print(f"  first difference (item index {item}): HF {n_hf} tokens, culturetune {n_ours};"
                  f" HF {hf_ctx} vs culturetune {our_ctx}")


if __name__ == "__main__":
    main()
