//! Differential Evolution: DE/rand/1/bin, DE/best/1/bin and SHADE (success-history adaptive
//! DE/current-to-pbest/1/bin with an external archive; Tanabe & Fukunaga 2013).

use super::cmaes::CmaState;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Cauchy, Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;

/// Mutation strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Classic DE/rand/1/bin: v = x_r1 + F (x_r2 - x_r3).
    Rand1Bin,
    /// DE/best/1/bin: v = x_best + F (x_r1 - x_r2).
    Best1Bin,
    /// SHADE: v = x_i + F (x_pbest - x_i) + F (x_r1 - x_r2~archive), F and CR adapted from
    /// a success history.
    Shade,
    /// CMA-ES (not DE: the covariance matrix adaptation evolution strategy, `optim::cmaes`):
    /// after the same initial population, each generation is drawn from a normal
    /// distribution around the weighted best of the last, whose shape and step size adapt.
    /// The population is lambda; each slot keeps the better of its point and the new one.
    Cmaes,
}

/// Settings of a search. Stored with a run so it can be repeated exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeOptions {
    /// Number of dimensions.
    pub dim: usize,
    /// Population size (at least 4).
    pub pop_size: usize,
    /// Lower and upper bound of every coordinate.
    pub bounds: (f64, f64),
    /// Strategy.
    pub strategy: Strategy,
    /// Mutation factor F (rand/1 and best/1; SHADE adapts its own).
    pub f: f64,
    /// Crossover rate CR (rand/1 and best/1; SHADE adapts its own).
    pub cr: f64,
    /// Stop after this many generations (the initial population is generation 0).
    pub max_generations: Option<usize>,
    /// Stop once this many objective evaluations have been spent.
    pub max_evals: Option<usize>,
    /// Stop after this many generations without a strict improvement of the best.
    pub patience: Option<usize>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Put the origin (z = 0) into the initial population.
    pub include_origin: bool,
}

impl Default for DeOptions {
    fn default() -> Self {
        DeOptions {
            dim: 10,
            pop_size: 20,
            bounds: (-1.0, 1.0),
            strategy: Strategy::Shade,
            f: 0.5,
            cr: 0.9,
            max_generations: None,
            max_evals: Some(1000),
            patience: None,
            seed: 0,
            include_origin: false,
        }
    }
}

/// Why a search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The generation limit was reached.
    Generations,
    /// The evaluation budget was spent.
    Budget,
    /// No improvement for `patience` generations.
    NoImprovement,
    /// The progress sink asked to stop.
    Stopped,
}

/// What the progress sink sees after each generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Generation number (0 = the initial population).
    pub index: usize,
    /// Evaluations spent so far.
    pub evals: usize,
    /// Best loss so far.
    pub best_loss: f64,
    /// Mean loss of the population.
    pub mean_loss: f64,
    /// The best point so far.
    pub best: Vec<f64>,
}

/// The complete state of a search between generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeState {
    /// The settings.
    pub options: DeOptions,
    /// Generations completed (0 before the initial population is evaluated).
    pub generation: usize,
    /// Evaluations spent.
    pub evals: usize,
    /// The population.
    pub pop: Vec<Vec<f64>>,
    /// Loss of each member (empty before the initial evaluation).
    pub fitness: Vec<f64>,
    /// SHADE's external archive of replaced parents.
    pub archive: Vec<Vec<f64>>,
    /// SHADE's memory of successful F values.
    pub memory_f: Vec<f64>,
    /// SHADE's memory of successful CR values.
    pub memory_cr: Vec<f64>,
    /// Next memory slot to update.
    pub memory_pos: usize,
    /// Generations since the best last improved.
    pub stall: usize,
    /// The random generator, mid-stream.
    pub rng: ChaCha8Rng,
    /// Why the search stopped, once it has.
    pub stopped: Option<StopReason>,
    /// CMA-ES's distribution (strategy `cmaes`, from the first generation after the initial
    /// population on; absent otherwise and then not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cma: Option<CmaState>,
    /// The batch asked and not yet told (never stored: a checkpoint is taken between
    /// generations, and an interrupted generation is asked again from the checkpoint).
    #[serde(skip)]
    pending: Option<Pending>,
}

/// What `tell` needs of the batch `ask` drew.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    /// The initial population's first `n` members.
    Initial(usize),
    /// DE trials with their F and CR, and the best loss before them.
    Trials {
        trials: Vec<Vec<f64>>,
        params: Vec<(f64, f64)>,
        prev_best: f64,
    },
    /// CMA-ES points from this distribution, and the best loss before them.
    Cma {
        points: Vec<Vec<f64>>,
        cma: CmaState,
        prev_best: f64,
    },
}

