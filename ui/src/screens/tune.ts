// Tune screen: settings (the command line's defaults), Start / Cancel / Resume, and the live
// view of the job: loss curve, six-dimension chart, evaluations, ETA, final scores. Several
// selected regions are tuned one after another.
import { listen } from "@tauri-apps/api/event";
import { api, dimsOf, errorText, ItemFit, JobEnd, JobEvent, JobInfo, Scores, TuneSettings } from "../api";
import { dimsChart, drawRun, lossChart } from "../charts";
import { $, duration, fmt, setHeader, show, td } from "../dom";
import { changed, on, region, state } from "../state";

interface Gen { generation: number; best_loss: number; mean_loss: number; best_scores: Scores }

const live = {
  job: null as JobInfo | null,
  queue: [] as string[],
  lastRun: null as number | null,
  lastOutcome: "" as string,
  region: "",
  train: "",
  heldout: "",
  gens: [] as Gen[],
  evals: {} as Record<string, { loss: number; indices: Scores; gap_closed?: Scores; items?: ItemFit }>,
  /** The run tunes toward respondents: its target is theirs, not the region's published one. */
  population: false,
};

let loss: ReturnType<typeof lossChart>;
let dims: ReturnType<typeof dimsChart>;

function num(id: string): number | undefined {
  const v = $<HTMLInputElement>(id).value.trim();
  return v === "" ? undefined : Number(v);
}

function text(id: string): string | undefined {
  return $<HTMLInputElement>(id).value.trim() || undefined;
}

function settings(code: string): TuneSettings {
  return {
    region: code,
    model: state.model?.path,
    budget: num("tune-budget"),
    population: num("tune-population"),
    dims: num("tune-dims"),
    seed: num("tune-seed"),
    strategy: $<HTMLSelectElement>("tune-strategy").value,
    placement: $<HTMLSelectElement>("tune-placement").value,
    panel: num("tune-panel"),
    counterbalance: $<HTMLInputElement>("tune-counterbalance").checked || undefined,
    twoWordings: $<HTMLInputElement>("tune-two-wordings").checked || undefined,
    calibrationRegions: $<HTMLInputElement>("tune-calibration").value.trim() || undefined,
    survey: text("tune-survey"),
    heldoutSurvey: text("tune-heldout"),
    responses: text("tune-responses"),
    group: text("tune-group"),
    weight: text("tune-weight"),
    objective: $<HTMLSelectElement>("tune-objective").value || undefined,
    holdoutItems: text("tune-holdout"),
    weights: $<HTMLSelectElement>("tune-weights").value,
    threads: num("tune-threads"),
    gpuLayers: state.gpuLayers ?? undefined,
    chatTemplate: state.chatTemplate ?? undefined,
  };
}

function setStatus(s: string): void {
  const p = $("job-status");
  p.textContent = s;
  p.dataset.status = s;
  const running = s === "running" || s === "cancelling";
  $<HTMLButtonElement>("tune-start").disabled = running;
  $<HTMLButtonElement>("tune-cancel").disabled = !running || s === "cancelling";
  $<HTMLButtonElement>("tune-resume").disabled =
    running || live.lastRun === null || !["cancelled", "failed"].includes(live.lastOutcome);
  $("side-job").textContent = running ? `tuning ${live.region || ""} (${s})` : `last job: ${s}`;
}

/** The target drawn: the region's published scores, or none for a population run (whose
 * target, the respondents' indices, the run's report shows). */
function target(): Scores | null {
  return live.population ? null : region(live.region)?.scores ?? null;
}

function redraw(): void {
  drawRun(loss, dims, `target (${live.region})`, target(), live.gens,
    (m) => inObjective(live.evals[`${m}/${live.train}`]));
  $("final-title").textContent = live.population
    ? "Final scores (L1 to the respondents' indices)"
    : "Final scores (L1 to the published scores)";
  for (const [survey, key] of [[live.train, "train"], [live.heldout, "heldout"]]) {
    for (const m of ["naive", "icl", "tuned"]) {
      $(`final-${key}-${m}`).textContent = fmt(live.evals[`${m}/${survey}`]?.loss);
    }
  }
  $("gen-count").textContent = String(live.gens.length);
  const held = (m: string) => inObjective(live.evals[`${m}/${live.heldout}`])?.loss;
  const items = live.evals[`tuned/${live.heldout}`]?.items !== undefined;
  $("final-transfer").textContent = [
    transferText(held("naive"), held("tuned"), items),
    itemText(),
  ].filter((t) => t).join(" ");
  drawDims();
}

/** Whether the tuned prompt carries over to the independently worded held-out survey (as the
 * command line's final report says it). */
