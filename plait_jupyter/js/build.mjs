// Bundle the widget front-ends into ../static (committed, so nothing is fetched at render
// time and Python users need no npm): `npm ci && npm run build`. The bundles are not
// minified, so a review reads what changed; tests/test_widget_bundle.py rebuilds them into
// another directory (`node build.mjs OUTDIR`) and fails if they differ from the committed ones.
import { readFileSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const outdir = process.argv[2] ?? "../static";
const bundled = ["@dagrejs/dagre", "@dagrejs/graphlib"];

await build({
  entryPoints: {
    graph_view: "src/graph_view.js",
    progress: "src/progress.js",
    review: "src/review.js",
    evaluation: "src/evaluation.js",
  },
  outdir,
  bundle: true,
  format: "esm",
  minify: false,
  target: "es2020",
  legalComments: "none",
  banner: {
    js:
      "// Built by plait_jupyter/js/build.mjs from plait_jupyter/js/src; do not edit.\n" +
      `// Bundles ${bundled.join(", ")} (MIT): see THIRD_PARTY_LICENSES.txt.`,
  },
  logLevel: "warning",
});

const notices = bundled.map((name) => {
  const { version } = JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8"));
  return `${name} ${version}\n\n${readFileSync(`node_modules/${name}/LICENSE`, "utf8").trim()}\n`;
});
writeFileSync(`${outdir}/THIRD_PARTY_LICENSES.txt`, notices.join("\n" + "-".repeat(72) + "\n\n"));
