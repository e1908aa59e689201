#!/usr/bin/env python3
"""How tuned prompts score on a survey they were not trained on, with that survey's constants
calibrated the way `tune` calibrates them (`culturetune calibrate --survey`).

  scripts/wording_transfer.py --survey surveys/vsm13-c.toml --runs 15-26
  scripts/wording_transfer.py --survey vsm13-alt --runs 15-26   # reproduces tune's held-out L1

Each run's tuned prompt is exported (culturetune export) and asked the survey through
`culturetune survey --soft-prompt`; prints naive and tuned L1 per run. Uses the release binary
and the sweep's database (target/sweep.db) by default, as scripts/sweep.py does.
"""
import argparse
import json
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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

    def ct(*args):
        cmd = [a.binary, "--db", a.db, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        return r.stdout

    threads = ["--threads", str(a.threads)]
    cal = json.loads(ct("calibrate", "--survey", a.survey, "--json", *threads))
    c = cal["calibrations"][0]["constants"]
    constants = ",".join(f"{d}={v!r}" for d, v in c.items())

    def l1(region, *extra):
        v = json.loads(ct("survey", "--survey", a.survey, "--region", region, "--constants",
                          constants, "--json", *threads, *extra))
        return v["loss"]["l1"]

    region_of = {r["id"]: r["region"] for r in json.loads(ct("runs", "--json"))}
    print(f"survey {a.survey}; constants {constants}")
    print("| run | region | naive | tuned |")
    print("|---|---|---|---|")
    naive = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            region = region_of[run]
            out = os.path.join(tmp, f"run{run}")
            ct("export", str(run), "--out", out)
            if region not in naive:
                naive[region] = l1(region)
            tuned = l1(region, "--soft-prompt", out)
            print(f"| {run} | {region} | {naive[region]:.1f} | {tuned:.1f} |", flush=True)


if __name__ == "__main__":
    main()