function transferText(naive: number | undefined, tuned: number | undefined, items = false): string {
  if (naive === undefined || tuned === undefined) return "";
  if (items) {
    const [a, b] = [fmt(tuned, 3), fmt(naive, 3)];
    return tuned < naive
      ? `Held-out wording: tuned item distance ${a} < naive ${b}: the tuned prompt carries over.`
      : `Held-out wording: tuned item distance ${a} ≥ naive ${b}: the tuned prompt does not carry over.`;
  }
  return tuned < naive
    ? `Held-out: tuned ${fmt(tuned)} < naive ${fmt(naive)}: the tuned prompt carries over to the independently worded survey.`
    : `Held-out: tuned ${fmt(tuned)} ≥ naive ${fmt(naive)}: the tuned prompt fits the training wording but does not carry over to the independently worded survey (docs/tuning.md, "What does not generalize": another seed, or training on two wordings, which carried over for USA and CHI but not for ARA).`;
}

/** A method's result in the search's objective: the item distance over the training items when
 * the run matches answer distributions, else the index L1 (the loss chart's baselines). */
function inObjective(e: { loss: number; indices: Scores; items?: ItemFit } | undefined) {
  return e && e.items ? { loss: e.items.train, indices: e.indices } : e;
}

/** The item distances of a population run with the items objective (as the command line's
 * report has them): training items and held-out items, naive against tuned. */
function itemText(): string {
  const naive = live.evals[`naive/${live.train}`]?.items;
  const tuned = live.evals[`tuned/${live.train}`]?.items;
  if (!naive || !tuned) return "";
  const held = naive.heldout !== null && tuned.heldout !== null
    ? `; held-out items: naive ${fmt(naive.heldout, 3)}, tuned ${fmt(tuned.heldout, 3)}` : "";
  return `Item distance (code steps) on the training items: naive ${fmt(naive.train, 3)}, tuned ${fmt(tuned.train, 3)}${held}.`;
}

/** Target, naive and tuned per dimension on the training survey, and the share of the gap closed. */
function drawDims(): void {
  const goal = target();
  const naive = live.evals[`naive/${live.train}`];
  const tuned = live.evals[`tuned/${live.train}`];
  const dims = dimsOf(goal, naive?.indices, tuned?.indices);
  const rows: [string, (d: string) => string][] = [
    ["target", (d) => fmt(goal?.[d])],
    ["naive", (d) => fmt(naive?.indices[d])],
    ["tuned", (d) => fmt(tuned?.indices[d])],
    ["gap closed", (d) => {
      const g = tuned?.gap_closed?.[d];
      return g === undefined ? "–" : `${Math.round(g * 100)}%`;
    }],
  ];
  setHeader($("final-dims"), ["", ...dims]);
  const body = $("final-dims").querySelector("tbody")!;
  body.replaceChildren(...rows.map(([label, value]) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = label;
    tr.append(th, ...dims.map((d) => {
      const cell = td(value(d));
      cell.dataset.dim = d;
      return cell;
    }));
    tr.dataset.row = label;
    return tr;
  }));
}

function reset(code: string): void {
  Object.assign(live, { region: code, train: "", heldout: "", gens: [], evals: {}, lastRun: null });
  $("job-run").textContent = "–";
  $("job-region").textContent = code;
  $("job-pid").textContent = "–";
  $("job-evals").textContent = "–";
  $("job-eta").textContent = "–";
  $("job-stage").textContent = "starting the worker…";
  $<HTMLProgressElement>("job-progress").value = 0;
  show("job-error", null);
  $("job-error").removeAttribute("data-code");
  redraw();
}

async function startNext(): Promise<void> {
  const code = live.queue.shift();
  if (!code) return;
  reset(code);
  try {
    const s = settings(code);
    live.population = s.responses !== undefined;
    live.job = await api.startTune(s);
    $("job-pid").textContent = String(live.job.pid ?? "–");
    setStatus("running");
  } catch (e) {
    live.queue = [];
    failed(errorText(e), (e as { code?: string }).code ?? "internal");
  }
}

function failed(text: string, code: string): void {
  show("job-error", text);
  $("job-error").dataset.code = code;
  live.lastOutcome = "failed";
  setStatus("failed");
}

