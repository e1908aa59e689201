// What the screens share: the regions table, the selection, the chosen model and the runs.
import { ModelInfo, Region, RunSummary } from "./api";

type Listener = () => void;

export const state = {
  regions: [] as Region[],
  selected: [] as string[],
  model: null as ModelInfo | null,
  /** GPU layers chosen on the Model screen; null = automatic plan. */
  gpuLayers: null as number | null,
  chatTemplate: null as string | null,
  runs: [] as RunSummary[],
  listeners: new Map<string, Listener[]>(),
};

/** Calls `f` whenever `topic` changes ("selection", "model", "runs"). */
export function on(topic: string, f: Listener): void {
  state.listeners.set(topic, [...(state.listeners.get(topic) ?? []), f]);
}

/** Tells the listeners of `topic`. */
export function changed(topic: string): void {
  for (const f of state.listeners.get(topic) ?? []) f();
}

/** The region with this code. */
export function region(code: string): Region | undefined {
  return state.regions.find((r) => r.code === code);
}
