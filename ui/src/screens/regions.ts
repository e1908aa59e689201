// Regions screen: searchable (name or code) table of published scores; multi-select.
import { api, errorText, scoreList } from "../api";
import { $, fmt, td } from "../dom";
import { changed, on, state } from "../state";
import { banner } from "../banner";

function render(): void {
  const q = $<HTMLInputElement>("region-search").value.trim().toLowerCase();
  const body = $("region-table").querySelector("tbody")!;
  body.replaceChildren();
  for (const r of state.regions) {
    if (q && !r.code.toLowerCase().includes(q) && !r.name.toLowerCase().includes(q)) continue;
    const tr = document.createElement("tr");
    tr.dataset.code = r.code;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "region-pick";
    box.value = r.code;
    box.checked = state.selected.includes(r.code);
    box.setAttribute("aria-label", `select ${r.name}`);
    box.addEventListener("change", () => {
      state.selected = box.checked
        ? [...state.selected, r.code]
        : state.selected.filter((c) => c !== r.code);
      changed("selection");
    });
    const c0 = document.createElement("td");
    c0.append(box);
    tr.append(c0, td(r.code, "code"), td(r.name));
    for (const v of scoreList(r.scores)) tr.append(td(fmt(v, 0), "num"));
    if (box.checked) tr.classList.add("picked");
    tr.addEventListener("click", (e) => {
      if (e.target !== box) box.click();
    });
    body.append(tr);
  }
}

export function initRegions(): void {
  $("region-search").addEventListener("input", render);
  $("region-clear").addEventListener("click", () => {
    state.selected = [];
    changed("selection");
  });
  on("selection", () => {
    $("region-selected").textContent = state.selected.length ? `selected: ${state.selected.join(", ")}` : "none selected";
    render();
  });
  api.regions()
    .then((r) => {
      state.regions = r;
      render();
      changed("regions");
    })
    .catch((e) => banner(`Could not read the regions: ${errorText(e)}`));
}
