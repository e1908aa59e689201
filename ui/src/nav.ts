// Switching screens (sidebar buttons, Alt+1..7).
import { $ } from "./dom";
import { changed } from "./state";

export const SCREENS = ["model", "regions", "tune", "runs", "compare", "chat", "export"];

/** Shows one screen and marks its button. */
export function go(screen: string): void {
  for (const s of SCREENS) {
    $(`screen-${s}`).hidden = s !== screen;
    const b = $(`nav-${s}`);
    b.classList.toggle("active", s === screen);
    if (s === screen) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  changed(`show:${screen}`);
}

export function initNav(): void {
  for (const s of SCREENS) $(`nav-${s}`).addEventListener("click", () => go(s));
  document.addEventListener("keydown", (e) => {
    if (e.altKey && e.key >= "1" && e.key <= String(SCREENS.length)) {
      e.preventDefault();
      go(SCREENS[Number(e.key) - 1]);
      $(`nav-${SCREENS[Number(e.key) - 1]}`).focus();
    }
  });
}
