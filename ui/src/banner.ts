// A dismissable alert line at the top of the window for errors that belong to no one screen.
import { $ } from "./dom";

/** Shows `text` in the banner (empty hides it). */
export function banner(text: string): void {
  const b = $("banner");
  b.textContent = text;
  b.hidden = !text;
  if (text) {
    const x = document.createElement("button");
    x.textContent = "×";
    x.className = "close";
    x.setAttribute("aria-label", "dismiss");
    x.addEventListener("click", () => banner(""));
    b.append(x);
  }
}
