#!/usr/bin/env python3
"""Writes a synthetic population for culturetune's population targets (`tune --responses`).

Two groups, `north` and `south`, answer the 24 items of the VSM 2013 surveys (ids q01..q24)
with known per-item answer distributions that differ: for each item the script draws a mode
code, and `north` puts its mass around that mode while `south` puts it around the mirrored code
(6 - mode). Respondents are sampled from those distributions with a seeded generator and given
weights 1 or 2 (every other respondent), so the weighted shares are the targets.

Outputs (in --out, default the current directory):
  population.csv        one row per respondent: id, group, weight, q01..q24
  population-true.json  the distributions the answers were drawn from, per group and item

Only the Python standard library is used. Same --seed, same files.
"""

import argparse
import csv
import json
import random
from pathlib import Path

ITEMS = [f"q{k:02d}" for k in range(1, 25)]
# Mass by distance from the mode: 0 steps, 1 step, 2 steps, more.
SHAPE = [0.55, 0.18, 0.05, 0.02]


def distribution(mode: int) -> list[float]:
    """A distribution over codes 1..5 peaked at `mode`."""
    raw = [SHAPE[min(abs(code - mode), 3)] for code in range(1, 6)]
    total = sum(raw)
    return [v / total for v in raw]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for the two files")
    ap.add_argument("--per-group", type=int, default=400, help="respondents per group")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    modes = {item: rng.choice([1, 2, 4, 5]) for item in ITEMS}
    truth = {
        "north": {item: distribution(modes[item]) for item in ITEMS},
        "south": {item: distribution(6 - modes[item]) for item in ITEMS},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "population.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "group", "weight", *ITEMS])
        for group, dists in truth.items():
            for r in range(args.per_group):
                codes = [rng.choices(range(1, 6), weights=dists[item])[0] for item in ITEMS]
                w.writerow([f"{group}-{r}", group, 1 + r % 2, *codes])
    (out / "population-true.json").write_text(
        json.dumps({"seed": args.seed, "per_group": args.per_group, "groups": truth}, indent=1)
        + "\n"
    )
    print(f"wrote {out / 'population.csv'} ({2 * args.per_group} respondents) and population-true.json")


if __name__ == "__main__":
    main()
