#!/usr/bin/env python3
"""Runs a culturetune plan on a Ray cluster and merges the results into one database.

  culturetune plan --region all --seeds 1,2,3 > plan.jsonl
  python scripts/ray_sweep.py plan.jsonl --into sweep.db --address HEAD:6379 [--gpus-per-job 1]

Each job of the plan is one Ray task that runs the `culturetune` binary (`culturetune job`) in
a database of its own under --scratch on the worker. The jobs that share a calibration (the
plan's `calibration` field) get it from one calibration task instead of each computing it.
A task whose worker process or node dies is retried by Ray (--retries); if --scratch is shared
storage, the retry resumes the job from its last checkpoint, otherwise it starts it again:
either way the result is the same, because runs are seeded. As each job ends, its database
comes back through Ray's object store, is kept under --out (written atomically) and merged
into --into with `culturetune merge`; a line about it (job, region, seed, run, action, best
loss, node) goes to stdout and to --out's results.jsonl. A job whose database is already under --out is done and
is not submitted again, so a rerun continues an interrupted sweep.

Without --address a local Ray instance is started for this driver only, bound to 127.0.0.1,
without the dashboard. docs/scale.md has the cluster set-up and its security notes. Needs the
pinned Ray of scripts/ray-requirements.txt (scripts/setup-ray.sh).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_plan(path):
    """The plan's jobs (dicts with id, region, seed, calibration and config), in order."""
    jobs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                job = json.loads(line)
                job["id"], job["calibration"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{path} line {n}: not a job of `culturetune plan` ({e})")
            jobs.append(job)
    if not jobs:
        sys.exit(f"{path}: the plan has no jobs")
    return jobs


def die_with_parent():
    """Runs in the child before exec: the kernel kills it (SIGKILL) when the Ray worker that
    started it dies, so a killed worker leaves no job running on behind Ray's back."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def culturetune(binary, db, args, targets):
    """Runs the binary on `db`; returns its stdout, raising with its stderr's tail on failure."""
    cmd = [binary, "--db", db] + (["--targets", targets] if targets else []) + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       preexec_fn=die_with_parent)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {p.returncode}: {p.stderr[-2000:]}")
    return p.stdout


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_atomic(path, data):
    """Writes `data` to `path` through a temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@ray.remote
def calibrate_task(binary, plan_text, index, scratch, targets):
    """Computes the calibration of the plan's job `index`; returns the database's bytes."""
    work = tempfile.mkdtemp(dir=ensure(scratch), prefix="cal-")
    try:
        plan = os.path.join(work, "plan.jsonl")
        write_atomic(plan, plan_text.encode())
        db = os.path.join(work, "cal.db")
        culturetune(binary, db, ["job", plan, "--index", str(index), "--calibrate-only"],
                    targets)
        return read_bytes(db)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@ray.remote
def job_task(binary, plan_text, job_id, calibration, scratch, targets):
    """Runs one job in its database under `scratch` (resumed there if an earlier attempt left
    it); returns culturetune's report, the database's bytes and the node's address."""
    jobs = ensure(os.path.join(scratch, "jobs"))
    db = os.path.join(jobs, f"{job_id}.db")
    plan = os.path.join(jobs, f"{job_id}.plan.jsonl")
    write_atomic(plan, plan_text.encode())
    resumed = os.path.exists(db)
    if calibration is not None and not resumed:
        cal = os.path.join(jobs, f"{job_id}.cal.db")
        write_atomic(cal, calibration)
        culturetune(binary, db, ["merge", cal], targets)
        os.unlink(cal)
    out = culturetune(binary, db, ["job", plan, "--id", job_id, "--json"], targets)
    # culturetune closed the database, which folds SQLite's write-ahead log into the file:
    # the file's bytes are the whole database.
    wal = db + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise RuntimeError(f"{wal} is not empty after the job ended")
    return {"report": json.loads(out), "db": read_bytes(db),
            "node": ray.get_runtime_context().get_node_id()[:12], "found_db": resumed}


def ensure(d):
    os.makedirs(d, exist_ok=True)
    return d


