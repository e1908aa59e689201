//! Derivative-free optimization: Differential Evolution (and CMA-ES as one of its strategies)
//! with a batch objective.
//!
//! Pure code: no I/O, no model. The objective receives a whole generation of candidates at
//! once; a progress sink sees every generation and may stop the search; the complete state is
//! serializable, so a search checkpointed after any generation resumes to exactly the same
//! result.

pub mod cmaes;
mod de;

pub use de::{DeOptions, DeState, Generation, Outcome, StopReason, Strategy};
