//! `culturetune tune` and `culturetune resume`: the main job. Calibrate (once per model and
//! procedure), evaluate the baselines, search with DE while checkpointing every generation,
//! then evaluate the tuned prompt on the training and the held-out survey and store it.

use super::engine_args::EngineArgs;
use super::report::{print_comparison, MethodRow};
use super::Cancelled;
use crate::engine::answer::group_limit;
use crate::events::{to_line, Event};
use crate::fingerprint::sha256_file;
use crate::optim::{DeState, Strategy};
use crate::regions::RegionTable;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::store::{EvaluationRecord, MethodLabel, Store};
use crate::survey::Survey;
use crate::tuning::job::{self, JobSink, JobSpec};
use crate::tuning::{TuneConfig, TuneError, GPU_CANDIDATES_PER_DECODE};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// How results are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// One JSON object per line on stdout (see docs/events.md).
    Jsonl,
}

/// Largest `--budget`: a million candidates is days of work for the default model.
const MAX_BUDGET: usize = 1_000_000;

/// Options of `culturetune tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Region (code or name) to tune toward.
    #[arg(long, value_name = "CODE")]
    region: String,
    /// Evaluation budget: candidate soft prompts to evaluate (for the default model on 2
    /// cores about 0.45 s each with the default answer placement, 3 s with prefix).
    #[arg(long, default_value_t = 288)]
    budget: usize,
    /// Population size of Differential Evolution.
    #[arg(long, default_value_t = 12)]
    population: usize,
    /// Search dimensions d of the projection z -> A z.
    #[arg(long, default_value_t = 100)]
    dims: usize,
    /// Soft-prompt rows beyond the anchor text's own rows (the persona sentence for
    /// `--placement prefix`, the answer reminder for `answer`).
    #[arg(long, default_value_t = 0)]
    extra_rows: usize,
    /// Scale of the projection A: each entry has standard deviation a-scale x the embedding
    /// table's std / sqrt(dims). Larger values let the bounded search move further.
    #[arg(long, default_value_t = 1.0)]
    a_scale: f64,
    /// Where the soft prompt goes: `answer` (after each question, before the answer; the
    /// question prefixes are decoded once and cached, so candidates are cheap) or `prefix`
    /// (in place of the persona sentence; the method of Masoud et al. 2025).
    #[arg(long, value_enum, default_value = "answer")]
    placement: Placement,
    /// What the answer-side rows start from: `opening` (the answer opening "Answer:" itself,
    /// so that z = 0 is exactly the naive prompt) or `persona` ("Speaking as a person from
    /// China." before " Answer: ").
    #[arg(long, value_enum, default_value = "opening")]
    anchor: AnswerAnchor,
    /// Candidates evaluated together in one pass (answer placement) [default: 8 with layers on
    /// a GPU, else 1; docs/performance.md].
    #[arg(long, value_name = "N")]
    candidates_per_decode: Option<usize>,
    /// DE strategy.
    #[arg(long, value_enum, default_value = "shade")]
    strategy: Strategy,
    /// Stop after this many generations without improvement.
    #[arg(long)]
    patience: Option<usize>,
    /// Seed of every random choice (projection and optimizer); stored with the run.
    #[arg(long, default_value_t = 2013)]
    seed: u64,
    /// Respondents in the panel.
    #[arg(long, default_value_t = 1)]
    panel: usize,
    /// Ask every item in both option orders.
    #[arg(long)]
    counterbalance: bool,
    /// Calibration regions (comma-separated codes) [default: a 12-region set spanning the
    /// cultural clusters, those of them in the targets table; for a table with fewer than 3 of
    /// them, its first 12 regions with all six dimensions].
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    calibration_regions: Option<Vec<String>>,
    #[command(flatten)]
    out: OutputArgs,
}

/// Options of `culturetune resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run to continue (see `culturetune runs`).
    run: i64,
    /// Show llama.cpp's log.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Output options shared by tune and resume.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Emit machine-readable events instead of a progress bar.
    #[arg(long, value_enum)]
    events: Option<EventFormat>,
    /// Print the final comparison as JSON.
    #[arg(long)]
    json: bool,
}

/// Raised by Ctrl-C; checked between candidate evaluations.
fn cancel_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // If a handler cannot be installed (already set), Ctrl-C simply kills the process and
        // the run shows as interrupted: still resumable.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