/// The result of a finished (or stopped) search.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The best point.
    pub best: Vec<f64>,
    /// Its loss.
    pub best_loss: f64,
    /// Evaluations spent.
    pub evals: usize,
    /// Generations completed.
    pub generations: usize,
    /// Why it stopped.
    pub reason: StopReason,
}

/// Most dimensions a search may have.
pub const MAX_DIM: usize = 10_000;
/// Largest population a search may have.
pub const MAX_POP: usize = 10_000;

impl DeOptions {
    /// Checks the settings: dimensions 1..=[`MAX_DIM`], population 4..=[`MAX_POP`], finite
    /// bounds with lower < upper, F and CR finite, and some stopping rule.
    pub fn check(&self) -> Result<(), String> {
        if self.dim == 0 || self.dim > MAX_DIM || self.pop_size < 4 || self.pop_size > MAX_POP {
            return Err(format!(
                "need dim 1..={MAX_DIM} and a population of 4..={MAX_POP} (got dim {}, population {})",
                self.dim, self.pop_size
            ));
        }
        let (lo, hi) = self.bounds;
        if lo >= hi || !lo.is_finite() || !hi.is_finite() {
            return Err(format!(
                "bounds must be finite with lower < upper, got {:?}",
                self.bounds
            ));
        }
        if !(self.f.is_finite() && self.cr.is_finite()) {
            return Err(format!(
                "F and CR must be finite (got {}, {})",
                self.f, self.cr
            ));
        }
        if self.max_generations.is_none() && self.max_evals.is_none() && self.patience.is_none() {
            return Err("set a generation limit, an evaluation budget or a patience".into());
        }
        Ok(())
    }
}

impl DeState {
    /// Checks that a state read back (a stored checkpoint) is one a search can continue from:
    /// the settings valid, the population `pop_size` points of `dim` finite coordinates,
    /// the fitness empty or one value per member (none NaN), SHADE's memories non-empty,
    /// equally long and finite, the archive's points `dim` long. Says what is inconsistent.
    pub fn validate(&self) -> Result<(), String> {
        let o = &self.options;
        o.check()?;
        let (np, dim) = (o.pop_size, o.dim);
        if self.pop.len() != np {
            return Err(format!(
                "the population has {} members; the settings say {np}",
                self.pop.len()
            ));
        }
        let bad_point = |p: &Vec<f64>| p.len() != dim || p.iter().any(|v| !v.is_finite());
        if let Some(i) = self.pop.iter().position(bad_point) {
            return Err(format!("member {i} is not {dim} finite coordinates"));
        }
        if !self.fitness.is_empty() && self.fitness.len() != np {
            return Err(format!(
                "{} fitness values for a population of {np}",
                self.fitness.len()
            ));
        }
        if self.fitness.iter().any(|f| f.is_nan()) {
            return Err("a fitness value is NaN".into());
        }
        if self.fitness.is_empty() && self.generation > 0 {
            return Err(format!(
                "generation {} but the population was never evaluated",
                self.generation
            ));
        }
        let m = self.memory_f.len();
        if m == 0 || self.memory_cr.len() != m || self.memory_pos >= m {
            return Err(format!(
                "SHADE's memory is inconsistent ({} F values, {} CR values, position {})",
                m,
                self.memory_cr.len(),
                self.memory_pos
            ));
        }
        // F values are in (0, 1] and CR values in [0, 1] by construction; a far-off F would
        // make the Cauchy draw of a positive F loop for ever.
        if self.memory_f.iter().any(|f| !(*f > 0.0 && *f <= 1.0))
            || self.memory_cr.iter().any(|c| !(0.0..=1.0).contains(c))
        {
            return Err("SHADE's memory holds a value outside (0, 1] (F) or [0, 1] (CR)".into());
        }
        if self.archive.iter().any(bad_point) {
            return Err(format!("an archived point is not {dim} finite coordinates"));
        }
        if let Some(c) = &self.cma {
            c.validate(dim, np)?;
        }
        Ok(())
    }

