// The worker's event stream (docs/events.md) exactly as Rust's `culturetune::events::Event`
// serializes it, and the stable codes and labels inside it. src-tauri/tests/schema.rs checks
// this file against the Rust types: every variant, every field, every code.
import type { ItemFit, Scores } from "./api";

/** Status of a tuning run (`RunStatus`). */
export type RunStatus = "running" | "done" | "cancelled" | "interrupted" | "failed";

/** Stable error code (`ErrorCode`). */
export type ErrorCode =
  | "model_not_found" | "not_gguf" | "bad_model" | "out_of_memory" | "region_unknown"
  | "database" | "invalid_input" | "engine" | "cancelled" | "internal";

/** Which prompt an evaluation measured (`MethodLabel`). */
export type MethodLabel = "naive" | "icl" | "tuned";

export interface StartedEvent {
  event: "started"; run: number; region: string; survey: string; heldout_survey: string;
  max_evals: number | null; resumed: boolean;
}
export interface ProgressEvent {
  event: "progress"; run: number | null; stage: string; done: number; total: number;
}
export interface EvaluationEvent {
  event: "evaluation"; run: number; method: MethodLabel; survey: string; indices: Scores;
  loss: number; loss_mean: number; dims_used: number; digit_mass: number; gap_closed?: Scores;
  items?: ItemFit;
}
export interface GenerationEvent {
  event: "generation"; run: number; generation: number; evals: number; max_evals: number | null;
  best_loss: number; mean_loss: number; best_scores: Scores; elapsed_s: number; eta_s: number | null;
}
export interface FinishedEvent {
  event: "finished"; run: number; status: RunStatus; best_loss: number | null; evals: number;
  elapsed_s: number;
}
export interface ErrorEvent {
  event: "error"; run: number | null; code: ErrorCode; message: string;
}

/** One event of a tuning run. */
export type WorkerEvent =
  | StartedEvent | ProgressEvent | EvaluationEvent | GenerationEvent | FinishedEvent | ErrorEvent;