class Bar:
    """A one-line progress bar on stderr."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.time()

    def step(self, line):
        self.done += 1
        width = 30
        filled = width * self.done // max(self.total, 1)
        rate = self.done / max(time.time() - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0
        sys.stderr.write(f"\r\x1b[K{line}\n[{'=' * filled}{' ' * (width - filled)}] "
                         f"{self.done}/{self.total} jobs, ETA {eta:.0f} s")
        sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")


def connect(args):
    """Joins the cluster at --address, or starts a private local one on 127.0.0.1."""
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")


def calibrations(args, jobs, todo, plan_text):
    """One calibration task per distinct calibration of the jobs to run: {calibration: ref}."""
    if args.no_shared_calibration:
        return {}
    refs = {}
    for i, job in enumerate(jobs):
        c = job["calibration"]
        if job["id"] in todo and c not in refs:
            refs[c] = calibrate_task.options(**resources(args)).remote(
                args.binary, plan_text, i, args.scratch, args.targets)
    return refs


def resources(args):
    return {"num_cpus": args.cpus_per_job, "num_gpus": args.gpus_per_job,
            "max_retries": args.retries, "retry_exceptions": True}


def merge(args, path):
    """Merges one job's database into --into."""
    culturetune(args.binary, args.into, ["merge", path], args.targets)


def run(args):
    jobs = read_plan(args.plan)
    with open(args.plan, encoding="utf-8") as f:
        plan_text = f.read()
    ensure(args.out)
    todo = [j["id"] for j in jobs if not os.path.exists(os.path.join(args.out, j["id"] + ".db"))]
    for j in jobs:
        if j["id"] not in todo:
            merge(args, os.path.join(args.out, j["id"] + ".db"))
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done", file=sys.stderr)
    connect(args)
    cal = calibrations(args, jobs, set(todo), plan_text)
    by_id = {j["id"]: j for j in jobs}
    pending = {}
    for job_id in todo:
        ref = job_task.options(**resources(args)).remote(
            args.binary, plan_text, job_id, cal.get(by_id[job_id]["calibration"]),
            args.scratch, args.targets)
        pending[ref] = job_id
    bar, failed, results = Bar(len(todo)), [], []
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        job_id = pending.pop(ref)
        job = by_id[job_id]
        try:
            r = ray.get(ref)
        except Exception as e:  # the task failed on every attempt
            failed.append(job_id)
            bar.step(f"job {job_id} ({job['region']}, seed {job['seed']}) failed: {e}")
            continue
        path = os.path.join(args.out, job_id + ".db")
        write_atomic(path, r["db"])
        merge(args, path)
        rep = r["report"]
        line = {"job": job_id, "region": job["region"], "seed": job["seed"], "run": rep["run"],
                "action": rep["action"], "best_loss": rep["best_loss"], "evals": rep["evals"],
                "node": r["node"], "found_db": r["found_db"]}
        results.append(line)
        with open(os.path.join(args.out, "results.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
        bar.step(f"job {job_id} ({job['region']}, seed {job['seed']}): {rep['action']}, "
                 f"best loss {rep['best_loss']:.2f} on {r['node']}")
    bar.close()
    ray.shutdown()
    print(f"merged {len(results)} jobs into {args.into}"
          + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("plan", help="the plan (`culturetune plan` output)")
    p.add_argument("--into", required=True, help="the database the results are merged into")
    p.add_argument("--out", help="where each job's database is kept [default: INTO's dir/jobs]")
    p.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "culturetune-ray"),
                   help="the workers' directory for running jobs; shared storage lets a retried "
                        "job resume on another node [default: %(default)s]")
    p.add_argument("--address", help="a running Ray cluster (host:port or `auto`) "
                                     "[default: a private local one]")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count(),
                   help="CPUs of the private local cluster [default: all]")
    p.add_argument("--cpus-per-job", type=float, default=1.0,
                   help="CPUs a job asks for (match the plan's --threads) [default: 1]")
    p.add_argument("--gpus-per-job", type=float, default=0.0,
                   help="GPUs a job asks for (1 on GPU nodes) [default: 0]")
    p.add_argument("--retries", type=int, default=3,
                   help="times Ray retries a job whose worker, node or process failed")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "culturetune"),
                   help="the culturetune binary, at this path on every node [default: %(default)s]")
    p.add_argument("--targets", help="the targets table the plan was made with, if not built in")
    p.add_argument("--no-shared-calibration", action="store_true",
                   help="let every job compute its own calibration")
    args = p.parse_args()
    args.binary = os.path.abspath(args.binary)
    args.into = os.path.abspath(args.into)
    args.out = os.path.abspath(args.out or os.path.join(os.path.dirname(args.into), "jobs"))
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"--binary {args.binary}: not an executable (cargo build --release)")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
