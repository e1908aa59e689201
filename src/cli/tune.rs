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
use crate::prompt::Method;
use crate::regions::{Region, RegionTable};
use crate::scoring::{gap_closed, Constants};
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::store::{EvaluationRecord, RunStatus, Store};
use crate::survey::Survey;
use crate::tuning::{
    constants_for, MethodResult, TuneConfig, TuneError, Tuner, GPU_CANDIDATES_PER_DECODE,
};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::io::Write;
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
    /// cultural clusters].
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

struct Emitter<'a> {
    jsonl: bool,
    out: &'a mut dyn Write,
}

impl Emitter<'_> {
    fn emit(&mut self, e: Event) -> Result<()> {
        if self.jsonl {
            writeln!(self.out, "{}", to_line(&e))?;
            self.out.flush()?;
        }
        Ok(())
    }
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
    if let Some(r) = &args.calibration_regions {
        config.calibration_regions = r
            .iter()
            .map(|c| table.find(c).map(|r| r.code.clone()))
            .collect::<Result<_, _>>()?;
    }
    DeState::new(config.de.clone()).map_err(|e| anyhow!("invalid optimizer settings: {e}"))?;
    if args.panel == 0 || args.panel > crate::prompt::MAX_PANEL {
        bail!("--panel must be 1..={}", crate::prompt::MAX_PANEL);
    }
    let store = Store::open(db)?;
    drive(
        config,
        None,
        region,
        table,
        store,
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
    let store = Store::open(db)?;
    let run = store.run(args.run)?;
    match run.status {
        RunStatus::Done => bail!(
            "run {} is already done; see `culturetune show {}`",
            run.id,
            run.id
        ),
        RunStatus::Running => bail!("run {} is running in another process", run.id),
        _ => {}
    }
    let config: TuneConfig = serde_json::from_value(run.config.clone())
        .context("reading the run's stored configuration")?;
    let region = table.find(&config.region)?.clone();
    drive(
        config,
        Some(run.id),
        region,
        table,
        store,
        args.verbose,
        &args.out,
        out,
    )
}

