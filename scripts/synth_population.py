#!/usr/bin/env python3
"""Writes a synthetic population for culturetune's population targets (`tune --responses`).

Two groups, `north` and `south`, answer the items of a survey file (default the VSM 2013
wording A, ids q01..q24) with known per-item answer distributions that differ in a structured
way, as real cultures do: each group has a latent position on every dimension of the survey
(north at +P or -P per dimension, chosen with the seed; south at the opposite), and an item
that a dimension's formula adds (`plus`) leans toward code 5 by that position while an item it
subtracts (`minus`) leans toward code 1. So an item held out of tuning is predictable from the
other items of its dimension, and the two groups' indices are mirror images.

The distribution of an item whose mean position is mu (1..5) gives code c the weight
exp(-(c - mu)^2 / (2 * 0.8^2)), normalized. Respondents are sampled from it with a seeded
generator and weighted 1 or 2 (every other respondent).

Outputs (in --out, default the current directory):
  population.csv        one row per respondent: id, group, weight, then one column per item
  population-true.json  the distributions the answers were drawn from, per group and item

Standard library only (tomllib: Python 3.11). Same --seed, same files.
"""

import argparse
import csv
import json
import math
import random
import tomllib
from pathlib import Path

SD = 0.8


def distribution(mu: float) -> list[float]:
    """A distribution over codes 1..5 centred on mu."""
    raw = [math.exp(-((c - mu) ** 2) / (2 * SD * SD)) for c in range(1, 6)]
    total = sum(raw)
    return [v / total for v in raw]


def loadings(survey: dict) -> dict[str, tuple[str, int]]:
    """Item id -> (dimension, +1 for `plus`, -1 for `minus`), from the survey's formulas."""
    out = {}
    for dim, table in survey["dimensions"].items():
        for term in table["terms"]:
            for side, sign in (("plus", 1), ("minus", -1)):
                if side in term:
                    out[term[side]] = (dim, sign)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--survey", default=str(Path(__file__).parent.parent / "surveys" / "vsm13.toml"))
    ap.add_argument("--out", default=".", help="folder for the two files")
    ap.add_argument("--per-group", type=int, default=400, help="respondents per group")
    ap.add_argument("--position", type=float, default=1.2, help="latent position P (code steps)")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    survey = tomllib.loads(Path(args.survey).read_text())
    items = [i["id"] for i in survey["items"]]
    load = loadings(survey)
    rng = random.Random(args.seed)
    north = {d: rng.choice([-1, 1]) * args.position for d in survey["dimensions"]}
    latent = {"north": north, "south": {d: -p for d, p in north.items()}}
    truth = {}
    for group, pos in latent.items():
        truth[group] = {}
        for item in items:
            dim, sign = load.get(item, (None, 0))
            mu = 3 + sign * (pos[dim] if dim else 0.0)
            truth[group][item] = distribution(mu)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "population.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "group", "weight", *items])
        for group, dists in truth.items():
            for r in range(args.per_group):
                codes = [rng.choices(range(1, 6), weights=dists[i])[0] for i in items]
                w.writerow([f"{group}-{r}", group, 1 + r % 2, *codes])
    meta = {"seed": args.seed, "per_group": args.per_group, "latent": latent, "groups": truth}
    (out / "population-true.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out / 'population.csv'} ({2 * args.per_group} respondents) and population-true.json")


if __name__ == "__main__":
    main()