/// Runs `tune`.
pub fn tune(args: &TuneArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let region = table.find(&args.region)?.clone();
    let given = args.engine.model_path();
    let sha = sha256_file(&given).map_err(|e| {
        anyhow!(crate::engine::EngineError::Io {
            path: given.display().to_string(),
            source: e
        })
    })?;
    let mut config = TuneConfig::new(&region.code, &given.display().to_string(), &sha, args.seed);
    config.weights = args.engine.weights;
    config.settings = args.engine.settings();
    config.panel = args.panel;
    config.counterbalance = args.counterbalance;
    config.extra_rows = args.extra_rows;
    if !(args.a_scale.is_finite() && args.a_scale > 0.0) {
        bail!("--a-scale must be a positive number (got {})", args.a_scale);
    }
    config.a_scale = args.a_scale;
    config.placement = args.placement;
    config.anchor = args.anchor;
    config.gpu_layers = args.engine.resolve_layers(&given)?;
    let n_items = Survey::from_id_or_path(&config.survey)
        .context("loading the training survey")?
        .items
        .len();
    config.candidates_per_decode = args
        .candidates_per_decode
        .unwrap_or(if config.gpu_layers > 0 {
            let limit = group_limit(n_items, args.panel, args.counterbalance);
            GPU_CANDIDATES_PER_DECODE.min(limit)
        } else {
            1
        });
    config.d = args.dims;
    config.de.dim = args.dims;
    config.de.pop_size = args.population;
    config.de.strategy = args.strategy;
    if args.budget < args.population || args.budget > MAX_BUDGET {
        bail!(
            "--budget must be {}..={MAX_BUDGET} candidates (at least one generation of --population {}), got {}",
            args.population,
            args.population,
            args.budget
        );
    }
    config.de.max_evals = Some(args.budget);
    config.de.patience = args.patience;
    config.calibration_regions =
        crate::tuning::resolve_calibration_regions(table, args.calibration_regions.as_deref())?;
    DeState::new(config.de.clone()).map_err(|e| anyhow!("invalid optimizer settings: {e}"))?;
    if args.panel == 0 || args.panel > crate::prompt::MAX_PANEL {
        bail!("--panel must be 1..={}", crate::prompt::MAX_PANEL);
    }
    drive(
        JobSpec::New(Box::new(config)),
        table,
        db,
        args.engine.verbose,
        &args.out,
        out,
    )
}

/// Runs `resume`.
pub fn resume(
    args: &ResumeArgs,
    table: &RegionTable,
    db: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    drive(
        JobSpec::Resume(args.run),
        table,
        db,
        args.verbose,
        &args.out,
        out,
    )
}

/// Runs the job with the sink the output options ask for, then prints the final table.
fn drive(
    spec: JobSpec,
    table: &RegionTable,
    db: &Path,
    verbose: bool,
    opts: &OutputArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let mut store = Store::open(db)?;
    crate::engine::init(verbose);
    let cancel = cancel_flag();
    let result = if opts.events.is_some() {
        let mut sink = JsonLines { out, failed: None };
        let r = job::run(spec, &mut store, table, &cancel, &mut sink);
        // A closed stdout stopped the job (resumable); say why, not "cancelled".
        if let Some(e) = sink.failed {
            return Err(e.into());
        }
        r
    } else {
        job::run(spec, &mut store, table, &cancel, &mut Progress::default())
    };
    let o = match result {
        Ok(o) => o,
        Err(TuneError::Cancelled) => return Err(Cancelled.into()),
        Err(e) => return Err(e.into()),
    };
    if opts.events.is_none() {
        let [train, heldout] = &o.surveys;
        let rows = comparison_rows(&o.evaluations, train, heldout);
        print_comparison(
            out,
            &o.region,
            &rows,
            &o.train_constants,
            opts.json,
            Some((o.run, o.evals, o.elapsed_s)),
        )?;
    }
    Ok(())
}

/// `--events jsonl`: every event as one line on stdout; notes on stderr.
struct JsonLines<'a> {
    out: &'a mut dyn Write,
    /// Why writing failed (the job was stopped then).
    failed: Option<std::io::Error>,
}

impl JobSink for JsonLines<'_> {
    fn event(&mut self, e: &Event) -> ControlFlow<()> {
        let written = writeln!(self.out, "{}", to_line(e)).and_then(|()| self.out.flush());
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                self.failed.get_or_insert(err);
                ControlFlow::Break(())
            }
        }
    }

    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

/// The default output: a progress bar over the search's evaluations; notes above it.
#[derive(Default)]
struct Progress {
    bar: Option<ProgressBar>,
}

impl JobSink for Progress {
    fn event(&mut self, e: &Event) -> ControlFlow<()> {
        match e {
            Event::Started { max_evals, .. } => {
                let bar = ProgressBar::new(max_evals.unwrap_or(0) as u64);
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} gen {msg} [{bar:30}] {pos}/{len} evals, ETA {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                self.bar = Some(bar);
            }
            Event::Generation {
                generation,
                evals,
                best_loss,
                mean_loss,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*evals as u64);
                    bar.set_message(format!(
                        "{generation} best {best_loss:.1} mean {mean_loss:.1}"
                    ));
                }
            }
            Event::Finished { .. } | Event::Error { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn note(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

/// The rows of the final table from a run's stored evaluations (latest of each kind).
pub fn comparison_rows(
    evals: &[EvaluationRecord],
    train: &Survey,
    heldout: &Survey,
) -> Vec<MethodRow> {
    let mut rows = Vec::new();
    for (survey, label) in [(train, "train"), (heldout, "held-out")] {
        for m in MethodLabel::ALL {
            if let Some(e) = evals
                .iter()
                .rev()
                .find(|e| e.method == m && e.survey == survey.id)
            {
                rows.push(MethodRow {
                    label: format!("{label} {m}"),
                    indices: e.indices,
                    loss: e.loss,
                    loss_mean: e.loss_mean,
                    dims_used: e.dims_used,
                    digit_mass: e.digit_mass,
                });
            }
        }
    }
    rows
}
