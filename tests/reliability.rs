//! The bad-input table of docs/reliability.md: every row is produced here. Each case runs the
//! real binary on a real bad input and checks that it ends in a clear error (exit 1, or 2 for a
//! command-line usage error) or in a correct result (exit 0): never a signal (an abort inside
//! llama.cpp), never a panic (exit 101). Databases a case touched must pass `PRAGMA
//! integrity_check`. The table generated from the runs must equal the one in
//! docs/reliability.md; after a deliberate change of a message, `CULTURETUNE_BLESS=1 cargo test
//! --test reliability` rewrites it.

mod common;

#[path = "reliability/hostile.rs"]
mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest one case may take: a hang (a FIFO read, an unbounded search) fails the test with
/// its name instead of blocking CI.
const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs a command to its end (or kills it after [`CASE_TIMEOUT`] and fails), feeding `stdin`.
fn run_bounded(cmd: &mut Command, stdin: &[u8], what: &str) -> Output {
    use std::io::{Read, Write};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let (o, e) = (reader(Box::new(out)), reader(Box::new(err)));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > CASE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {CASE_TIMEOUT:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

const DOC: &str = "docs/reliability.md";
const START: &str = "<!-- table: written by tests/reliability.rs -->";
const END: &str = "<!-- end of table -->";

/// How a case must end.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    /// Exit 0 with a correct result.
    Works,
    /// Exit 1 with an `error:` line.
    Error,
    /// Exit 2: clap's usage error.
    Usage,
}

struct Table {
    dir: tempfile::TempDir,
    rows: Vec<String>,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_culturetune")
}

impl Table {
    fn tmp(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the temporary directory, as a string.
    fn path(&self, name: &str) -> String {
        self.tmp().join(name).display().to_string()
    }

    /// Writes `bytes` to a file in the temporary directory and returns its path.
    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let p = self.tmp().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    fn show(&self, s: &str) -> String {
        s.replace(&self.tmp().display().to_string(), "$TMP")
    }

    /// The two encodings that must read like the plain file: a UTF-8 byte-order mark and CRLF
    /// line ends (`text` has LF line ends); `args` makes the command for a file.
    fn encodings(
        &mut self,
        group: &str,
        stem: &str,
        text: &str,
        args: impl Fn(String) -> Vec<String>,
    ) {
        for (name, kind, body) in [
            (
                "a UTF-8 byte-order mark (works)",
                "bom",
                format!("\u{feff}{text}"),
            ),
            ("CRLF line ends (works)", "crlf", text.replace('\n', "\r\n")),
        ] {
            let a = args(self.file(&format!("{stem}-{kind}.csv"), body));
            self.case(group, name, Want::Works, a);
        }
    }

    /// Runs one case, checks how it ended, and adds its row.
    fn case<S: AsRef<str>>(&mut self, group: &str, input: &str, want: Want, args: impl AsRef<[S]>) {
        self.case_with(group, input, want, args, b"");
    }

    /// [`Table::case`] with `stdin` fed to the command; returns its output for further checks.
    fn case_with<S: AsRef<str>>(
        &mut self,
        group: &str,
        input: &str,
        want: Want,
        args: impl AsRef<[S]>,
        stdin: &[u8],
    ) -> Output {
        let args = args.as_ref();
        let before = snapshot(self.tmp());
        let o = run_bounded(
            Command::new(bin()).args(args.iter().map(|a| a.as_ref())),
            stdin,
            &format!("{group} / {input}"),
        );
        let paths: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        self.check_changes(&before, &paths, &format!("{group} / {input}"));
        self.record(group, input, want, args, &o, None);
        o
    }

    /// After a case: nothing in the temporary directory changed but the case's own paths
    /// (those its arguments name, what lies under them, a database's `-wal`/`-shm`, and new
    /// folders leading to them), and every database that changed passes `integrity_check`.
    fn check_changes(&self, before: &Snapshot, args: &[&str], what: &str) {
        let after = snapshot(self.tmp());
        let root = self.tmp().display().to_string();
        let own: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| a.starts_with(&root) && a.len() > root.len() + 1)
            .collect();
        let allowed = |p: &str| {
            own.iter().any(|a| {
                p == *a
                    || p.starts_with(&format!("{a}/"))
                    || p.strip_prefix(*a)
                        .is_some_and(|s| ["-wal", "-shm", "-journal"].contains(&s))
                    || a.starts_with(&format!("{p}/"))
            })
        };
        let mut changed: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        changed.sort();
        changed.dedup();
        for p in changed {
            assert!(
                allowed(p),
                "{what}: changed {p}, which is not the case's own path"
            );
            if p.ends_with(".db") && after.get(p).is_some_and(|e| e.0 == 'f') {
                integrity_ok(p);
            }
        }
    }

    /// Checks how a run ended and adds its row; `shown` replaces the output's first line (for
    /// outputs that hold timings or depend on which of two processes came first).
    fn record(
        &mut self,
        group: &str,
        input: &str,
        want: Want,
        args: &[impl AsRef<str>],
        o: &Output,
        shown: Option<&str>,
    ) {
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let code = o.status.code();
        let expected = match want {
            Want::Works => 0,
            Want::Error => 1,
            Want::Usage => 2,
        };
        assert_eq!(
            code,
            Some(expected),
            "{group} / {input}: `culturetune {}` ended with {:?}, expected {expected}\nstderr: {stderr}",
            args.join(" "),
            o.status
        );
        assert!(!stderr.contains("panicked"), "{group} / {input}: {stderr}");
        let first = match shown {
            Some(text) => text.to_string(),
            None => match want {
                Want::Works => stdout
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("(no output)")
                    .to_string(),
                Want::Error => stderr
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or_else(|| panic!("{group} / {input}: no `error:` line in {stderr}"))
                    .to_string(),
                Want::Usage => stderr
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or("(usage)")
                    .to_string(),
            },
        };
        let cell = |s: &str| s.replace('|', "\\|");
        let mut command = self.show(&args.join(" "));
        if command.chars().count() > 110 {
            command = command.chars().take(107).collect::<String>() + "...";
        }
        let mut first = cell(&self.show(first.trim()));
        if first.chars().count() > 220 {
            first = first.chars().take(217).collect::<String>() + "...";
        }
        self.rows.push(format!(
            "| {group} | {input} | `{}` | {expected} | {first} |",
            cell(&command).replace('`', "'")
        ));
    }
}

/// Every entry under a folder: its kind ('f' file, 'd' folder, 'o' other) and, for a file,
/// its length and modification time (a folder's own time changes with its entries; not
/// compared).
type Snapshot = std::collections::BTreeMap<String, (char, u64, i64, i64)>;

fn snapshot(dir: &Path) -> Snapshot {
    use std::os::unix::fs::MetadataExt;
    let mut out = Snapshot::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let key = p.display().to_string();
            if m.is_dir() {
                out.insert(key, ('d', 0, 0, 0));
                todo.push(p);
            } else if m.is_file() {
                out.insert(key, ('f', m.len(), m.mtime(), m.mtime_nsec()));
            } else {
                out.insert(key, ('o', 0, 0, 0));
            }
        }
    }
    out
}