#[allow(clippy::too_many_arguments)]
fn drive(
    config: TuneConfig,
    existing: Option<i64>,
    region: Region,
    table: &RegionTable,
    mut store: Store,
    verbose: bool,
    opts: &OutputArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let mut em = Emitter {
        jsonl: opts.events.is_some(),
        out,
    };
    let mut run_id = existing;
    let result = drive_inner(
        &config,
        &mut run_id,
        &region,
        table,
        &mut store,
        verbose,
        &mut em,
        opts.json,
    );
    match &result {
        Ok(()) => {}
        Err(e) if e.is::<Cancelled>() => {}
        Err(e) => {
            if let Some(id) = run_id {
                let _ = store.set_status(id, RunStatus::Failed, Some(&super::error_text(e)));
            }
            let _ = em.emit(Event::Error {
                run: run_id,
                code: super::error_code(e).into(),
                message: super::error_text(e),
            });
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn drive_inner(
    config: &TuneConfig,
    run_id: &mut Option<i64>,
    region: &Region,
    table: &RegionTable,
    store: &mut Store,
    verbose: bool,
    em: &mut Emitter<'_>,
    json_out: bool,
) -> Result<()> {
    let train = Survey::from_id_or_path(&config.survey).context("loading the training survey")?;
    let heldout =
        Survey::from_id_or_path(&config.heldout_survey).context("loading the held-out survey")?;
    let engine = EngineArgs::for_config(config, verbose);
    let model = engine.load()?;
    let given = Path::new(&config.model_path);
    // A new run hashed the file moments ago; a resumed one must still be on the same file.
    if run_id.is_some()
        && sha256_file(given).with_context(|| format!("reading {}", given.display()))?
            != config.model_sha256
    {
        bail!(
            "{} no longer has SHA-256 {} (the file changed since the run started)",
            config.model_path,
            config.model_sha256
        );
    }
    store.upsert_model(&super::engine_args::model_record(
        &model,
        &config.model_sha256,
        given,
    ))?;

    let constants_for = |survey: &Survey,
                         em: &mut Emitter<'_>,
                         run: Option<i64>|
     -> Result<Constants> {
        let total = config.calibration_regions.len();
        let mut announced = false;
        Ok(constants_for(
            store,
            &model,
            survey,
            table,
            config,
            |done, _| {
                if !announced {
                    eprintln!(
                        "calibrating constants on {} ({total} regions, once per model and procedure)",
                        survey.id
                    );
                    announced = true;
                }
                // A closed stdout must not stop the calibration; it is reported on the next emit.
                let _ = em.emit(Event::Progress {
                    run,
                    stage: format!("calibrating {}", survey.id),
                    done,
                    total,
                });
            },
        )?)
    };
    let c_train = constants_for(&train, em, *run_id)?;
    let c_heldout = constants_for(&heldout, em, *run_id)?;

    let resumed = run_id.is_some();
    let id = match *run_id {
        Some(id) => {
            store.claim_run(id)?;
            id
        }
        None => store.create_run(
            &region.code,
            &train.id,
            "naive",
            &config.model_sha256,
            &serde_json::to_value(config)?,
            config.de.seed,
        )?,
    };
    *run_id = Some(id);
    em.emit(Event::Started {
        run: id,
        region: region.code.clone(),
        survey: train.id.clone(),
        heldout_survey: heldout.id.clone(),
        max_evals: config.de.max_evals,
        resumed,
    })?;

    let mut tuner = Tuner::new(
        &model,
        config,
        train.clone(),
        region.clone(),
        c_train.clone(),
    )?;
    let record = |store: &Store,
                  em: &mut Emitter<'_>,
                  method: &str,
                  survey: &Survey,
                  constants: &Constants,
                  r: &MethodResult|
     -> Result<()> {
        let gap_closed = if method == "tuned" {
            store
                .evaluations(Some(id))?
                .into_iter()
                .rev()
                .find(|e| e.method == "naive" && e.survey == survey.id)
                .map(|n| gap_closed(&region.scores, &n.indices, &r.indices))
        } else {
            None
        };
        store.save_evaluation(&r.record(
            Some(id),
            &config.model_sha256,
            method,
            &survey.id,
            &region.code,
            constants,
        ))?;
        em.emit(Event::Evaluation {
            run: id,
            method: method.into(),
            survey: survey.id.clone(),
            indices: r.indices,
            loss: r.loss.l1,
            loss_mean: r.loss.mean,
            dims_used: r.loss.dims_used,
            digit_mass: r.digit_mass,
            gap_closed,
        })
    };

    // Baselines, once per run.
    let done_before: Vec<(String, String)> = store
        .evaluations(Some(id))?
        .into_iter()
        .map(|e| (e.method, e.survey))
        .collect();
    for (survey, constants) in [(&train, &c_train), (&heldout, &c_heldout)] {
        for method in [Method::Naive, Method::Icl] {
            let name = if method == Method::Naive {
                "naive"
            } else {
                "icl"
            };
            if !done_before.contains(&(name.to_string(), survey.id.clone())) {
                let r = tuner.evaluate_on(survey, constants, method, None)?;
                record(store, em, name, survey, constants, &r)?;
            }
        }
    }

    // The search, from the last checkpoint if there is one.
    let checkpoints = store.checkpoints(id)?;
    let (mut state, elapsed_before) = match checkpoints.last() {
        Some(c) => (
            serde_json::from_str::<DeState>(&c.state).context("reading the last checkpoint")?,
            c.elapsed_s,
        ),
        None => (
            DeState::new(config.de.clone()).map_err(|e| anyhow!(e))?,
            0.0,
        ),
    };
    let bar = if em.jsonl {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(config.de.max_evals.unwrap_or(0) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} gen {msg} [{bar:30}] {pos}/{len} evals, ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_position(state.evals as u64);
    let cancel = cancel_flag();
    let max_evals = config.de.max_evals;
    let mut emit_failed = None;
    let searched = tuner.search(
        &mut state,
        store,
        id,
        &cancel,
        elapsed_before,
        |g, scores, elapsed| {
            bar.set_position(g.evals as u64);
            bar.set_message(format!(
                "{} best {:.1} mean {:.1}",
                g.index, g.best_loss, g.mean_loss
            ));
            let eta = max_evals
                .map(|m| elapsed / g.evals.max(1) as f64 * m.saturating_sub(g.evals) as f64);
            let e = Event::Generation {
                run: id,
                generation: g.index,
                evals: g.evals,
                max_evals,
                best_loss: g.best_loss,
                mean_loss: g.mean_loss,
                best_scores: *scores,
                elapsed_s: elapsed,
                eta_s: eta,
            };
            if let Err(err) = em.emit(e) {
                emit_failed.get_or_insert(err);
            }
        },
    );
    bar.finish_and_clear();
    if let Some(err) = emit_failed {
        return Err(err);
    }
    let last = store.checkpoints(id)?.last().cloned();
    let elapsed = last.as_ref().map_or(0.0, |c| c.elapsed_s);
    let outcome = match searched {
        Ok(o) => o,
        Err(TuneError::Cancelled) => {
            store.set_status(id, RunStatus::Cancelled, None)?;
            em.emit(Event::Finished {
                run: id,
                status: "cancelled".into(),
                best_loss: last.as_ref().map(|c| c.best_loss),
                evals: last.as_ref().map_or(0, |c| c.evals),
                elapsed_s: elapsed,
            })?;
            eprintln!(
                "run {id} cancelled after {} evaluations; continue with `culturetune resume {id}`",
                last.as_ref().map_or(0, |c| c.evals)
            );
            return Err(Cancelled.into());
        }
        Err(e) => return Err(e.into()),
    };

    // The tuned prompt: evaluate, store, report.
    let rows = tuner.rows(&outcome.best);
    let tuned_train = tuner.evaluate_on(&train, &c_train, Method::Naive, Some(&rows))?;
    let tuned_heldout = tuner.evaluate_on(&heldout, &c_heldout, Method::Naive, Some(&rows))?;
    record(store, em, "tuned", &train, &c_train, &tuned_train)?;
    record(store, em, "tuned", &heldout, &c_heldout, &tuned_heldout)?;
    let evals = store.evaluations(Some(id))?;
    let loss_of = |m: &str, s: &str| {
        evals
            .iter()
            .rev()
            .find(|e| e.method == m && e.survey == s)
            .map(|e| e.loss)
    };
    let card = json!({
        "model_sha256": config.model_sha256, "model_name": model.info().name, "model_file": config.model_path,
        "weights": config.weights, "architecture": model.info().architecture,
        "insertion": tuner.insertion(),
        "region": region.code, "region_name": region.name, "survey": train.id, "heldout_survey": heldout.id,
        "constants": {"train": c_train, "heldout": c_heldout},
        "losses": {
            "train": {"naive": loss_of("naive", &train.id), "icl": loss_of("icl", &train.id), "tuned": tuned_train.loss.l1},
            "heldout": {"naive": loss_of("naive", &heldout.id), "icl": loss_of("icl", &heldout.id), "tuned": tuned_heldout.loss.l1},
        },
        "optimizer": config.de, "parametrization": tuner.space().param, "seed": config.de.seed,
        "settings": config.settings, "panel": config.panel, "counterbalance": config.counterbalance,
        "run": id, "evals": outcome.evals, "generations": outcome.generations,
    });
    store.save_prompt(
        Some(id),
        &config.model_sha256,
        tuner.space().param.k,
        model.info().n_embd,
        &rows,
        &card,
    )?;
    store.set_status(id, RunStatus::Done, None)?;
    em.emit(Event::Finished {
        run: id,
        status: "done".into(),
        best_loss: Some(outcome.best_loss),
        evals: outcome.evals,
        elapsed_s: elapsed,
    })?;

    if !em.jsonl {
        let rows = comparison_rows(&evals, &train, &heldout);
        print_comparison(
            em.out,
            region,
            &rows,
            &c_train,
            json_out,
            Some((id, outcome.evals, elapsed)),
        )?;
    }
    Ok(())
}

/// The rows of the final table from a run's stored evaluations (latest of each kind).
pub fn comparison_rows(
    evals: &[EvaluationRecord],
    train: &Survey,
    heldout: &Survey,
) -> Vec<MethodRow> {
    let mut rows = Vec::new();
    for (survey, label) in [(train, "train"), (heldout, "held-out")] {
        for m in ["naive", "icl", "tuned"] {
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