async function onEvent(p: JobEvent): Promise<void> {
  if (!live.job || p.job !== live.job.job) return;
  const e = p.event;
  switch (e.event) {
    case "started": {
      live.lastRun = e.run;
      live.train = e.survey;
      live.heldout = e.heldout_survey;
      live.region = e.region;
      $("job-run").textContent = String(e.run);
      $("job-region").textContent = `${e.region} · ${region(e.region)?.name ?? ""}`;
      $("job-stage").textContent = e.resumed ? "resumed from the last checkpoint" : "evaluating the baselines";
      changed("runs");
      if (e.resumed) {
        try {
          const d = await api.runDetail(e.run);
          live.population = d.run.config.population !== undefined;
          live.gens = d.trajectory;
          for (const ev of d.evaluations) live.evals[`${ev.method}/${ev.survey}`] = ev;
        } catch { /* the live events fill the charts anyway */ }
      }
      break;
    }
    case "progress":
      $("job-stage").textContent = `${e.stage}: ${e.done} / ${e.total}`;
      $<HTMLProgressElement>("job-progress").value = e.total ? e.done / e.total : 0;
      break;
    case "evaluation":
      live.evals[`${e.method}/${e.survey}`] = { loss: e.loss, indices: e.indices, gap_closed: e.gap_closed, items: e.items };
      $("job-stage").textContent = `${e.method} on ${e.survey}: L1 ${fmt(e.loss)}`;
      break;
    case "generation":
      live.gens = live.gens.filter((g) => g.generation < e.generation);
      live.gens.push(e as unknown as Gen);
      $("job-evals").textContent = e.max_evals ? `${e.evals} / ${e.max_evals}` : String(e.evals);
      $("job-eta").textContent = duration(e.eta_s);
      $<HTMLProgressElement>("job-progress").value = e.max_evals ? e.evals / e.max_evals : 0;
      $("job-stage").textContent = `generation ${e.generation}: best loss ${fmt(e.best_loss, live.population ? 3 : 1)}, mean ${fmt(e.mean_loss, live.population ? 3 : 1)} (${duration(e.elapsed_s)} of search)`;
      break;
    case "finished":
      $("job-stage").textContent = `finished: ${e.status}, best loss ${fmt(e.best_loss, live.population ? 3 : 1)} after ${e.evals} evaluations`;
      if (e.status === "done") $("job-eta").textContent = "0 s";
      break;
    case "error":
      show("job-error", `${e.message} (${e.code})`);
      $("job-error").dataset.code = e.code;
      break;
  }
  redraw();
}

function onEnd(p: JobEnd): void {
  if (!live.job || p.job !== live.job.job) return;
  live.job = null;
  live.lastOutcome = p.outcome;
  if (p.run !== null) live.lastRun = p.run;
  if (p.error && p.outcome !== "done") {
    show("job-error", `${p.error.message} (${p.error.code})`);
    $("job-error").dataset.code = p.error.code;
  }
  if (p.outcome === "done") $<HTMLProgressElement>("job-progress").value = 1;
  setStatus(p.outcome);
  changed("runs");
  if (p.outcome === "done" && live.queue.length) startNext();
  else live.queue = [];
}

/** Resumes `run` in the live view (also used by the Runs screen). */
export async function resume(run: number, code: string): Promise<void> {
  reset(code);
  live.lastRun = run;
  try {
    live.job = await api.resumeRun(run, code);
    $("job-pid").textContent = String(live.job.pid ?? "–");
    $("job-run").textContent = String(run);
    setStatus("running");
  } catch (e) {
    failed(errorText(e), (e as { code?: string }).code ?? "internal");
  }
}

/** Fills the form with the library's defaults: a field the user already filled or changed
 * keeps its value. */
async function fillDefaults(): Promise<void> {
  const d = await api.tuneDefaults();
  const inputs: [string, number][] = [
    ["tune-budget", d.budget], ["tune-population", d.population], ["tune-dims", d.dims],
    ["tune-seed", d.seed], ["tune-panel", d.panel],
  ];
  for (const [id, v] of inputs) {
    const e = $<HTMLInputElement>(id);
    if (e.value.trim() === "") e.value = String(v);
  }
  for (const [id, v] of [["tune-strategy", d.strategy], ["tune-placement", d.placement]]) {
    const e = $<HTMLSelectElement>(id);
    if (!e.dataset.changed) e.value = v;
  }
}

export function initTune(): void {
  loss = lossChart("loss-chart");
  dims = dimsChart("dims-chart");
  for (const id of ["tune-strategy", "tune-placement"]) {
    $(id).addEventListener("change", () => { $(id).dataset.changed = "1"; });
  }
  fillDefaults().catch((e) => console.error("tune defaults:", errorText(e)));
  $("tune-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!state.selected.length) {
      failed("Choose one or more regions on the Regions screen first.", "invalid_input");
      return;
    }
    live.queue = [...state.selected];
    startNext();
  });
  $("tune-cancel").addEventListener("click", async () => {
    live.queue = [];
    setStatus("cancelling");
    $("job-stage").textContent = "stopping the worker…";
    await api.cancelJob();
  });
  $("tune-resume").addEventListener("click", () => {
    if (live.lastRun !== null) resume(live.lastRun, live.region);
  });
  on("selection", () => {
    const box = $("tune-regions");
    box.replaceChildren();
    if (!state.selected.length) box.textContent = "none: pick them on the Regions screen";
    for (const c of state.selected) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = c;
      chip.title = region(c)?.name ?? c;
      box.append(chip);
    }
  });
  listen<JobEvent>("job-event", (e) => onEvent(e.payload));
  listen<JobEnd>("job-end", (e) => onEnd(e.payload));
  setStatus("idle");
  // After a reload the job may still be running.
  api.currentJob().then((j) => {
    if (j) {
      live.job = j;
      reset(j.region ?? "");
      $("job-pid").textContent = String(j.pid ?? "–");
      setStatus("running");
    }
  });
}
