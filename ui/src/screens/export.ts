// Export screen: a save dialog (or a typed folder) and the PEFT directory written by the worker.
import { save } from "@tauri-apps/plugin-dialog";
import { api, errorText } from "../api";
import { $, show } from "../dom";
import { on } from "../state";
import { fillRunSelect } from "./chat";

async function browse(): Promise<void> {
  const opt = $<HTMLSelectElement>("export-run").selectedOptions[0];
  const name = opt?.value ? `culturetune-${opt.dataset.region}-run${opt.value}` : "culturetune-prompt";
  const p = await save({ title: "Export the tuned prompt as a folder", defaultPath: name });
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
    const msg = await api.exportRun(run, $<HTMLInputElement>("export-dir").value.trim(), $<HTMLInputElement>("export-force").checked);
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
