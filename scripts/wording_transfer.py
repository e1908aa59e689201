#!/usr/bin/env python3
"""How tuned prompts score on a survey they were not trained on, with constants calibrated for
that survey as `tune` calibrates them (C_d = mean over the 12 default calibration regions of
published score - the naive prompt's raw index).

  scripts/wording_transfer.py --survey surveys/vsm13-c.toml --runs 15-26
  scripts/wording_transfer.py --survey vsm13-alt --runs 15-26   # reproduces tune's held-out L1

Each run's tuned prompt is exported (culturetune export) and asked the survey through
`culturetune survey --soft-prompt`; prints naive and tuned L1 per run. Uses the release binary
and the sweep's database (target/sweep.db) by default, as scripts/sweep.py does.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIMS = ["PDI", "IDV", "MAS", "UAI", "LTO", "IVR"]
CALIBRATION = ["USA", "GBR", "GER", "SWE", "RUS", "JPN", "CHI", "IND", "BRA", "MEX", "ARA", "AFW"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--survey", required=True, help="survey id or file")
    p.add_argument("--runs", required=True, help="run ids: 15-26 or 15,16,20")
    p.add_argument("--db", default=os.path.join(ROOT, "target", "sweep.db"))
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "culturetune"))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    runs = []
    for part in a.runs.split(","):
        lo, _, hi = part.partition("-")
        runs += list(range(int(lo), int(hi or lo) + 1))

    def ask(region, extra=()):
        cmd = [a.binary, "--db", a.db, "survey", "--survey", a.survey, "--region", region,
               "--json", "--threads", str(a.threads), *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        v = json.loads(r.stdout)
        return v["indices"], v["region"]["scores"]

    naive = {}
    for region in CALIBRATION:
        naive[region] = ask(region)
    c = {d: statistics.mean(t[d] - raw[d] for raw, t in naive.values()) for d in DIMS}

    def l1(raw, target):
        return sum(abs(raw[d] + c[d] - target[d]) for d in DIMS)

    runs_json = subprocess.run([a.binary, "--db", a.db, "runs", "--json"], capture_output=True,
                               text=True, check=True).stdout
    region_of = {r["id"]: r["region"] for r in json.loads(runs_json)}
    print(f"survey {a.survey}; constants " + ", ".join(f"{d} {c[d]:.1f}" for d in DIMS))
    print("| run | region | naive | tuned |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            region = region_of[run]
            out = os.path.join(tmp, f"run{run}")
            subprocess.run([a.binary, "--db", a.db, "export", str(run), "--out", out],
                           check=True, capture_output=True)
            raw, target = naive[region] if region in naive else ask(region)
            tuned, _ = ask(region, ["--soft-prompt", out])
            print(f"| {run} | {region} | {l1(raw, target):.1f} | {l1(tuned, target):.1f} |", flush=True)


if __name__ == "__main__":
    main()
