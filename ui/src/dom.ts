// Small DOM helpers shared by the screens.

/** The element with this id (the markup in index.html defines them all). */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`no element #${id}`);
  return e as T;
}

/** Shows `text` in an element that is hidden when empty. */
export function show(id: string, text: string | null): void {
  const e = $(id);
  e.textContent = text ?? "";
  e.hidden = !text;
}

/** A number with one decimal, or "–". */
export function fmt(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits);
}

/** A table cell with text. */
export function td(text: string, cls?: string): HTMLTableCellElement {
  const c = document.createElement("td");
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

/** Seconds as "1 min 05 s". */
export function duration(s: number | null | undefined): string {
  if (s === null || s === undefined) return "–";
  const t = Math.max(0, Math.round(s));
  return t >= 60 ? `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, "0")} s` : `${t} s`;
}

/** Replaces a table's header row with these column titles (the survey's own dimensions
 * decide some of them). */
export function setHeader(table: HTMLElement, titles: string[]): void {
  const row = document.createElement("tr");
  for (const t of titles) {
    const th = document.createElement("th");
    th.textContent = t;
    row.append(th);
  }
  table.querySelector("thead")!.replaceChildren(row);
}
