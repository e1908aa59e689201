import { defineConfig } from "vite";

// The app is served by Tauri from the embedded ui/dist; no dev server, no remote content.
export default defineConfig({
  root: ".",
  base: "./",
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2021",
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
});
