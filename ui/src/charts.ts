// Chart.js set-up and the three kinds of chart the app draws: loss per generation, the six
// dimensions of several score sets, and losses grouped by region. Animations are off so the
// charts (and screenshots of them) show the data as soon as it arrives.
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController,
  LineElement, PointElement, Tooltip,
} from "chart.js";
import { DIMS, Scores, dimsOf, scoreList } from "./api";

Chart.register(BarController, BarElement, CategoryScale, Legend, LinearScale, LineController,
  LineElement, PointElement, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = "system-ui, sans-serif";
Chart.defaults.maintainAspectRatio = false;

export const COLORS: Record<string, string> = {
  target: "#1a202c", naive: "#dd6b20", icl: "#805ad5", tuned: "#2b6cb0", best: "#2b6cb0",
  mean: "#90cdf4",
};

function canvas(id: string): HTMLCanvasElement {
  return document.getElementById(id) as HTMLCanvasElement;
}

/** A loss-per-generation line chart: best and mean, with naive and ICL as flat references. */
export function lossChart(id: string): Chart<"line"> {
  return new Chart(canvas(id), {
    type: "line",
    data: {
      labels: [],
      datasets: [
        { label: "best", data: [], borderColor: COLORS.best, backgroundColor: COLORS.best, tension: 0 },
        { label: "population mean", data: [], borderColor: COLORS.mean, backgroundColor: COLORS.mean, tension: 0 },
        { label: "naive", data: [], borderColor: COLORS.naive, borderDash: [6, 4], pointRadius: 0 },
        { label: "ICL", data: [], borderColor: COLORS.icl, borderDash: [2, 3], pointRadius: 0 },
      ],
    },
    options: {
      scales: { x: { title: { display: true, text: "generation" } }, y: { title: { display: true, text: "L1" } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

/** Sets the loss chart's points and references. */
function setLoss(c: Chart<"line">, gens: { generation: number; best_loss: number; mean_loss: number }[],
  naive: number | null, icl: number | null): void {
  c.data.labels = gens.map((g) => String(g.generation));
  c.data.datasets[0].data = gens.map((g) => g.best_loss);
  c.data.datasets[1].data = gens.map((g) => g.mean_loss);
  c.data.datasets[2].data = gens.map(() => naive);
  c.data.datasets[3].data = gens.map(() => icl);
  c.update();
}

/** A grouped bar chart of the dimensions (Hofstede's six until scores say otherwise). */
export function dimsChart(id: string): Chart<"bar"> {
  return new Chart(canvas(id), {
    type: "bar",
    data: { labels: [...DIMS], datasets: [] },
    options: {
      scales: { y: { title: { display: true, text: "index" } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

/** Replaces the score sets shown (label → scores; missing ones are gaps); the columns are the
 * survey's own dimensions, as the scores name them. */
function setDims(c: Chart<"bar">, sets: { label: string; key: string; scores: Scores | null }[]): void {
  const dims = dimsOf(...sets.map((s) => s.scores));
  c.data.labels = dims;
  c.data.datasets = sets.filter((s) => s.scores).map((s) => ({
    label: s.label,
    data: scoreList(s.scores, dims),
    backgroundColor: COLORS[s.key] ?? "#718096",
  }));
  c.update();
}

/** Grouped bars of losses by region: three methods on the training and held-out surveys. */
export function compareChart(id: string): Chart<"bar"> {
  return new Chart(canvas(id), {
    type: "bar",
    data: { labels: [], datasets: [] },
    options: {
      scales: { y: { title: { display: true, text: "L1 loss" } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

/** A method's result on the training survey, as a run's charts need it. */
export type MethodScores = { loss: number; indices: Scores } | undefined;

/** Draws a run on a loss chart and a dimensions chart: best and mean loss per generation with
 *  naive and ICL as references; target, naive, ICL and the tuned prompt (or, before it exists,
 *  the best candidate so far). `method` gives each method's training-survey result. */
export function drawRun(loss: Chart<"line">, dims: Chart<"bar">, targetLabel: string, target: Scores | null,
  gens: { generation: number; best_loss: number; mean_loss: number; best_scores: Scores }[],
  method: (m: "naive" | "icl" | "tuned") => MethodScores): void {
  const [naive, icl, tuned] = [method("naive"), method("icl"), method("tuned")];
  setLoss(loss, gens, naive?.loss ?? null, icl?.loss ?? null);
  const best = gens.length ? gens[gens.length - 1].best_scores : null;
  setDims(dims, [
    { label: targetLabel, key: "target", scores: target },
    { label: "naive", key: "naive", scores: naive?.indices ?? null },
    { label: "ICL", key: "icl", scores: icl?.indices ?? null },
    { label: tuned ? "tuned" : "best so far", key: "best", scores: tuned?.indices ?? best },
  ]);
}
