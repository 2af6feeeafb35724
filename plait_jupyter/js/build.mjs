// Bundle the widget front-ends into ../static (committed, so nothing is fetched at render
// time and Python users need no npm): `npm install && npm run build`.
import { readFileSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const bundled = ["@dagrejs/dagre", "@dagrejs/graphlib"];

await build({
  entryPoints: {
    graph_view: "src/graph_view.js",
    progress: "src/progress.js",
    review: "src/review.js",
    evaluation: "src/evaluation.js",
  },
  outdir: "../static",
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "none",
  banner: {
    js:
      "// Built by plait_jupyter/js/build.mjs from plait_jupyter/js/src; do not edit.\n" +
      `// Bundles ${bundled.join(", ")} (MIT): see THIRD_PARTY_LICENSES.txt.`,
  },
  logLevel: "info",
});

const notices = bundled.map((name) => {
  const { version } = JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8"));
  return `${name} ${version}\n\n${readFileSync(`node_modules/${name}/LICENSE`, "utf8").trim()}\n`;
});
writeFileSync("../static/THIRD_PARTY_LICENSES.txt", notices.join("\n" + "-".repeat(72) + "\n\n"));
