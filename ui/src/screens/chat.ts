// Chat screen: one message, answered with the naive persona and with a run's tuned prompt.
import { api, errorText } from "../api";
import { $ } from "../dom";
import { on, region, state } from "../state";

/** Fills a select with the finished runs (newest first): the newest is chosen until the user
 *  picks one, whose choice is then kept while it exists. */
export function fillRunSelect(id: string): void {
  const sel = $<HTMLSelectElement>(id);
  if (!sel.dataset.watched) {
    sel.dataset.watched = "true";
    sel.addEventListener("change", () => (sel.dataset.userChose = "true"));
  }
  const keep = sel.dataset.userChose ? sel.value : "";
  sel.replaceChildren();
  const done = state.runs.filter((r) => r.status === "done").sort((a, b) => b.id - a.id);
  if (!done.length) {
    const o = document.createElement("option");
    o.value = "";
    o.textContent = "no finished runs yet: tune a region first";
    sel.append(o);
  }
  for (const r of done) {
    const o = document.createElement("option");
    o.value = String(r.id);
    o.dataset.region = r.region;
    o.textContent = `run ${r.id} · ${r.region} (${region(r.region)?.name ?? ""}) · best L1 ${r.best_loss?.toFixed(1) ?? "–"}`;
    sel.append(o);
  }
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

async function send(): Promise<void> {
  const sel = $<HTMLSelectElement>("chat-run");
  const opt = sel.selectedOptions[0];
  if (!opt || !opt.value) {
    $("chat-status").textContent = "Finish a tuning run first.";
    return;
  }
  const run = Number(opt.value);
  const message = $<HTMLTextAreaElement>("chat-message").value;
  $("chat-status").textContent = "the model is answering twice…";
  $<HTMLButtonElement>("chat-send").disabled = true;
  try {
    const detail = await api.runDetail(run);
    const r = await api.chat(opt.dataset.region ?? detail.run.region, run, message, detail.run.config.model_path);
    $("chat-naive").textContent = r.naive;
    $("chat-tuned").textContent = r.tuned;
    $("chat-status").textContent = "done";
    // The model stays loaded in one worker between messages; say so where a curious user looks.
    $("chat-status").title = `answered by worker ${r.worker.pid}: model loaded ${r.worker.model_loads}×, message ${r.worker.requests}`;
  } catch (e) {
    $("chat-status").textContent = errorText(e);
  } finally {
    $<HTMLButtonElement>("chat-send").disabled = false;
  }
}

export function initChat(): void {
  $("chat-send").addEventListener("click", send);
  $("chat-message").addEventListener("keydown", (e) => {
    const k = e as KeyboardEvent;
    if (k.key === "Enter" && (k.ctrlKey || k.metaKey)) send();
  });
  on("runs-loaded", () => fillRunSelect("chat-run"));
}
