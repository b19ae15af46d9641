// Builds src/main.js (and the CSS it imports) into demo/static/demo/ (git-ignored), where
// Django's staticfiles finds it: demo.js and demo.css, loaded by templates/demo/index.html.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/static/demo/",
  build: {
    outDir: fileURLToPath(new URL("../static/demo", import.meta.url)),
    emptyOutDir: true,
    target: "es2020",
    chunkSizeWarningLimit: 800, // one bundle of ~570 kB (Tiptap, Yjs, socket.io-client): fine for a demo
    rollupOptions: {
      input: fileURLToPath(new URL("src/main.js", import.meta.url)),
      output: {
        entryFileNames: "demo.js",
        chunkFileNames: "demo-[name].js",
        assetFileNames: "demo[extname]",
      },
    },
  },
});