fn integrity_ok(db: &str) {
    let c = rusqlite::Connection::open(db).unwrap();
    let r: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(r, "ok", "{db}");
}

fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A survey file: the shipped training survey with `edit` applied to its text.
fn survey_text(edit: impl Fn(String) -> String) -> String {
    let shipped = std::fs::read_to_string("surveys/vsm13.toml").unwrap();
    edit(shipped)
}

fn responses_header() -> String {
    let mut h = "respondent".to_string();
    for i in 1..=24 {
        h.push_str(&format!(",q{i:02}"));
    }
    h
}

#[test]
fn every_bad_input_ends_in_a_clear_error_and_the_table_in_the_docs_is_current() {
    let mut t = Table {
        dir: tempfile::tempdir().unwrap(),
        rows: Vec::new(),
    };
    let db = t.path("runs.db");
    let (seed, tiny) = common::tiny_model();
    let tiny_path = t.file("tiny.gguf", &tiny);
    let survey = hostile::survey_args;
    // ------------------------------------------------------------------ model files
    let g = "model file";
    t.case(
        g,
        "the generated one-layer model (valid)",
        Want::Works,
        survey(&tiny_path),
    );
    let p = t.path("missing.gguf");
    t.case(g, "missing", Want::Error, survey(&p));
    let p = t.path("");
    t.case(
        g,
        "a directory",
        Want::Error,
        survey(p.trim_end_matches('/')),
    );
    let p = t.file("empty.gguf", b"");
    t.case(g, "empty", Want::Error, survey(&p));
    let p = t.file("text.gguf", "this is not a model\n");
    t.case(g, "not GGUF (text)", Want::Error, survey(&p));
    for (name, len) in [
        ("truncated inside the magic (3 bytes)", 3),
        ("truncated inside the header (20 bytes)", 20),
        ("truncated inside the metadata", seed.b.len() / 2),
        ("truncated inside the tensor data", tiny.len() - 100),
    ] {
        let p = t.file(&format!("cut-{len}.gguf"), &tiny[..len]);
        t.case(g, name, Want::Error, survey(&p));
    }
    let mut m = tiny.clone();
    set_u32(&mut m, 4, 7);
    let p = t.file("version.gguf", &m);
    t.case(g, "corrupted header: version 7", Want::Error, survey(&p));
    let mut m = tiny.clone();
    set_u64(&mut m, 16, 1 << 40);
    let p = t.file("nkv.gguf", &m);
    t.case(
        g,
        "corrupted header: 2^40 metadata keys",
        Want::Error,
        survey(&p),
    );
    let mut m = tiny.clone();
    let at = seed.values["general.name"] - 4;
    set_u32(&mut m, at, 99);
    let p = t.file("type.gguf", &m);
    t.case(
        g,
        "corrupted header: unknown value type",
        Want::Error,
        survey(&p),
    );
    for (name, key, v) in [
        ("llama.block_count = 0", "llama.block_count", 0),
        ("llama.block_count = 1000", "llama.block_count", 1000),
        (
            "head_count_kv 3 for 4 heads",
            "llama.attention.head_count_kv",
            3,
        ),
        (
            "embedding_length 65, tensors 64 wide",
            "llama.embedding_length",
            65,
        ),
    ] {
        let mut m = tiny.clone();
        set_u32(&mut m, seed.values[key], v);
        let p = t.file(&format!("{key}-{v}.gguf"), &m);
        t.case(
            g,
            &format!("edited hyper-parameter: {name}"),
            Want::Error,
            survey(&p),
        );
    }
    let (_, dup) = common::tiny_model_with(|t| t[66] = t[65].clone());
    let p = t.file("dup.gguf", &dup);
    t.case(
        g,
        "two vocabulary entries with the same text",
        Want::Error,
        survey(&p),
    );
    let (_, plain) = common::tiny_model_opts(|_| {}, false);
    let p = t.file("plain.gguf", &plain);
    t.case(g, "no chat template", Want::Error, survey(&p));
    let named = |p: &str, template: &str| -> Vec<String> {
        let mut a = survey(p);
        a.extend(["--chat-template".to_string(), template.to_string()]);
        a
    };
    t.case(
        g,
        "no chat template, --chat-template chatml (works)",
        Want::Works,
        named(&p, "chatml"),
    );
    t.case(
        g,
        "--chat-template naming no template",
        Want::Error,
        named(&p, "nonesuch"),
    );
    let a = t.path("loop-a.gguf");
    let b = t.path("loop-b.gguf");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    t.case(g, "a symlink loop", Want::Error, survey(&a));

    // ------------------------------------------------------------------ surveys
    let g = "survey file";
    let with = |t: &Table, name: &str, text: String| -> Vec<String> {
        let p = t.file(name, text);
        let mut a = survey(&tiny_path);
        a.extend(["--survey".to_string(), p]);
        a
    };
    let cases: Vec<(&str, Want, String)> = vec![
        (
            "malformed TOML",
            Want::Error,
            survey_text(|s| s.replacen("[survey]", "[survey", 1)),
        ),
        (
            "an unknown key",
            Want::Error,
            survey_text(|s| s.replacen("[survey]\n", "[survey]\ncolour = \"blue\"\n", 1)),
        ),
        (
            "no scales",
            Want::Error,
            survey_text(|s| {
                let a = s.find("[scales.importance]").unwrap();
                let b = s.find("[[items]]").unwrap();
                format!("{}{}", &s[..a], &s[b..])
            }),
        ),
        (
            "no items",
            Want::Error,
            survey_text(|s| {
                let a = s.find("[[items]]").unwrap();
                let b = s
                    .find("[[formulas]]")
                    .or_else(|| s.find("[formulas"))
                    .unwrap_or(s.len());
                format!("{}{}", &s[..a], &s[b..])
            }),
        ),
        (
            "a scale with 1 label",
            Want::Error,
            survey_text(|s| {
                s.replacen(
                    "labels = [\"always\", \"usually\", \"sometimes\", \"seldom\", \"never\"]",
                    "labels = [\"always\"]",
                    1,
                )
            }),
        ),
        (
            "two items with the same id",
            Want::Error,
            survey_text(|s| s.replacen("id = \"q02\"", "id = \"q01\"", 1)),
        ),
        (
            "a 100 000-character item text",
            Want::Error,
            survey_text(|s| {
                let long = "very ".repeat(20_000);
                s.replacen(
                    "How important would it be to you to have enough time",
                    &format!("How {long}important would it be to you to have enough time"),
                    1,
                )
            }),
        ),
        (
            "Unicode and right-to-left text (works)",
            Want::Works,
            survey_text(|s| {
                s.replacen(
            "Think of an ideal job, setting aside the job you have now. How important would it be to you to have enough time left over for your personal or family life?",
            "فكّر في وظيفة مثالية. Think of an ideal job (理想的工作, работа мечты): how important would it be to you to have enough time left over for your personal or family life?",
            1,
        )
            }),
        ),
    ];
    for (i, (name, want, text)) in cases.into_iter().enumerate() {
        let a = with(&t, &format!("survey-{i}.toml"), text);
        t.case(g, name, want, a);
    }

    // ------------------------------------------------------------------ targets CSV
    let g = "targets CSV";
    // The shipped file has CRLF line ends; the cases start from LF.
    let shipped = std::fs::read_to_string("surveys/hofstede-6d-2015.csv")
        .unwrap()
        .replace("\r\n", "\n");
    let regions = |p: String| vec!["regions".to_string(), "--targets".into(), p];
    let p = t.file(
        "t-bad.csv",
        shipped.replacen(",64,27,", ",sixty-four,27,", 1),
    );
    t.case(g, "a bad number", Want::Error, regions(p));
    let p = t.file(
        "t-col.csv",
        shipped.replacen(
            "country,code,pdi,idv,mas,uai,lto,ivr",
            "country,code,pdi,idv,mas,uai,lto",
            1,
        ),
    );
    t.case(g, "a missing column", Want::Error, regions(p));
    t.encodings(g, "t", &shipped, regions);
    let mut big = String::from("country,code,pdi,idv,mas,uai,lto,ivr\n");
    for i in 0..1_000_000 {
        big.push_str(&format!("Region {i},R{i},40,50,60,70,30,20\n"));
    }
    let p = t.file("t-million.csv", &big);
    let start = Instant::now();
    t.case(g, "a million rows (works)", Want::Works, regions(p));
    eprintln!(
        "targets, a million rows: {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // ------------------------------------------------------------------ responses CSV
    let g = "responses CSV";
    let header = responses_header();
    let row = |id: usize| {
        let mut r = format!("r{id}");
        for q in 0..24 {
            r.push_str(&format!(",{}", 1 + (id + q) % 5));
        }
        r
    };
    let good: String = format!("{header}\n{}\n{}\n{}\n", row(1), row(2), row(3));
    let score = |p: String| {
        vec![
            "score".to_string(),
            "--responses".into(),
            p,
            "--region".into(),
            "USA".into(),
        ]
    };
    let p = t.file(
        "r-bad.csv",
        good.replacen("r2,", "r2,x", 1).replacen("r2,x3", "r2,x", 1),
    );
    t.case(g, "a bad number", Want::Error, score(p));
    let p = t.file("r-col.csv", good.replacen(",q24", "", 1));
    t.case(g, "a missing column", Want::Error, score(p));
    t.encodings(g, "r", &good, score);
    let mut big = format!("{header}\n");
    for i in 0..1_000_000 {
        big.push_str(&row(i));
        big.push('\n');
    }
    let p = t.file("r-million.csv", &big);
    let start = Instant::now();
    t.case(g, "a million respondents (works)", Want::Works, score(p));
    eprintln!(
        "responses, a million rows: {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // ------------------------------------------------------------------ databases
    let g = "database";
    let runs = |p: &str| vec!["runs".to_string(), "--db".into(), p.to_string()];
    let p = t.path("");
    t.case(g, "a directory", Want::Error, runs(p.trim_end_matches('/')));
    let p = t.file("text.db", "not a database\n".repeat(100));
    t.case(g, "not SQLite", Want::Error, runs(&p));
    let p = t.path("deeper/still/runs.db");
    t.case(
        g,
        "a missing parent directory (created)",
        Want::Works,
        runs(&p),
    );
    integrity_ok(&p);

    // A run on the generated model, killed with SIGKILL after its first checkpoint, resumed.
    let tune = |db: &str, seed: &str| common::tiny_tune_args(&tiny_path, db, seed);
    common::kill_after_first_generation(Command::new(bin()).args(tune(&db, "1")));
    integrity_ok(&db);
    let resume = ["resume", "1", "--db", &db];
    let o = Command::new(bin()).args(resume).output().unwrap();
    t.record(
        g,
        "SIGKILL during a run, then resume (works)",
        Want::Works,
        &resume,
        &o,
        Some("(the final report; the run is done, integrity_check ok)"),
    );
    integrity_ok(&db);
    let o = Command::new(bin())
        .args(["show", "1", "--db", &db, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["run"]["status"], "done", "{v}");

    // Two runs writing into one database at once: both finish.
    let two = t.path("two.db");
    let mut a = Command::new(bin())
        .args(tune(&two, "1"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = Command::new(bin()).args(tune(&two, "2")).output().unwrap();
    let a_out = {
        let s = a.wait().unwrap();
        let mut e = String::new();
        std::io::Read::read_to_string(a.stderr.as_mut().unwrap(), &mut e).unwrap();
        (s, e)
    };
    assert!(a_out.0.success(), "{}", a_out.1);
    t.record(
        g,
        "two processes writing at once (both finish)",
        Want::Works,
        &tune(&two, "2"),
        &b,
        Some("(both runs done, integrity_check ok)"),
    );
    integrity_ok(&two);
    for id in ["1", "2"] {
        let o = Command::new(bin())
            .args(["show", id, "--db", &two, "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["run"]["status"], "done", "{v}");
    }

    // ------------------------------------------------------------------ imports
    let g = "import";
    let import = |dir: &str| {
        vec![
            "import".to_string(),
            dir.to_string(),
            "--model".into(),
            tiny_path.clone(),
            "--weights".into(),
            "original".into(),
            "--db".into(),
            db.clone(),
        ]
    };
    let good = t.path("export-good");
    let card = serde_json::json!({"region": "USA"});
    culturetune::export::export(
        Path::new(&good),
        &vec![0.01f32; 2 * common::N_EMBD as usize],
        2,
        common::N_EMBD as usize,
        &card,
        "tiny",
        false,
    )
    .unwrap();
    t.case(g, "a valid export (works)", Want::Works, import(&good));
    integrity_ok(&db);
    let p = t.path("no-such-export");
    t.case(g, "a missing directory", Want::Error, import(&p));
    let tmpdir = t.tmp().to_path_buf();
    let copy = |name: &str| -> PathBuf {
        let d = tmpdir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "adapter_config.json",
            "adapter_model.safetensors",
            "culturetune.json",
        ] {
            std::fs::copy(Path::new(&good).join(f), d.join(f)).unwrap();
        }
        d
    };
    let d = copy("export-nofile");
    std::fs::remove_file(d.join("adapter_model.safetensors")).unwrap();
    t.case(
        g,
        "the tensor file missing",
        Want::Error,
        import(&d.display().to_string()),
    );
    let wide = t.path("export-wide");
    culturetune::export::export(
        Path::new(&wide),
        &vec![0.01f32; 2 * 100],
        2,
        100,
        &card,
        "other",
        false,
    )
    .unwrap();
    t.case(
        g,
        "the wrong width (100 for a 64-wide model)",
        Want::Error,
        import(&wide),
    );
    let d = copy("export-nan");
    let st = std::fs::read(d.join("adapter_model.safetensors")).unwrap();
    let mut st2 = st.clone();
    let n = st2.len();
    st2[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(d.join("adapter_model.safetensors"), &st2).unwrap();
    t.case(
        g,
        "a NaN value",
        Want::Error,
        import(&d.display().to_string()),
    );
    let d = copy("export-huge");
    let head = r#"{"prompt_embeddings":{"dtype":"F32","shape":[1000000000000,64],"data_offsets":[0,512]}}"#;
    let mut huge = (head.len() as u64).to_le_bytes().to_vec();
    huge.extend_from_slice(head.as_bytes());
    huge.extend(vec![0u8; 512]);
    std::fs::write(d.join("adapter_model.safetensors"), &huge).unwrap();
    t.case(
        g,
        "a huge declared shape",
        Want::Error,
        import(&d.display().to_string()),
    );
    integrity_ok(&db);
    let mut a = survey(&tiny_path);
    a.extend([
        "--soft-prompt".into(),
        good.clone(),
        "--method".into(),
        "icl".into(),
    ]);
    t.case(g, "a soft prompt asked with --method icl", Want::Error, a);

    // ------------------------------------------------------------------ numeric flags
    let g = "numeric flag";
    let flag = |f: &str, v: &str| {
        let mut a = survey(&tiny_path);
        a.extend([f.to_string(), v.to_string()]);
        a
    };
    for (f, v, want) in [
        ("--threads", "0", Want::Error),
        ("--threads", "-1", Want::Usage),
        ("--threads", "100000", Want::Error),
        ("--n-ctx", "0", Want::Error),
        ("--n-ctx", "-1", Want::Usage),
        ("--n-ctx", "4000000000", Want::Error),
        ("--n-ubatch", "0", Want::Error),
        ("--n-ubatch", "100000", Want::Works),
        ("--panel", "0", Want::Error),
        ("--panel", "1000", Want::Error),
        ("--gpu-layers", "-1", Want::Usage),
        ("--gpu-layers", "100000", Want::Works),
        ("--gpu-memory", "0", Want::Works),
    ] {
        t.case(g, &format!("{f} {v}"), want, flag(f, v));
    }
    for (v, want) in [
        ("0", Want::Error),
        ("-1", Want::Usage),
        ("1000000000000", Want::Error),
    ] {
        let mut a = tune(&t.path("flags.db"), "1");
        let at = a.iter().position(|x| x == "--budget").unwrap();
        a[at + 1] = v.to_string();
        t.case(g, &format!("--budget {v}"), want, a);
    }

    // ------------------------------------------------------------------ chat
    let g = "chat";
    let chat = |msg: &str| {
        vec![
            "chat".to_string(),
            "--region".into(),
            "USA".into(),
            "--model".into(),
            tiny_path.clone(),
            "--weights".into(),
            "original".into(),
            "--db".into(),
            db.clone(),
            "--run".into(),
            "1".into(),
            "--max-tokens".into(),
            "4".into(),
            msg.to_string(),
        ]
    };
    t.case(g, "an empty message", Want::Error, chat(""));
    let long = "word ".repeat(4000);
    t.case(
        g,
        "a message longer than the context",
        Want::Error,
        chat(&long),
    );
    integrity_ok(&db);

    // ------------------------------------------------------------------ merge
    let g = "merge";
    let merged = t.path("merged.db");
    let merge = |src: &str| {
        let into = ["--into".to_string(), merged.clone()];
        [vec!["merge".to_string(), src.to_string()], into.to_vec()].concat()
    };
    let other = t.path("other.db");
    std::fs::copy(&db, &other).unwrap();
    t.case(
        g,
        "another culturetune database (works)",
        Want::Works,
        merge(&other),
    );
    t.case(g, "the same one again (works)", Want::Works, merge(&other));
    let p = t.file(
        "notes.db",
        "these are notes, not a database; long enough to be read\n",
    );
    t.case(g, "a text file", Want::Error, merge(&p));
    let p = t.path("no-such.db");
    t.case(g, "a missing file", Want::Error, merge(&p));
    t.case(g, "the target itself", Want::Error, merge(&merged));
    integrity_ok(&merged);

    // ------------------------------------------------------------------ plan and job
    let g = "plan";
    let plan_args = |region: &str| -> Vec<String> {
        let a = [
            "plan",
            "--model",
            &tiny_path,
            "--weights",
            "original",
            "--region",
            region,
        ];
        let b = [
            "--budget",
            "4",
            "--population",
            "4",
            "--calibration-regions",
            "USA,CHI",
        ];
        a.iter().chain(b.iter()).map(|s| s.to_string()).collect()
    };
    t.case(
        g,
        "an unknown region in the list",
        Want::Error,
        plan_args("USA,Atlantis"),
    );
    let mut no_seeds = plan_args("USA");
    no_seeds.extend(["--seeds".to_string(), "one".into()]);
    t.case(g, "a seed that is not a number", Want::Usage, no_seeds);
    let planned = Command::new(bin())
        .args(plan_args("USA,CHI"))
        .output()
        .unwrap();
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let text = String::from_utf8(planned.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let plan = t.file("plan.jsonl", &text);
    let job_db = t.path("job.db");
    let job = |plan: &str, index: &str| -> Vec<String> {
        ["--db", &job_db, "job", plan, "--index", index]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    t.case(
        g,
        "job: an index past the plan's end",
        Want::Error,
        job(&plan, "2"),
    );
    let edited = t.file(
        "edited.jsonl",
        text.replacen("\"max_evals\":4", "\"max_evals\":8", 1),
    );
    t.case(
        g,
        "job: a line edited after planning",
        Want::Error,
        job(&edited, "0"),
    );
    let p = t.file("notes.jsonl", "these are notes, not a plan\n");
    t.case(g, "job: a text file as the plan", Want::Error, job(&p, "0"));
    let p = t.path("no-such-plan.jsonl");
    t.case(g, "job: a missing plan", Want::Error, job(&p, "0"));

    // ------------------------------------------------------------------ hostile inputs
    hostile::cases(&mut t, &tiny, &tiny_path, &db);

    // ------------------------------------------------------------------ the table
    let table = format!(
        "{START}\n| input | case | command (`culturetune ...`) | exit | first line of the error (or of the output) |\n|---|---|---|---|---|\n{}\n{END}",
        t.rows.join("\n")
    );
    assert!(t.rows.len() >= 40, "{} rows", t.rows.len());
    let doc = std::fs::read_to_string(DOC).unwrap_or_default();
    let current = match (doc.find(START), doc.find(END)) {
        (Some(a), Some(b)) => &doc[a..b + END.len()],
        _ => "",
    };
    if std::env::var_os("CULTURETUNE_BLESS").is_some() {
        let new = if current.is_empty() {
            format!("{doc}\n{table}\n")
        } else {
            doc.replace(current, &table)
        };
        std::fs::write(DOC, new).unwrap();
    } else {
        assert_eq!(
            current, table,
            "{DOC} is out of date: rerun with CULTURETUNE_BLESS=1 and review the diff"
        );
    }
}

/// Two `resume` of one interrupted run started at the same moment: exactly one runs it (the
/// status check and the claim are one statement), the other is refused and says why, and the
/// run ends with one tuned prompt and one tuned evaluation per survey. Twice, on fresh runs.
#[test]
fn two_resumes_of_one_run_at_once_run_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tiny) = common::tiny_model();
    let model = dir.path().join("tiny.gguf");
    std::fs::write(&model, &tiny).unwrap();
    let model = model.display().to_string();
    for round in 0..2 {
        let db = dir
            .path()
            .join(format!("race-{round}.db"))
            .display()
            .to_string();
        hostile::killed_run(&model, &db, &format!("{}", 10 + round));
        let (a, b) = hostile::race_two_resumes(&db);
        let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
        assert_eq!(ok, 1, "round {round}: exactly one resume runs the run");
        let lost = if a.status.success() { &b } else { &a };
        assert_eq!(lost.status.code(), Some(1));
        let why = String::from_utf8_lossy(&lost.stderr);
        assert!(
            why.contains("is running in another process") || why.contains("is already done"),
            "{why}"
        );
        hostile::assert_resumed_once(&db);
    }
}