    /// A fresh search: the initial population is drawn but not yet evaluated.
    pub fn new(options: DeOptions) -> Result<DeState, String> {
        options.check()?;
        let (lo, hi) = options.bounds;
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let mut pop: Vec<Vec<f64>> = (0..options.pop_size)
            .map(|_| (0..options.dim).map(|_| rng.random_range(lo..hi)).collect())
            .collect();
        if options.include_origin {
            pop[0] = vec![0.0f64.clamp(lo, hi); options.dim];
        }
        let h = options.pop_size;
        Ok(DeState {
            generation: 0,
            evals: 0,
            pop,
            fitness: vec![],
            archive: vec![],
            memory_f: vec![0.5; h],
            memory_cr: vec![0.5; h],
            memory_pos: 0,
            stall: 0,
            rng,
            stopped: None,
            cma: None,
            pending: None,
            options,
        })
    }

    /// Index of the best member.
    pub fn best_index(&self) -> usize {
        let mut b = 0;
        for (i, f) in self.fitness.iter().enumerate() {
            if *f < self.fitness[b] {
                b = i;
            }
        }
        b
    }

    fn report(&self) -> Generation {
        let b = self.best_index();
        Generation {
            index: self.generation,
            evals: self.evals,
            best_loss: self.fitness[b],
            mean_loss: self.fitness.iter().sum::<f64>() / self.fitness.len() as f64,
            best: self.pop[b].clone(),
        }
    }

    fn remaining(&self) -> usize {
        self.options
            .max_evals
            .map_or(usize::MAX, |m| m.saturating_sub(self.evals))
    }

    fn limit_reached(&self) -> Option<StopReason> {
        if self.remaining() == 0 {
            return Some(StopReason::Budget);
        }
        if self
            .options
            .max_generations
            .is_some_and(|g| self.generation >= g)
        {
            return Some(StopReason::Generations);
        }
        if self.options.patience.is_some_and(|p| self.stall >= p) {
            return Some(StopReason::NoImprovement);
        }
        None
    }

    /// Runs until a limit is reached or `sink` breaks: [`super::drive`] on this state.
    /// `objective` gets a batch of points and returns their losses (same order, same length).
    /// The state stays consistent after every generation, so it can be serialized from inside
    /// the sink and resumed later.
    pub fn run<E>(
        &mut self,
        objective: impl FnMut(&[Vec<f64>]) -> Result<Vec<f64>, E>,
        sink: impl FnMut(&Generation, &DeState) -> ControlFlow<()>,
    ) -> Result<Outcome, E> {
        super::drive(self, objective, sink)
    }

    /// The next batch: the initial population (as much of it as the budget allows), then one
    /// generation of DE trials or CMA-ES points; empty once a limit is reached or the search
    /// was stopped. Asking again before telling asks for the same batch.
    pub(super) fn next_batch(&mut self) -> Vec<Vec<f64>> {
        if let Some(p) = &self.pending {
            return match p {
                Pending::Initial(n) => self.pop[..*n].to_vec(),
                Pending::Trials { trials, .. } => trials.clone(),
                Pending::Cma { points, .. } => points.clone(),
            };
        }
        if self.fitness.is_empty() {
            let n = self.pop.len().min(self.remaining());
            if n == 0 {
                // No budget at all: nothing is evaluated, nothing is best.
                self.fitness = vec![f64::INFINITY; self.pop.len()];
                self.stopped = Some(StopReason::Budget);
                return Vec::new();
            }
            self.pending = Some(Pending::Initial(n));
            return self.pop[..n].to_vec();
        }
        if self.stopped.is_some() {
            return Vec::new();
        }
        if let Some(r) = self.limit_reached() {
            self.stopped = Some(r);
            return Vec::new();
        }
        let pending = if self.options.strategy == Strategy::Cmaes {
            self.cma_ask()
        } else {
            self.de_ask()
        };
        let batch = match &pending {
            Pending::Trials { trials, .. } => trials.clone(),
            Pending::Cma { points, .. } => points.clone(),
            Pending::Initial(_) => unreachable!("asked above"),
        };
        self.pending = Some(pending);
        batch
    }

