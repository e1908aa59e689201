#!/usr/bin/env python3
"""The tuning sweep behind docs/tuning.md: runs `culturetune tune` over a plan of settings,
regions and seeds, appends one JSON line per finished run to a results file (a rerun skips
what is already there, so an interrupted sweep continues), and draws the plots.

  scripts/sweep.py run --plan screen  --results docs/sweep/results.jsonl
  scripts/sweep.py run --plan defaults --results docs/sweep/results.jsonl
  scripts/sweep.py reach --region CHI --results docs/sweep/reach-CHI.json
  scripts/sweep.py plot --results docs/sweep/results.jsonl --out docs/sweep
  scripts/sweep.py table --results docs/sweep/results.jsonl

Uses the release binary (cargo build --release) and a database of its own, so the calibration
is computed once and shared by every run. Plots need matplotlib (python3 -m pip install
matplotlib).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "culturetune")
DIMS = ["PDI", "IDV", "MAS", "UAI", "LTO", "IVR"]

# The defaults the sweep compares against (the command line's defaults as of the sweep).
BASE = {"placement": "answer", "anchor": "persona", "extra-rows": 0, "dims": 24, "a-scale": 1.0,
        "budget": 144, "strategy": "shade", "survey": "vsm13"}

# The defaults chosen from the screen (see docs/tuning.md): BASE with d = 100, the answer
# opening as the anchor, and 288 candidates, trained on wording A.
CHOSEN = {**BASE, "dims": 100, "anchor": "opening", "budget": 288}

# CHOSEN trained on wordings A and C together (each index the mean of both wordings'), the
# held-out survey (wording B) still unseen.
TWO_WORDINGS = {**CHOSEN, "survey": "surveys/vsm13-ac.toml"}

# One factor at a time from BASE, on CHI (the region furthest from the naive answers) with
# one seed: which knobs matter at all.
SCREEN = [
    {},
    {"extra-rows": 7},
    {"extra-rows": 23},
    {"dims": 100},
    {"dims": 500},
    {"a-scale": 0.5},
    {"a-scale": 2.0},
    {"strategy": "rand1-bin"},
    {"budget": 288},
]


def plans(name):
    """(region, seed, settings) triples of a named plan."""
    if name == "screen":
        return [("CHI", 2013, {**BASE, **s}) for s in SCREEN]
    if name == "defaults":
        return [(r, seed, dict(CHOSEN)) for r in ["USA", "CHI", "IND", "ARA"]
                for seed in [2013, 1, 2]]
    if name == "two-wordings":
        return [(r, seed, dict(TWO_WORDINGS)) for r in ["USA", "CHI", "IND", "ARA"]
                for seed in [2013, 1, 2]]
    if name == "anchor":
        opening = {**BASE, "dims": 100, "anchor": "opening"}
        return ([(r, 2013, opening) for r in ["USA", "CHI"]]
                + [("USA", 2013, {**opening, "a-scale": 0.5}), ("USA", 2013, {**opening, "budget": 288})])
    if name == "prefix":
        return [("CHI", 2013, {**BASE, "placement": "prefix"})]
    if name == "counterbalance":
        # Both option orders in training (and in every evaluation of the run): rows that only
        # push the answer digit one way cancel out, so what remains has to move the content.
        return [(r, seed, {**CHOSEN, "counterbalance": True}) for r in ["USA", "CHI", "IND", "ARA"]
                for seed in [2013, 1, 2]]
    if name == "cmaes":
        # CMA-ES in place of SHADE, everything else the defaults (docs/tuning.md).
        return [(r, seed, {**CHOSEN, "strategy": "cmaes"}) for r in ["USA", "CHI", "IND", "ARA"]
                for seed in [2013, 1, 2]]
    if name == "budget576":
        return [(r, seed, {**CHOSEN, "budget": 576}) for r in ["USA", "CHI", "IND", "ARA"]
                for seed in [2013, 1, 2]]
    raise SystemExit(f"unknown plan {name!r}: expected screen, defaults, anchor, prefix, "
                     "counterbalance, budget576, cmaes or two-wordings")


def key(region, seed, settings):
    return json.dumps({"region": region, "seed": seed, **settings}, sort_keys=True)


def normalized(r):
    """A result with the settings the sweep did not vary yet filled in (runs made before
    `--anchor` existed used the persona anchor; runs without a survey trained on wording A,
    the default before two wordings)."""
    r["settings"] = {"anchor": "persona", "survey": "vsm13", **r["settings"]}
    return r


def done_keys(path):
    if not os.path.exists(path):
        return set()
    return {key(r["region"], r["seed"], r["settings"]) for r in load(path)}


def tune(db, region, seed, settings, threads):
    cmd = [BINARY, "--db", db, "tune", "--region", region, "--seed", str(seed), "--json",
           "--threads", str(threads)]
    for k, v in settings.items():
        if v is True:
            cmd.append(f"--{k}")
        elif v is not False:
            cmd += [f"--{k}", str(v)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    v = json.loads(p.stdout)
    rows = {r["label"]: r for r in v["rows"]}
    out = {"region": region, "seed": seed, "settings": settings, "wall_s": round(wall, 1),
           "run": v["run"], "target": v["region"]["scores"], "gap_closed": v.get("gap_closed")}
    for survey, label in [("train", "train"), ("heldout", "held-out")]:
        for m in ["naive", "icl", "tuned"]:
            r = rows[f"{label} {m}"]
            out[f"{survey}_{m}"] = round(r["loss"], 2)
            out[f"{survey}_{m}_indices"] = r["indices"]
    return out


def cmd_run(a):
    os.makedirs(os.path.dirname(os.path.abspath(a.results)), exist_ok=True)
    seen = done_keys(a.results)
    todo = [p for p in plans(a.plan) if key(*p) not in seen]
    print(f"{len(todo)} runs to do", file=sys.stderr)
    for i, (region, seed, settings) in enumerate(todo):
        print(f"[{i + 1}/{len(todo)}] {region} seed {seed} {settings}", file=sys.stderr, flush=True)
        r = tune(a.db, region, seed, settings, a.threads)
        print(f"    train naive {r['train_naive']} icl {r['train_icl']} tuned {r['train_tuned']}"
              f" | held-out naive {r['heldout_naive']} tuned {r['heldout_tuned']}"
              f" | {r['wall_s']} s", file=sys.stderr, flush=True)
        with open(a.results, "a") as f:
            f.write(json.dumps(r) + "\n")


def cmd_reach(a):
    cmd = [BINARY, "--db", a.db, "reach", "--region", a.region, "--budget", str(a.budget),
           "--threads", str(a.threads), "--json"] + a.extra
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    with open(a.results, "w") as f:
        f.write(p.stdout)
    print(p.stdout)


def load(path):
    with open(path) as f:
        return [normalized(json.loads(line)) for line in f if line.strip()]


def label(settings):
    diff = {k: v for k, v in settings.items() if BASE.get(k) != v}
    return ", ".join(f"{k} {v}" for k, v in diff.items()) or "base"


def summary(rs, field):
    xs = [r[field] for r in rs]
    mean = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return mean, sd


def cmd_table(a):
    rs = load(a.results)
    groups = {}
    for r in rs:
        groups.setdefault((r["region"], label(r["settings"])), []).append(r)
    print("| region | settings | seeds | train naive | train ICL | train tuned (mean ± sd) | "
          "change | held-out naive | held-out ICL | held-out tuned (mean ± sd) | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (region, lab), g in groups.items():
        tn, _ = summary(g, "train_naive")
        ti, _ = summary(g, "train_icl")
        tt, tsd = summary(g, "train_tuned")
        hn, _ = summary(g, "heldout_naive")
        hi, _ = summary(g, "heldout_icl")
        ht, hsd = summary(g, "heldout_tuned")
        wall = statistics.mean(r["wall_s"] for r in g)
        print(f"| {region} | {lab} | {len(g)} | {tn:.1f} | {ti:.1f} | {tt:.1f} ± {tsd:.1f} | "
              f"{(tt - tn) / tn * 100:+.0f} % | {hn:.1f} | {hi:.1f} | {ht:.1f} ± {hsd:.1f} | "
              f"{wall:.0f} |")
    print()
    print("Index moves (training survey, mean over seeds; naive -> tuned, target):")
    print()
    print("| region | settings | " + " | ".join(DIMS) + " |")
    print("|---|---|" + "---|" * len(DIMS))
    for (region, lab), g in groups.items():
        cells = []
        for d in DIMS:
            n = statistics.mean(r["train_naive_indices"][d] for r in g)
            t = statistics.mean(r["train_tuned_indices"][d] for r in g)
            cells.append(f"{n:.0f} → {t:.0f} ({g[0]['target'][d]:.0f})")
        print(f"| {region} | {lab} | " + " | ".join(cells) + " |")


def finish_groups(fig, ax, names, ylabel, title, path):
    """Labels a plot of groups of two columns (at x = 3i and 3i + 1) and saves it."""
    ax.set_xticks([i * 3 + 0.5 for i in range(len(names))], names)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cmd_plot(a):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("plots need matplotlib: python3 -m pip install matplotlib")
    rs = load(a.results)
    os.makedirs(a.out, exist_ok=True)

    # The one-factor screen: CHI, seed 2013, only the settings BASE has (no counterbalance,
    # no other training survey).
    screen = [r for r in rs if r["region"] == "CHI" and r["seed"] == 2013
              and set(r["settings"]) <= set(BASE) and r["settings"]["survey"] == BASE["survey"]]
    if screen:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [label(r["settings"]) for r in screen]
        x = range(len(screen))
        ax.bar([i - 0.2 for i in x], [r["train_tuned"] for r in screen], 0.4, label="training (vsm13)")
        ax.bar([i + 0.2 for i in x], [r["heldout_tuned"] for r in screen], 0.4, label="held-out (vsm13-alt)")
        ax.axhline(screen[0]["train_naive"], color="C0", ls="--", lw=1, label="naive, training")
        ax.axhline(screen[0]["heldout_naive"], color="C1", ls=":", lw=1, label="naive, held-out")
        ax.set_xticks(list(x), labels, rotation=30, ha="right")
        ax.set_ylabel("tuned L1 to the published scores")
        ax.set_title("CHI, seed 2013: one setting changed at a time")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "screen.png"), dpi=110)

    base = [r for r in rs if r["settings"] == CHOSEN]
    regions = [g for g in ["USA", "CHI", "IND", "ARA"] if any(r["region"] == g for r in base)]
    if regions:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
        for ax, survey, title in [(axes[0], "train", "training (vsm13)"),
                                  (axes[1], "heldout", "held-out (vsm13-alt)")]:
            for j, m in enumerate(["naive", "icl", "tuned"]):
                means, sds = [], []
                for g in regions:
                    xs = [r[f"{survey}_{m}"] for r in base if r["region"] == g]
                    means.append(statistics.mean(xs))
                    sds.append(statistics.stdev(xs) if len(xs) > 1 else 0.0)
                ax.bar([i + (j - 1) * 0.27 for i in range(len(regions))], means, 0.27,
                       yerr=sds, capsize=3, label=m)
            ax.set_xticks(range(len(regions)), regions)
            ax.set_title(title)
        axes[0].set_ylabel("L1 (mean ± sd over seeds)")
        axes[0].legend()
        fig.suptitle(f"Default settings ({label(CHOSEN)}): naive vs ICL vs tuned")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "defaults.png"), dpi=110)

        fig, axes = plt.subplots(1, len(regions), figsize=(3 * len(regions), 3.4), sharey=True)
        axes = axes if len(regions) > 1 else [axes]
        for ax, g in zip(axes, regions):
            rr = [r for r in base if r["region"] == g]
            t = [rr[0]["target"][d] for d in DIMS]
            n = [statistics.mean(r["train_naive_indices"][d] for r in rr) for d in DIMS]
            u = [statistics.mean(r["train_tuned_indices"][d] for r in rr) for d in DIMS]
            ax.plot(DIMS, t, "k*", ms=10, label="target")
            ax.plot(DIMS, n, "o", color="C0", label="naive")
            ax.plot(DIMS, u, "s", color="C2", label="tuned (mean)")
            for i in range(len(DIMS)):
                ax.annotate("", (i, u[i]), (i, n[i]), arrowprops=dict(arrowstyle="->", color="grey"))
            ax.set_title(g)
        axes[0].set_ylabel("index (training survey)")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "indices.png"), dpi=110)
    usa = [(name, [r for r in rs if r["region"] == "USA" and r["settings"] == settings])
           for name, settings in [("defaults (288)", CHOSEN),
                                  ("budget 576", {**CHOSEN, "budget": 576}),
                                  ("both orders", {**CHOSEN, "counterbalance": True}),
                                  ("two wordings", TWO_WORDINGS)]]
    usa = [(name, g) for name, g in usa if g]
    if usa:
        fig, ax = plt.subplots(figsize=(8.5, 4))
        for i, (name, g) in enumerate(usa):
            for j, (survey, title) in enumerate([("train", "training"), ("heldout", "held-out")]):
                x = i * 3 + j
                ax.scatter([x] * len(g), [r[f"{survey}_tuned"] for r in g], color=f"C{j}",
                           label=f"tuned, {title}" if i == 0 else None)
                ax.hlines(g[0][f"{survey}_naive"], x - 0.4, x + 0.4, color=f"C{j}", ls="--",
                          label=f"naive, {title}" if i == 0 else None)
        finish_groups(fig, ax, [name for name, _ in usa], "L1 (one dot per seed)",
                      "USA: what the training fit leaves on the held-out survey",
                      os.path.join(a.out, "usa-heldout.png"))

    # Held-out loss per seed, every region: trained on one wording vs on two.
    pairs = [(g, [[r for r in rs if r["region"] == g and r["settings"] == st]
                  for st in (CHOSEN, TWO_WORDINGS)]) for g in ["USA", "CHI", "IND", "ARA"]]
    pairs = [(g, runs) for g, runs in pairs if all(runs)]
    if pairs:
        fig, ax = plt.subplots(figsize=(8.5, 4))
        for i, (g, runs) in enumerate(pairs):
            for j, (rr, name) in enumerate(zip(runs, ["one wording (vsm13)", "two wordings (vsm13-ac)"])):
                x = i * 3 + j
                ax.scatter([x] * len(rr), [r["heldout_tuned"] for r in rr], color=f"C{j}",
                           label=f"tuned, trained on {name}" if i == 0 else None)
                ax.hlines(statistics.mean(r["heldout_tuned"] for r in rr), x - 0.3, x + 0.3,
                          color=f"C{j}", lw=2)
            ax.hlines(runs[0][0]["heldout_naive"], i * 3 - 0.45, i * 3 + 1.45, color="k", ls="--",
                      label="naive" if i == 0 else None)
        finish_groups(fig, ax, [g for g, _ in pairs],
                      "held-out (vsm13-alt) L1; dots: seeds, bars: mean",
                      "Held-out loss: trained on one wording vs on two",
                      os.path.join(a.out, "heldout-wordings.png"))
    print(f"plots in {a.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--plan", required=True)
    r.add_argument("--results", required=True)
    r.add_argument("--db", default=os.path.join(ROOT, "target", "sweep.db"))
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(f=cmd_run)
    q = sub.add_parser("reach")
    q.add_argument("--region", required=True)
    q.add_argument("--budget", type=int, default=24)
    q.add_argument("--results", required=True)
    q.add_argument("--db", default=os.path.join(ROOT, "target", "sweep.db"))
    q.add_argument("--threads", type=int, default=2)
    q.add_argument("extra", nargs="*", help="more reach options, after --")
    q.set_defaults(f=cmd_reach)
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    t.set_defaults(f=cmd_table)
    g = sub.add_parser("plot")
    g.add_argument("--results", required=True)
    g.add_argument("--out", required=True)
    g.set_defaults(f=cmd_plot)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
