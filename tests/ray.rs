//! A plan run on a real local Ray cluster (scripts/ray_sweep.py with the pinned Ray of
//! scripts/setup-ray.sh): 6 jobs (2 regions x 3 seeds) on 2 CPUs, one job's Ray worker killed
//! with SIGKILL while it runs, the results merged into one database; every job there exactly
//! once, finished, with the same losses, bit for bit, as the same plan run one job after
//! another with `culturetune job`. The cluster (started with `ray start --head` on 127.0.0.1,
//! its files in the test's temporary directory) is stopped in every outcome.

mod common;

use common::ok;

fn ct<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    common::run_in(env!("CARGO_BIN_EXE_culturetune"), dir, args)
}

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Ray environment's python: $CULTURETUNE_RAY_PYTHON, else scripts/setup-ray.sh's.
fn python() -> PathBuf {
    let p = std::env::var_os("CULTURETUNE_RAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/ray-venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-ray.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 (free when asked; Ray binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Ray head node in its own process group with its files under `temp`; dropped, it kills
/// that group and every process still naming `temp` (Ray's daemons), whatever the outcome.
struct Cluster {
    head: Child,
    temp: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(temp: &Path) -> Cluster {
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let ray = python().with_file_name("ray");
        let head = Command::new(ray)
            .args(["start", "--head", "--block", "--disable-usage-stats"])
            .args([
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args([
                "--num-cpus",
                "2",
                "--num-gpus",
                "0",
                "--include-dashboard",
                "false",
            ])
            .args(["--dashboard-host", "127.0.0.1"])
            .arg(format!("--temp-dir={}", temp.display()))
            .env("RAY_USAGE_STATS_ENABLED", "0")
            // Ray keeps its authentication token under $HOME/.ray: the test's directory.
            .env("HOME", temp.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let cluster = Cluster {
            head,
            temp: temp.to_path_buf(),
            port,
        };
        cluster.wait_ready(Duration::from_secs(120));
        cluster
    }

    /// Waits for the head's raylet (its socket in the session directory).
    fn wait_ready(&self, limit: Duration) {
        let socket = self.temp.join("session_latest/sockets/raylet");
        let t = Instant::now();
        while !socket.exists() {
            assert!(
                t.elapsed() < limit,
                "the Ray head did not start in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let group = format!("-{}", self.head.id());
        let _ = Command::new("kill").args(["-9", "--", &group]).status();
        let _ = self.head.wait();
        let needle = self.temp.display().to_string();
        for pid in processes_naming(&needle) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Processes whose command line contains `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) && pid != std::process::id() {
                out.push(pid);
            }
        }
    }
    out
}

/// The parent of a process (from /proc/PID/stat).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

/// The pid holding a run that is running with at least `min` checkpoints in a job database.
fn running_pid(db: &Path, min: i64) -> Option<u32> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(db, flags).ok()?;
    conn.query_row(
        "SELECT r.pid FROM runs r WHERE r.status = 'running' AND \
         (SELECT COUNT(*) FROM checkpoints c WHERE c.run_id = r.id) >= ?1",
        [min],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|p| p as u32)
}

/// Each finished run's best loss (as bits) and tuned losses, by the job it belongs to.
fn results(dir: &Path, db: &str) -> BTreeMap<String, (u64, Vec<u64>)> {
    let runs: Value = serde_json::from_str(&ok(ct(dir, &["--db", db, "runs", "--json"]))).unwrap();
    let mut out = BTreeMap::new();
    for r in runs.as_array().unwrap() {
        assert_eq!(r["status"], "done", "{r}");
        let id = r["id"].to_string();
        let show: Value =
            serde_json::from_str(&ok(ct(dir, &["--db", db, "show", &id, "--json"]))).unwrap();
        let key = format!("{}/{}", r["region"], show["run"]["config"]["de"]["seed"]);
        let best = r["best_loss"].as_f64().unwrap().to_bits();
        let mut losses: Vec<u64> = show["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["loss"].as_f64().unwrap().to_bits())
            .collect();
        losses.sort();
        assert!(
            out.insert(key.clone(), (best, losses)).is_none(),
            "{key} twice"
        );
    }
    out
}

#[test]
fn a_plan_on_ray_survives_a_killed_worker_and_merges_to_the_sequential_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    let plan = ok(ct(
        d,
        &[
            "plan",
            "--model",
            "tiny.gguf",
            "--weights",
            "original",
            "--region",
            "USA,CHI",
            "--seeds",
            "1,2,3",
            "--budget",
            "48",
            "--population",
            "4",
            "--threads",
            "1",
            "--calibration-regions",
            "USA,CHI",
        ],
    ));
    std::fs::write(d.join("plan.jsonl"), &plan).unwrap();
    let jobs: Vec<Value> = plan
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jobs.len(), 6);
    let t = Instant::now();
    for i in 0..6 {
        ok(ct(
            d,
            &[
                "--db",
                "seq.db",
                "job",
                "plan.jsonl",
                "--index",
                &i.to_string(),
            ],
        ));
    }
    let sequential_s = t.elapsed().as_secs_f64();
    eprintln!("6 jobs one after another: {sequential_s:.1} s");
    let again = ok(ct(
        d,
        &[
            "--db",
            "seq.db",
            "job",
            "plan.jsonl",
            "--index",
            "4",
            "--json",
        ],
    ));
    assert!(again.contains("\"already_done\""), "{again}");

    let temp = d.join("ray");
    let cluster = Cluster::start(&temp);
    let scratch = d.join("scratch");
    let mut driver = Command::new(python())
        .arg(root().join("scripts/ray_sweep.py"))
        .arg("plan.jsonl")
        .args([
            "--into",
            "merged.db",
            "--out",
            "jobs",
            "--cpus-per-job",
            "1",
        ])
        .arg(format!("--address=127.0.0.1:{}", cluster.port))
        .arg(format!("--scratch={}", scratch.display()))
        .arg(format!("--binary={}", env!("CARGO_BIN_EXE_culturetune")))
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .env("HOME", d)
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(driver.stdout.take().unwrap());
    let err = drain(driver.stderr.take().unwrap());
    let killed = kill_one_worker(&scratch.join("jobs"), &mut driver, Duration::from_secs(240));
    let o = wait_for(&mut driver, out, err, Duration::from_secs(300));
    drop(cluster);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let killed = killed.unwrap_or_else(|| panic!("no job was caught running: {stderr}"));
    assert!(processes_naming(&temp.display().to_string()).is_empty());
    let results_file = std::fs::read_to_string(d.join("jobs/results.jsonl")).unwrap();
    let lines: Vec<Value> = results_file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{stderr}");
    let resumed: Vec<&Value> = lines.iter().filter(|l| l["action"] == "resumed").collect();
    assert_eq!(
        resumed.len(),
        1,
        "the killed job resumed from its checkpoint: {lines:?}"
    );
    assert_eq!(resumed[0]["job"], killed.as_str(), "{lines:?}");
    assert_eq!(results(d, "merged.db"), results(d, "seq.db"));
    eprintln!("sequential: {sequential_s:.1} s; {stderr}");
}

/// Waits for a job database with a running run past its first checkpoint, kills that run's
/// Ray worker (the culturetune process's parent) with SIGKILL, and returns the job's id.
fn kill_one_worker(jobs: &Path, driver: &mut Child, limit: Duration) -> Option<String> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if driver.try_wait().unwrap().is_some() {
            return None;
        }
        for e in std::fs::read_dir(jobs).into_iter().flatten().flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "db")
                || path.to_string_lossy().contains(".cal.")
            {
                continue;
            }
            let Some(pid) = running_pid(&path, 2) else {
                continue;
            };
            let worker = parent_of(pid).expect("the job's process has a parent");
            let status = Command::new("kill")
                .args(["-9", &worker.to_string()])
                .status();
            assert!(status.unwrap().success());
            let t = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && t.elapsed().as_secs() < 10 {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "the job died with its worker"
            );
            return Some(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The driver's output once it exits (killed past `limit`).
fn wait_for(
    child: &mut Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
    limit: Duration,
) -> Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Output {
        status: child.wait().unwrap(),
        stdout: out.join().unwrap().into_bytes(),
        stderr: err.join().unwrap().into_bytes(),
    }
}

/// Reads a pipe to its end on a thread of its own (so that the child never blocks on it).
fn drain(pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    })
}