    /// Takes the losses of the batch last asked (same order); the generation's report.
    pub(super) fn take_losses(&mut self, losses: Vec<f64>) -> Result<Generation, String> {
        let pending = self.pending.take().ok_or("tell without a batch asked")?;
        let n = match &pending {
            Pending::Initial(n) => *n,
            Pending::Trials { trials, .. } => trials.len(),
            Pending::Cma { points, .. } => points.len(),
        };
        if losses.len() != n {
            self.pending = Some(pending);
            return Err(format!("{} losses told for a batch of {n}", losses.len()));
        }
        self.evals += n;
        match pending {
            Pending::Initial(_) => {
                let mut fit = losses;
                // A budget smaller than the population leaves the rest unevaluated: never best.
                fit.resize(self.pop.len(), f64::INFINITY);
                self.fitness = fit;
            }
            Pending::Trials {
                trials,
                params,
                prev_best,
            } => {
                self.select(trials, losses, &params);
                self.end_generation(prev_best);
            }
            Pending::Cma {
                points,
                mut cma,
                prev_best,
            } => {
                cma.tell(&points, &losses);
                self.cma = Some(cma);
                for (i, (x, loss)) in points.into_iter().zip(losses).enumerate() {
                    let loss = if loss.is_nan() { f64::INFINITY } else { loss };
                    if loss <= self.fitness[i] {
                        self.pop[i] = x;
                        self.fitness[i] = loss;
                    }
                }
                self.end_generation(prev_best);
            }
        }
        Ok(self.report())
    }

    /// The outcome so far: the best member and why the search stopped.
    pub(super) fn outcome_now(&self) -> Outcome {
        let b = self.best_index();
        Outcome {
            best: self.pop[b].clone(),
            best_loss: self.fitness.get(b).copied().unwrap_or(f64::INFINITY),
            evals: self.evals,
            generations: self.generation,
            reason: self.stopped.unwrap_or(StopReason::Stopped),
        }
    }

    /// One generation of DE trials: a trial per member (fewer when the budget ends first),
    /// each to be kept where it is no worse than its parent.
    fn de_ask(&mut self) -> Pending {
        let np = self.pop.len();
        let best = self.best_index();
        let n_trials = np.min(self.remaining());
        let mut trials = Vec::with_capacity(n_trials);
        let mut params = Vec::with_capacity(n_trials);
        // Sorted order for p-best selection.
        let mut order: Vec<usize> = (0..np).collect();
        order.sort_by(|&a, &b| self.fitness[a].total_cmp(&self.fitness[b]));
        for i in 0..n_trials {
            let (f, cr) = self.trial_params();
            let mutant = self.mutant(i, f, best, &order);
            trials.push(self.crossover(i, &mutant, cr));
            params.push((f, cr));
        }
        Pending::Trials {
            trials,
            params,
            prev_best: self.fitness[best],
        }
    }

    /// One CMA-ES generation: lambda points drawn (fewer when the budget ends first), to be
    /// told to the distribution; slot i of the population keeps the better of its point and
    /// the generation's i-th, so the best member is the best point seen. The distribution
    /// starts at the initial population's best with step size 0.3 of the box's half-width.
    fn cma_ask(&mut self) -> Pending {
        let (lo, hi) = self.options.bounds;
        let np = self.pop.len();
        let best = self.best_index();
        let cma = match self.cma.take() {
            Some(c) => c,
            None => CmaState::new(self.pop[best].clone(), 0.3 * (hi - lo) / 2.0, np),
        };
        let n_trials = np.min(self.remaining());
        let points = cma.ask(n_trials, (lo, hi), &mut self.rng);
        Pending::Cma {
            points,
            cma,
            prev_best: self.fitness[best],
        }
    }

    /// Draws an index in 0..n different from all of `not`.
    fn pick(rng: &mut ChaCha8Rng, n: usize, not: &[usize]) -> usize {
        loop {
            let r = rng.random_range(0..n);
            if !not.contains(&r) {
                return r;
            }
        }
    }

    /// Counts a finished generation and its stall (no strict improvement of `prev_best`).
    fn end_generation(&mut self, prev_best: f64) {
        self.generation += 1;
        let new_best = self.fitness[self.best_index()];
        self.stall = if new_best < prev_best {
            0
        } else {
            self.stall + 1
        };
    }

    /// A trial's F and CR: drawn from SHADE's memory, else the options' fixed values.
    fn trial_params(&mut self) -> (f64, f64) {
        if self.options.strategy != Strategy::Shade {
            return (self.options.f, self.options.cr);
        }
        let rng = &mut self.rng;
        let r = rng.random_range(0..self.memory_f.len());
        let cr = Normal::new(self.memory_cr[r], 0.1)
            .expect("valid sd")
            .sample(rng)
            .clamp(0.0, 1.0);
        let cauchy = Cauchy::new(self.memory_f[r], 0.1).expect("valid scale");
        let mut f = cauchy.sample(rng);
        while f <= 0.0 {
            f = cauchy.sample(rng);
        }
        (f.min(1.0), cr)
    }

