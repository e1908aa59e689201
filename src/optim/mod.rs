//! Derivative-free optimization: Differential Evolution (and CMA-ES as one of its strategies)
//! with a batch objective.
//!
//! Pure code: no I/O, no model. An [`Optimizer`] is asked for a batch of points, told their
//! losses, and reports the generation; [`drive`] runs that loop against a batch objective and
//! a progress sink that sees every generation and may stop the search. The complete state is
//! serializable and seeded, so a search checkpointed after any generation resumes to exactly
//! the same result.

pub mod cmaes;
mod de;

pub use de::{DeOptions, DeState, Generation, Outcome, StopReason, Strategy};
use std::ops::ControlFlow;

/// A seeded black-box minimizer in ask/tell form, whose state between generations is
/// serializable. [`DeState`] implements it for every [`Strategy`] (DE variants, SHADE,
/// CMA-ES).
pub trait Optimizer: serde::Serialize + serde::de::DeserializeOwned {
    /// The next batch of points to evaluate (one generation); empty once a limit is reached
    /// or the search was stopped. Asking again before telling returns the same batch.
    fn ask(&mut self) -> Vec<Vec<f64>>;
    /// The losses of the batch last asked, in its order (NaN counts as infinitely bad);
    /// returns the generation's report. Refused when no batch was asked or the count differs.
    fn tell(&mut self, losses: Vec<f64>) -> Result<Generation, String>;
    /// Stops the search: the next ask is empty.
    fn stop(&mut self);
    /// The best point so far, the evaluations and generations spent, and why it stopped.
    fn outcome(&self) -> Outcome;
}

impl Optimizer for DeState {
    fn ask(&mut self) -> Vec<Vec<f64>> {
        self.next_batch()
    }

    fn tell(&mut self, losses: Vec<f64>) -> Result<Generation, String> {
        self.take_losses(losses)
    }

    fn stop(&mut self) {
        self.stopped.get_or_insert(StopReason::Stopped);
    }

    fn outcome(&self) -> Outcome {
        self.outcome_now()
    }
}

/// Asks, evaluates with `objective` (a batch of points to their losses, same order and
/// length) and tells until the optimizer stops or `sink` breaks; `sink` sees each
/// generation's report and the state after it (the moment to checkpoint).
pub fn drive<O: Optimizer, E>(
    opt: &mut O,
    mut objective: impl FnMut(&[Vec<f64>]) -> Result<Vec<f64>, E>,
    mut sink: impl FnMut(&Generation, &O) -> ControlFlow<()>,
) -> Result<Outcome, E> {
    loop {
        let batch = opt.ask();
        if batch.is_empty() {
            break;
        }
        let losses = objective(&batch)?;
        let g = opt
            .tell(losses)
            .expect("the objective returns one loss per point");
        if sink(&g, opt).is_break() {
            opt.stop();
            break;
        }
    }
    Ok(opt.outcome())
}
