// Model screen: the default model preselected, any GGUF through a file dialog, its facts.
import { open } from "@tauri-apps/plugin-dialog";
import { api, errorText } from "../api";
import { $, show } from "../dom";
import { changed, state } from "../state";

function mib(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

async function load(path?: string): Promise<void> {
  show("model-error", null);
  $("model-load").setAttribute("aria-busy", "true");
  try {
    const m = await api.modelInfo(path);
    state.model = m;
    $<HTMLInputElement>("model-path").value = m.path;
    $("model-name").textContent = m.name ?? "(no name)";
    $("model-arch").textContent = m.architecture;
    $("model-size").textContent = mib(m.file_size);
    $("model-params").textContent = `${(m.n_params / 1e6).toFixed(1)} M`;
    $("model-quant").textContent = m.quantization ?? "unknown";
    $("model-embd").textContent = m.n_embd === null ? "–" : String(m.n_embd);
    $("model-layers").textContent = m.n_layer === null ? "–" : String(m.n_layer);
    const gpu = $<HTMLInputElement>("model-gpu-layers");
    gpu.disabled = !m.gpu_available;
    if (!m.gpu_available) gpu.value = "0";
    $("model-gpu-reason").textContent = m.gpu_available
      ? "layers to offload to the GPU (empty = the plan)"
      : `disabled: ${m.gpu_reason}`;
    $("model-devices").textContent = m.devices
      .map((d) => `${d.name} (${d.description}): ${mib(d.free_bytes)} free of ${mib(d.total_bytes)}`)
      .join("; ");
    $("model-plan").textContent = m.gpu_plan.note;
    $("model-template").textContent = m.chat_template_usable
      ? "the file's own"
      : `${m.has_chat_template ? "the file's is not one llama.cpp recognises" : "none in the file"}: name one below (${m.builtin_chat_templates.join(", ")})`;
    $("side-model").textContent = `model: ${m.name ?? m.path.split(/[\\/]/).pop()}`;
    changed("model");
  } catch (e) {
    show("model-error", errorText(e));
  } finally {
    $("model-load").removeAttribute("aria-busy");
  }
}

export function initModel(): void {
  $("model-load").addEventListener("click", () => load($<HTMLInputElement>("model-path").value));
  $<HTMLInputElement>("model-path").addEventListener("keydown", (e) => {
    if (e.key === "Enter") load($<HTMLInputElement>("model-path").value);
  });
  $("model-browse").addEventListener("click", async () => {
    const p = await open({ multiple: false, directory: false, filters: [{ name: "GGUF model", extensions: ["gguf"] }] });
    if (typeof p === "string") {
      $<HTMLInputElement>("model-path").value = p;
      await load(p);
    }
  });
  $<HTMLInputElement>("model-gpu-layers").addEventListener("change", (e) => {
    const v = (e.target as HTMLInputElement).value.trim();
    state.gpuLayers = v === "" ? null : Math.max(0, Math.floor(Number(v)) || 0);
  });
  $<HTMLInputElement>("model-chat-template").addEventListener("change", (e) => {
    const v = (e.target as HTMLInputElement).value.trim();
    state.chatTemplate = v === "" ? null : v;
  });
  api.appInfo().then((i) => ($("app-db").textContent = i.db)).catch(() => undefined);
  load();
}
