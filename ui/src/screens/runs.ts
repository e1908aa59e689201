// Runs screen: the history from SQLite; open a run to see its charts; resume the resumable.
import { api, dimsOf, errorText, RunDetail, scoreList } from "../api";
import { dimsChart, drawRun, lossChart } from "../charts";
import { $, fmt, setHeader, show, td } from "../dom";
import { changed, on, region, state } from "../state";
import { banner } from "../banner";
import { resume } from "./tune";
import { go } from "../nav";

let loss: ReturnType<typeof lossChart>;
let dims: ReturnType<typeof dimsChart>;

export async function refreshRuns(): Promise<void> {
  try {
    state.runs = await api.runs();
  } catch (e) {
    banner(`Could not read the runs: ${errorText(e)}`);
    return;
  }
  const body = $("runs-table").querySelector("tbody")!;
  body.replaceChildren();
  for (const r of state.runs) {
    const tr = document.createElement("tr");
    tr.dataset.run = String(r.id);
    const status = td(r.status, "status");
    status.dataset.status = r.status;
    if (r.error) status.title = r.error;
    tr.append(td(String(r.id), "num"), status, td(`${r.region} · ${region(r.region)?.name ?? ""}`),
      td(r.evals === null ? "–" : String(r.evals), "num"), td(fmt(r.best_loss), "num"), td(r.created_at.replace("T", " ").replace("Z", "")));
    const actions = document.createElement("td");
    const open = document.createElement("button");
    open.textContent = "Open";
    open.className = "open";
    open.addEventListener("click", () => openRun(r.id));
    actions.append(open);
    if (["cancelled", "interrupted", "failed"].includes(r.status)) {
      const b = document.createElement("button");
      b.textContent = "Resume";
      b.className = "resume";
      b.dataset.run = String(r.id);
      b.addEventListener("click", () => {
        go("tune");
        resume(r.id, r.region);
      });
      actions.append(b);
    }
    tr.append(actions);
    body.append(tr);
  }
  changed("runs-loaded");
}

function render(d: RunDetail): void {
  // A region of another targets table is stored with the run.
  const name = region(d.run.region)?.name ?? d.run.config.region_row?.name ?? "";
  $("run-detail-title").textContent = `Run ${d.run.id}: ${d.run.region} (${name}), ${d.run.status}, seed ${d.run.seed}`;
  show("run-detail-error", d.run.error);
  drawRun(loss, dims, "target", region(d.run.region)?.scores ?? d.run.config.region_row?.scores ?? null, d.trajectory,
    (m) => {
      // In the search's objective: a population run's item distance, else the index L1.
      const e = [...d.evaluations].reverse().find((e) => e.method === m && e.survey === d.run.survey);
      return e && e.items ? { loss: e.items.train, indices: e.indices } : e;
    });
  const cols = dimsOf(...d.evaluations.map((e) => e.indices));
  setHeader($("run-evals"), ["Method", "Survey", "L1", ...cols, "Digit mass"]);
  const body = $("run-evals").querySelector("tbody")!;
  body.replaceChildren();
  for (const e of d.evaluations) {
    const tr = document.createElement("tr");
    tr.append(td(e.method), td(e.survey === d.run.survey ? `${e.survey} (training)` : `${e.survey} (held-out)`), td(fmt(e.loss), "num"));
    for (const v of scoreList(e.indices, cols)) tr.append(td(fmt(v), "num"));
    tr.append(td(fmt(e.digit_mass, 2), "num"));
    body.append(tr);
  }
}

export async function openRun(id: number): Promise<void> {
  $("run-detail").hidden = false;
  try {
    render(await api.runDetail(id));
  } catch (e) {
    show("run-detail-error", errorText(e));
  }
}

export function initRuns(): void {
  loss = lossChart("run-loss-chart");
  dims = dimsChart("run-dims-chart");
  $("runs-refresh").addEventListener("click", refreshRuns);
  on("runs", refreshRuns);
  on("regions", refreshRuns);
}
