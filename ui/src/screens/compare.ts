// Compare screen: regions x methods on the training and held-out surveys, table and chart.
import { api, CompareRow, errorText } from "../api";
import { compareChart, COLORS } from "../charts";
import { $, fmt, show, td } from "../dom";
import { on, state } from "../state";

let chart: ReturnType<typeof compareChart>;

function defaultRegions(): string[] {
  const tuned = state.runs.filter((r) => r.status === "done").map((r) => r.region);
  return [...new Set([...state.selected, ...tuned])];
}

function render(rows: CompareRow[]): void {
  const body = $("compare-table").querySelector("tbody")!;
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.region = r.region;
    // Rows trained on another survey than the default say so: their training losses differ in kind.
    const trained = r.train_survey && r.train_survey !== "vsm13" ? ` (trained on ${r.train_survey})` : "";
    tr.append(td(`${r.region} · ${r.name}${trained}`), td(r.run === null ? "–" : String(r.run), "num"));
    for (const s of ["train", "heldout"] as const) {
      const l = r[s];
      const vals = [l?.naive, l?.icl, l?.tuned];
      const min = Math.min(...vals.filter((v): v is number => typeof v === "number"));
      for (const v of vals) tr.append(td(fmt(v), v === min ? "num best" : "num"));
      const sp = r.seeds?.[s];
      tr.append(td(sp && sp.n > 0 ? `${fmt(sp.mean)} ± ${fmt(sp.sd)} (n ${sp.n})` : "–", "num"));
    }
    body.append(tr);
  }
  const sets: [string, "train" | "heldout", "naive" | "icl" | "tuned"][] = [
    ["naive (training)", "train", "naive"], ["ICL (training)", "train", "icl"], ["tuned (training)", "train", "tuned"],
    ["naive (held-out)", "heldout", "naive"], ["ICL (held-out)", "heldout", "icl"], ["tuned (held-out)", "heldout", "tuned"],
  ];
  chart.data.labels = rows.map((r) => r.region);
  chart.data.datasets = sets.map(([label, s, m]) => ({
    label,
    data: rows.map((r) => r[s]?.[m] ?? null),
    backgroundColor: COLORS[m] + (s === "heldout" ? "80" : ""),
    borderColor: COLORS[m],
    borderWidth: s === "heldout" ? 1 : 0,
  }));
  chart.update();
}

async function run(): Promise<void> {
  show("compare-error", null);
  const typed = $<HTMLInputElement>("compare-regions").value.split(/[,\s]+/).filter(Boolean);
  const regions = typed.length ? typed : defaultRegions();
  if (!regions.length) {
    show("compare-error", "No regions to compare yet: select some on the Regions screen or finish a tuning run.");
    return;
  }
  try {
    render(await api.compare(regions));
  } catch (e) {
    show("compare-error", errorText(e));
  }
}

export function initCompare(): void {
  chart = compareChart("compare-chart");
  $("compare-go").addEventListener("click", run);
  $("compare-regions").addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Enter") run();
  });
  on("show:compare", run);
}
