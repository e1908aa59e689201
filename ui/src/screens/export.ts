// Export screen: a save dialog (or a typed path) and what the worker writes there: a PEFT
// directory, or a GGUF that carries the tuned prompt as tokens (llama-server, LM Studio, Ollama).
import { save } from "@tauri-apps/plugin-dialog";
import { api, errorText } from "../api";
import { $, show } from "../dom";
import { on } from "../state";
import { fillRunSelect } from "./chat";

async function browse(): Promise<void> {
  const opt = $<HTMLSelectElement>("export-run").selectedOptions[0];
  const gguf = $<HTMLSelectElement>("export-format").value === "gguf";
  const base = opt?.value ? `culturetune-${opt.dataset.region}-run${opt.value}` : "culturetune-prompt";
  const name = gguf ? `${base}.gguf` : base;
  const title = gguf ? "Export the tuned prompt as a GGUF model file" : "Export the tuned prompt as a folder";
  const p = await save({ title, defaultPath: name });
  if (p) $<HTMLInputElement>("export-dir").value = p;
}

async function exportNow(): Promise<void> {
  show("export-result", null);
  show("export-error", null);
  const run = Number($<HTMLSelectElement>("export-run").value);
  if (!run) {
    show("export-error", "Finish a tuning run first (invalid_input)");
    return;
  }
  try {
    const gguf = $<HTMLSelectElement>("export-format").value === "gguf";
    const msg = await api.exportRun(run, $<HTMLInputElement>("export-dir").value.trim(), $<HTMLInputElement>("export-force").checked, gguf);
    show("export-result", msg);
  } catch (e) {
    show("export-error", errorText(e));
  }
}

export function initExport(): void {
  $("export-browse").addEventListener("click", browse);
  $("export-go").addEventListener("click", exportNow);
  on("runs-loaded", () => fillRunSelect("export-run"));
}
