// Typed wrappers around the app's Tauri commands. Every command may fail with an AppError
// {code, message}; `errorText` turns any thrown value into one line for people.
import { invoke } from "@tauri-apps/api/core";
import type { WorkerEvent } from "./events";

/** Hofstede's six, in canonical order: the columns whenever every score is one of them. */
export const DIMS = ["PDI", "IDV", "MAS", "UAI", "LTO", "IVR"] as const;
/** Scores by dimension code (Hofstede's six or a survey file's own); absent = no value. */
export type Scores = Partial<Record<string, number>>;

/** The dimensions to draw for some score maps: Hofstede's six when every code is one of
 * them (a missing one is a gap), else every code any map has, in the order first seen (the
 * library sends each map in canonical order). */
export function dimsOf(...maps: (Scores | null | undefined)[]): string[] {
  const seen: string[] = [];
  for (const m of maps) for (const k of Object.keys(m ?? {})) if (!seen.includes(k)) seen.push(k);
  const six: readonly string[] = DIMS;
  return seen.every((k) => six.includes(k)) ? [...DIMS] : seen;
}

/** The values of `s` on `dims` (default: Hofstede's six), null where absent. */
export function scoreList(s: Scores | null | undefined, dims: readonly string[] = DIMS): (number | null)[] {
  return dims.map((d) => s?.[d] ?? null);
}

export interface AppError { code: string; message: string }
export interface Region { code: string; name: string; scores: Scores }
/** What `culturetune info --json` says of a model file (culturetune::engine::file_report::FileReport). */
export interface ModelInfo {
  path: string; is_default: boolean; name: string | null; architecture: string;
  file_size: number; n_params: number; quantization: string | null; file_type: number | null;
  n_embd: number | null; n_layer: number | null; gguf_version: number; has_chat_template: boolean;
  chat_template_usable: boolean; builtin_chat_templates: string[];
  gpu_available: boolean; gpu_reason: string | null; devices: Device[]; gpu_plan: LayerPlan;
}
/** One device llama.cpp sees (`culturetune info --json`). */
export interface Device {
  name: string; description: string; backend: string; kind: string; free_bytes: number; total_bytes: number;
}
/** The automatic GPU layer plan for a model (`--gpu-layers auto`). */
export interface LayerPlan {
  gpu_layers: number; n_layer: number; budget_bytes: number | null; margin_bytes: number;
  per_layer_bytes: number; output_bytes: number; full_offload_bytes: number; note: string;
}
/** One line of `culturetune runs --json` (culturetune::tuning::history::RunSummary). */
export interface RunSummary {
  id: number; status: string; region: string; survey: string; seed: number;
  evals: number | null; best_loss: number | null; created_at: string; updated_at: string;
  error: string | null;
}
/** The fields of a run's stored configuration (culturetune::tuning::TuneConfig) the window reads;
 * `region_row` is the region as another targets table had it (absent for a shipped region). */
export interface RunConfig {
  model_path: string; survey: string; heldout_survey: string; region_row?: Region; [k: string]: unknown;
}
/** A stored run (culturetune::store::RunRecord). */
export interface RunRecord {
  id: number; region: string; survey: string; method: string; model_sha256: string; config: RunConfig;
  seed: number; status: string; error: string | null; created_at: string; updated_at: string;
}
/** One generation of a run (culturetune::tuning::history::TrajectoryPoint). */
export interface Checkpoint {
  generation: number; evals: number; best_loss: number; mean_loss: number;
  best_scores: Scores; elapsed_s: number;
}
/** A stored evaluation (culturetune::store::EvaluationRecord); `items`, for population runs with
 * the items objective, is the mean earth mover's distance per item in code steps. */
export interface Evaluation {
  run_id: number | null; model_sha256: string; method: string; survey: string; region: string;
  constants: unknown; indices: Scores; loss: number; loss_mean: number; dims_used: number; digit_mass: number;
  items?: ItemFit;
}
/** How a method's answers fit a population's per item (culturetune::item_fit::ItemFit). */
export interface ItemFit { train: number; heldout: number | null; per_item: Record<string, number> }
/** `culturetune show --json` (culturetune::tuning::history::RunDetail). */
export interface RunDetail { run: RunRecord; trajectory: Checkpoint[]; evaluations: Evaluation[] }
/** The L1 loss of each method on one survey. */
export interface Losses { naive: number | null; icl: number | null; tuned: number | null }
/** Tuned losses over the finished runs of a region that differ only in their seed. */
export interface Spread { n: number; mean: number | null; sd: number | null; min: number | null; max: number | null }
/** The runs that differ from the newest only in their seed, and their tuned losses' spread. */
export interface SeedSpread { runs: number[]; train: Spread; heldout: Spread }
/** One region of `culturetune compare --json` (culturetune::tuning::history::CompareRow). */
export interface CompareRow {
  region: string; name: string; run: number | null; train?: Losses; heldout?: Losses;
  train_survey?: string; heldout_survey?: string; seeds?: SeedSpread;
}
export interface JobInfo { job: number; kind: string; pid: number | null; run: number | null; region: string | null; cancelling: boolean }
export interface JobEvent { job: number; event: WorkerEvent }
export interface JobEnd { job: number; outcome: "done" | "cancelled" | "failed"; run: number | null; error: AppError | null }
export interface TuneSettings {
  region: string; model?: string; budget?: number; population?: number; dims?: number; seed?: number;
  strategy?: string; placement?: string; panel?: number; counterbalance?: boolean; twoWordings?: boolean; calibrationRegions?: string; weights?: string; threads?: number;
  gpuLayers?: number; nCtx?: number; chatTemplate?: string;
  survey?: string; heldoutSurvey?: string; responses?: string; group?: string; weight?: string;
  objective?: string; holdoutItems?: string;
}

export function isAppError(e: unknown): e is AppError {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

/** One line for people: "message (code)". */
export function errorText(e: unknown): string {
  if (isAppError(e)) return `${e.message} (${e.code})`;
  return String(e);
}

/** culturetune's defaults for a tuning run (the library's `TuneRequest::defaults()`). */
export interface TuneDefaults {
  budget: number; population: number; dims: number; seed: number; panel: number;
  strategy: string; placement: string;
}

export const api = {
  tuneDefaults: () => invoke<TuneDefaults>("tune_defaults"),
  appInfo: () => invoke<{ db: string; worker: string; version: string }>("app_info"),
  modelInfo: (path?: string) => invoke<ModelInfo>("model_info", { path: path ?? null }),
  regions: () => invoke<Region[]>("regions"),
  runs: () => invoke<RunSummary[]>("runs"),
  runDetail: (run: number) => invoke<RunDetail>("run_detail", { run }),
  compare: (regions: string[]) => invoke<CompareRow[]>("compare", { regions }),
  chat: (region: string, run: number, message: string, model?: string) =>
    invoke<{ naive: string; tuned: string; worker: { pid: number; model_loads: number; requests: number } }>("chat", { region, run, message, model: model ?? null }),
  exportRun: (run: number, dir: string, force: boolean, gguf: boolean) => invoke<string>("export_run", { run, dir, force, gguf }),
  startTune: (settings: TuneSettings) => invoke<JobInfo>("start_tune", { settings }),
  resumeRun: (run: number, region?: string) => invoke<JobInfo>("resume_run", { run, region: region ?? null }),
  cancelJob: () => invoke<boolean>("cancel_job"),
  currentJob: () => invoke<JobInfo | null>("current_job"),
};
