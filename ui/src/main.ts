// Entry point: wires the screens together and opens the Model screen.
import "./style.css";
import { initNav, go } from "./nav";
import { initModel } from "./screens/model";
import { initRegions } from "./screens/regions";
import { initTune } from "./screens/tune";
import { initRuns } from "./screens/runs";
import { initCompare } from "./screens/compare";
import { initChat } from "./screens/chat";
import { initExport } from "./screens/export";

initNav();
initChat();
initExport();
initRuns();
initCompare();
initTune();
initRegions();
initModel();
go("model");
document.body.dataset.ready = "true";