    /// Member `i`'s mutant vector under the strategy (`best`: the best member's index;
    /// `order`: the members from best to worst).
    fn mutant(&mut self, i: usize, f: f64, best: usize, order: &[usize]) -> Vec<f64> {
        let (np, dim) = (self.pop.len(), self.options.dim);
        let rng = &mut self.rng;
        let pop = &self.pop;
        let x = &pop[i];
        match self.options.strategy {
            Strategy::Rand1Bin => {
                let r1 = Self::pick(rng, np, &[i]);
                let r2 = Self::pick(rng, np, &[i, r1]);
                let r3 = Self::pick(rng, np, &[i, r1, r2]);
                (0..dim)
                    .map(|j| pop[r1][j] + f * (pop[r2][j] - pop[r3][j]))
                    .collect()
            }
            Strategy::Best1Bin => {
                let r1 = Self::pick(rng, np, &[i, best]);
                let r2 = Self::pick(rng, np, &[i, best, r1]);
                (0..dim)
                    .map(|j| pop[best][j] + f * (pop[r1][j] - pop[r2][j]))
                    .collect()
            }
            // CMA-ES draws its own points (`cma_step`); SHADE's rule never sees it.
            Strategy::Shade | Strategy::Cmaes => {
                let p_min = 2.0 / np as f64;
                let p = rng.random_range(p_min..=0.2f64.max(p_min));
                let top = ((p * np as f64).round() as usize).clamp(2, np);
                let pbest = order[rng.random_range(0..top)];
                let r1 = Self::pick(rng, np, &[i]);
                let union = np + self.archive.len();
                let r2 = Self::pick(rng, union, &[i, r1]);
                let x2 = if r2 < np {
                    &pop[r2]
                } else {
                    &self.archive[r2 - np]
                };
                (0..dim)
                    .map(|j| x[j] + f * (pop[pbest][j] - x[j]) + f * (pop[r1][j] - x2[j]))
                    .collect()
            }
        }
    }

    /// Binomial crossover of member `i` with its mutant; a coordinate out of bounds goes
    /// halfway between the parent and the violated bound.
    fn crossover(&mut self, i: usize, mutant: &[f64], cr: f64) -> Vec<f64> {
        let dim = self.options.dim;
        let (lo, hi) = self.options.bounds;
        let rng = &mut self.rng;
        let x = &self.pop[i];
        let j_rand = rng.random_range(0..dim);
        (0..dim)
            .map(|j| {
                let v = if j == j_rand || rng.random::<f64>() < cr {
                    mutant[j]
                } else {
                    x[j]
                };
                if v < lo {
                    (x[j] + lo) / 2.0
                } else if v > hi {
                    (x[j] + hi) / 2.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// Keeps each trial no worse than its parent (NaN counts as infinitely bad); SHADE also
    /// archives the replaced parents and moves its memory toward the successful F and CR.
    fn select(&mut self, trials: Vec<Vec<f64>>, losses: Vec<f64>, params: &[(f64, f64)]) {
        let np = self.pop.len();
        let (mut s_f, mut s_cr, mut s_w) = (vec![], vec![], vec![]);
        for (i, (trial, loss)) in trials.into_iter().zip(losses).enumerate() {
            let loss = if loss.is_nan() { f64::INFINITY } else { loss };
            if loss <= self.fitness[i] {
                if loss < self.fitness[i] && self.options.strategy == Strategy::Shade {
                    self.archive.push(self.pop[i].clone());
                    s_f.push(params[i].0);
                    s_cr.push(params[i].1);
                    s_w.push(self.fitness[i] - loss);
                }
                self.pop[i] = trial;
                self.fitness[i] = loss;
            }
        }
        if self.options.strategy != Strategy::Shade {
            return;
        }
        while self.archive.len() > np {
            let k = self.rng.random_range(0..self.archive.len());
            self.archive.swap_remove(k);
        }
        let total: f64 = s_w.iter().sum();
        if !s_f.is_empty() && total > 0.0 && total.is_finite() {
            let w: Vec<f64> = s_w.iter().map(|d| d / total).collect();
            let num: f64 = w.iter().zip(&s_f).map(|(w, f)| w * f * f).sum();
            let den: f64 = w.iter().zip(&s_f).map(|(w, f)| w * f).sum();
            self.memory_f[self.memory_pos] = num / den;
            self.memory_cr[self.memory_pos] = w.iter().zip(&s_cr).map(|(w, c)| w * c).sum();
            self.memory_pos = (self.memory_pos + 1) % self.memory_f.len();
        }
    }
}
