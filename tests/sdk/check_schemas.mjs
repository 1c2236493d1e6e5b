// Decode the sandbox's customer and invoice JSON with the schemas of Layer's own React SDK,
// @layerfi/components (the version pinned in package.json beside this file).
//
// The SDK does not export those schemas: they are module-private Effect `Schema.Struct`s inside its
// bundle, dist/esm/index.mjs. Importing the bundle would not reach them (and would pull in React),
// so this script reads the bundle as text, cuts out exactly the top-level `var NAME = ...;`
// statements named in STATEMENTS (a scan that skips strings, template literals, comments and
// regular expressions and stops at the first `;` outside all brackets), and evaluates them with
// the bindings the bundle imports from `effect` (`Schema as Schema$1`, `pipe as pipe$1`), taken
// from the copy of `effect` that @layerfi/components itself resolves. Anything it cannot find, or
// any identifier those statements use that the bundle declares or imports elsewhere and that is
// not supplied, stops the script with a message naming it: a new SDK version that moves or renames
// a schema fails loudly instead of checking less.
//
// Usage: node check_schemas.mjs [FILE]   (FILE, or standard input when absent or "-")
// Input:  {"customers": [customer, ...], "invoices": [invoice, ...]}
// Output (stdout, JSON):
//   {sdk: {name, version, bundle, effect_version},
//    decode_errors: [{schema, index, id, error, issues: [{path, message}]}],
//    coercions: [{schema, index, id, member, sent, decoded}],
//    expected_members: {Customer: {wire_name: {nullable, optional}}, Invoice: ..., InvoiceLineItem: ...,
//                       TransactionTag: ...}}
// `coercions` lists values the SDK accepts but silently replaces (an unknown status becomes
// "ACTIVE" for a customer, "SAVED" for an invoice). Exit status 0 whenever the documents were
// checked (whatever the verdicts); 2 when the schemas could not be extracted or the input read.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SDK = "@layerfi/components";

// The statements to evaluate, in bundle order. The three the sandbox is held to are CustomerSchema,
// InvoiceLineItemSchema and InvoiceSchema; the others are what those refer to.
const STATEMENTS = [
  "CustomerStatusSchema",
  "TransformedCustomerStatusSchema",
  "CustomerSchema",
  "TransactionTagSchema",
  "StableNameSchema",
  "AccountIdSchema",
  "AccountIdentifierSchema",
  "InvoiceStatus",
  "InvoiceStatusSchema",
  "TransformedInvoiceStatusSchema",
  "InvoiceLineItemSchema",
  "InvoiceSchema",
];

// Reported schema name -> extracted variable.
const REPORTED = {
  Customer: "CustomerSchema",
  Invoice: "InvoiceSchema",
  InvoiceLineItem: "InvoiceLineItemSchema",
  TransactionTag: "TransactionTagSchema",
};

// Members whose decoder maps values it does not know to a default instead of failing
// (TransformedCustomerStatusSchema, TransformedInvoiceStatusSchema): [schema, wire name, decoded name].
const COERCING = [
  ["Customer", "status", "status"],
  ["Invoice", "status", "status"],
];

class ExtractionError extends Error {}

function fail(message) {
  throw new ExtractionError(message);
}

// ---------------------------------------------------------------------------------------------
// A small JavaScript scanner: enough to find where a statement ends and which identifiers it uses.

const IDENT_START = /[A-Za-z_$]/;
const IDENT_PART = /[\w$]/;
// After one of these (or at the start), a `/` begins a regular expression rather than a division.
const REGEX_AFTER = new Set([..."(,=:[!&|?{};+-*%<>~^"]);
const REGEX_AFTER_WORDS = new Set(["return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else", "yield", "await"]);

// Calls onToken(kind, text, start) for identifiers ("ident") and punctuation ("punct"), skipping
// whitespace, comments, strings, template text and regular expressions; returns the index just past
// the first `;` at bracket depth 0 (when stopAtSemicolon), or text.length.
function scan(text, from, { stopAtSemicolon = false, onToken = () => {} } = {}) {
  const closers = []; // expected closing brackets; "}" entries with template: true resume a template
  let lastSignificant = ""; // last punctuation char or identifier, for the regex-or-division choice
  let i = from;
  const n = text.length;

  const scanTemplate = () => {
    // i is just past a backtick or a template's closing `}`: read text up to `${` or the closing backtick.
    while (i < n) {
      const c = text[i];
      if (c === "\\") { i += 2; continue; }
      if (c === "`") { i += 1; return; }
      if (c === "$" && text[i + 1] === "{") { i += 2; closers.push({ char: "}", template: true }); return; }
      i += 1;
    }
    fail(`unterminated template literal from offset ${from}`);
  };

  while (i < n) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") { i += 1; continue; }
    if (c === "/" && text[i + 1] === "/") { i = text.indexOf("\n", i); if (i < 0) i = n; continue; }
    if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) fail(`unterminated comment at offset ${i}`);
      i = end + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && text[j] !== c) {
        if (text[j] === "\\") j += 1;
        if (text[j] === "\n") fail(`unterminated string at offset ${i}`);
        j += 1;
      }
      if (j >= n) fail(`unterminated string at offset ${i}`);
      i = j + 1;
      lastSignificant = "string";
      continue;
    }
    if (c === "`") { i += 1; scanTemplate(); lastSignificant = "string"; continue; }
    if (c === "/" && (lastSignificant === "" || REGEX_AFTER.has(lastSignificant) || REGEX_AFTER_WORDS.has(lastSignificant))) {
      let j = i + 1;
      let inClass = false;
      while (j < n) {
        const d = text[j];
        if (d === "\\") { j += 2; continue; }
        if (d === "\n") fail(`unterminated regular expression at offset ${i}`);
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        j += 1;
      }
      j += 1;
      while (j < n && IDENT_PART.test(text[j])) j += 1; // flags
      i = j;
      lastSignificant = "regex";
      continue;
    }
    if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < n && IDENT_PART.test(text[j])) j += 1;
      const word = text.slice(i, j);
      onToken("ident", word, i);
      lastSignificant = word;
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(text[i + 1] ?? ""))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(text[j])) j += 1;
      i = j;
      lastSignificant = "number";
      continue;
    }
    // Punctuation.
    if (c === "(" || c === "[" || c === "{") {
      closers.push({ char: c === "(" ? ")" : c === "[" ? "]" : "}", template: false });
    } else if (c === ")" || c === "]" || c === "}") {
      const expected = closers.pop();
      if (!expected || expected.char !== c) {
        fail(`unbalanced '${c}' at offset ${i} (expected ${expected ? `'${expected.char}'` : "nothing"})`);
      }
      if (expected.template) { i += 1; scanTemplate(); lastSignificant = "string"; continue; }
    } else if (c === ";" && stopAtSemicolon && closers.length === 0) {
      onToken("punct", c, i);
      return i + 1;
    }
    onToken("punct", c, i);
    lastSignificant = c;
    i += 1;
  }
  if (closers.length) fail(`unclosed '${closers.at(-1).char}' at end of scanned text (from offset ${from})`);
  if (stopAtSemicolon) fail(`no ';' ends the statement starting at offset ${from}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// The bundle.

function locateSdk() {
  const here = dirname(fileURLToPath(import.meta.url));
  let bundle;
  try {
    bundle = fileURLToPath(import.meta.resolve(SDK)); // the "import" condition: dist/esm/index.mjs
  } catch (error) {
    fail(`cannot resolve ${SDK} from ${here} (${error.message}); run: npm ci --ignore-scripts --no-audit --no-fund --prefix tests/sdk`);
  }
  // The package's own package.json: the nearest one above the bundle that names the package.
  let dir = dirname(bundle);
  for (;;) {
    try {
      const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      if (meta.name === SDK) return { bundle, meta, packageDir: dir };
    } catch (error) {
      if (error.code !== "ENOENT") throw error;
    }
    const parent = dirname(dir);
    if (parent === dir) fail(`no package.json for ${SDK} above ${bundle}`);
    dir = parent;
  }
}

// The version in the package.json of the named package that holds `file`.
function packageVersion(file, name) {
  let dir = dirname(file);
  for (;;) {
    try {
      const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      if (meta.name === name) return meta.version;
    } catch (error) {
      if (error.code !== "ENOENT") throw error;
    }
    const parent = dirname(dir);
    if (parent === dir) fail(`no package.json for ${name} above ${file}`);
    dir = parent;
  }
}

function topLevelDeclarations(source) {
  const names = new Set();
  for (const m of source.matchAll(/^(?:export\s+)?(?:var|let|const|class|(?:async\s+)?function\*?)\s+([A-Za-z_$][\w$]*)/gm)) {
    names.add(m[1]);
  }
  return names;
}

// binding name -> {module, imported} for every `import ... from "..."` at the top of the bundle.
function importBindings(source) {
  const bindings = new Map();
  for (const m of source.matchAll(/^import\s+([^;]*?)\s+from\s+(["'])([^"']+)\2;?/gm)) {
    const [, clause, , module] = m;
    let rest = clause.trim();
    const named = rest.match(/\{([^}]*)\}/);
    if (named) {
      for (const part of named[1].split(",").map((s) => s.trim()).filter(Boolean)) {
        const [imported, local = imported] = part.split(/\s+as\s+/).map((s) => s.trim());
        bindings.set(local, { module, imported });
      }
      rest = rest.replace(named[0], "");
    }
    const namespace = rest.match(/\*\s+as\s+([A-Za-z_$][\w$]*)/);
    if (namespace) {
      bindings.set(namespace[1], { module, imported: "*" });
      rest = rest.replace(namespace[0], "");
    }
    const dflt = rest.replace(/,/g, " ").trim();
    if (dflt) bindings.set(dflt, { module, imported: "default" });
  }
  return bindings;
}

function extractStatement(source, name) {
  const pattern = new RegExp(`^(?:var|let|const)\\s+${name.replace(/\$/g, "\\$")}\\s*=`, "gm");
  const matches = [...source.matchAll(pattern)];
  if (matches.length === 0) fail(`${name}: no top-level 'var ${name} = ...' statement in the ${SDK} bundle`);
  if (matches.length > 1) fail(`${name}: ${matches.length} top-level declarations in the ${SDK} bundle, expected one`);
  const start = matches[0].index;
  const end = scan(source, start + matches[0][0].length, { stopAtSemicolon: true });
  return { name, start, code: source.slice(start, end) };
}

// Identifiers a statement reads from outside itself: not after `.`, and not an object key.
function referencedNames(code) {
  const tokens = [];
  scan(code, 0, { onToken: (kind, text, start) => tokens.push({ kind, text, start }) });
  const used = new Set();
  tokens.forEach((token, k) => {
    if (token.kind !== "ident") return;
    const before = tokens[k - 1];
    const after = tokens[k + 1];
    if (before && before.kind === "punct" && before.text === ".") return;
    // A property name could also follow `?.`, which the scanner gives as "?" then ".": covered above.
    if (after && after.text === ":" && before && (before.text === "{" || before.text === ",")) return;
    used.add(token.text);
  });
  return used;
}

function loadSchemas() {
  const { bundle, meta, packageDir } = locateSdk();
  const source = readFileSync(bundle, "utf8");
  const declared = topLevelDeclarations(source);
  const imports = importBindings(source);

  const statements = STATEMENTS.map((name) => extractStatement(source, name));
  for (let k = 1; k < statements.length; k += 1) {
    if (statements[k].start < statements[k - 1].start) {
      fail(`${statements[k].name} comes before ${statements[k - 1].name} in the bundle; STATEMENTS must follow bundle order`);
    }
  }

  const extracted = new Set(STATEMENTS);
  const needed = new Map(); // binding -> {module, imported}
  for (const { name, code } of statements) {
    for (const used of referencedNames(code.slice(code.indexOf("=") + 1))) {
      if (extracted.has(used)) continue;
      const binding = imports.get(used);
      if (binding) {
        if (binding.module !== "effect" && !binding.module.startsWith("effect/")) {
          fail(`${name} uses '${used}', imported from '${binding.module}', which this script does not supply`);
        }
        needed.set(used, binding);
        continue;
      }
      if (declared.has(used)) {
        fail(`${name} uses '${used}', declared elsewhere in the bundle: add it to STATEMENTS`);
      }
    }
  }
  if (!needed.has("Schema$1") && !needed.has("Schema")) fail("the extracted statements use no Schema binding from effect");

  // `effect` as @layerfi/components resolves it (its own dependency, the version npm installed for it).
  const requireFromSdk = createRequire(bundle);
  const names = [...needed.keys()];
  const values = names.map((local) => {
    const { module, imported } = needed.get(local);
    const loaded = requireFromSdk(module);
    if (imported === "*") return loaded;
    const value = imported === "default" ? loaded.default ?? loaded : loaded[imported];
    if (value === undefined) fail(`'${module}' has no export '${imported}' (bound as ${local} in the bundle)`);
    return value;
  });
  const effectVersion = packageVersion(requireFromSdk.resolve("effect"), "effect");

  const body = `"use strict";\n${statements.map((s) => s.code).join("\n")}\nreturn { ${STATEMENTS.join(", ")} };`;
  let schemas;
  try {
    schemas = new Function(...names, body)(...values);
  } catch (error) {
    fail(`evaluating the extracted statements failed: ${error.stack}`);
  }
  const Schema = requireFromSdk("effect").Schema;
  for (const [reported, variable] of Object.entries(REPORTED)) {
    if (!Schema.isSchema(schemas[variable])) fail(`${variable} did not evaluate to an Effect schema`);
  }
  return {
    schemas,
    effect: requireFromSdk("effect"),
    sdk: { name: meta.name, version: meta.version, bundle, effect_version: effectVersion },
  };
}

// ---------------------------------------------------------------------------------------------
// What each schema reads, on the wire.

function expectedMembers(effect, schema) {
  const { Schema, SchemaAST } = effect;
  const ast = Schema.encodedSchema(schema).ast;
  if (ast._tag !== "TypeLiteral") fail(`expected a struct, found ${ast._tag}`);
  const members = {};
  for (const signature of ast.propertySignatures) {
    const type = signature.type;
    const alternatives = SchemaAST.isUnion(type) ? type.types : [type];
    members[String(signature.name)] = {
      nullable: alternatives.some((t) => SchemaAST.isLiteral(t) && t.literal === null),
      optional: signature.isOptional,
    };
  }
  return members;
}

// ---------------------------------------------------------------------------------------------

function readInput(path) {
  const text = !path || path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
  const doc = text.trim() ? JSON.parse(text) : {};
  for (const key of ["customers", "invoices"]) {
    if (doc[key] !== undefined && !Array.isArray(doc[key])) throw new ExtractionError(`input: '${key}' must be an array`);
  }
  return { customers: doc.customers ?? [], invoices: doc.invoices ?? [] };
}

function main() {
  const { schemas, effect, sdk } = loadSchemas();
  const { Schema, Either, ParseResult } = effect;
  const input = readInput(process.argv[2]);

  const decodeErrors = [];
  const coercions = [];
  const decodeAll = (reported, items) => {
    const decode = Schema.decodeUnknownEither(schemas[REPORTED[reported]], { errors: "all" });
    items.forEach((item, index) => {
      const id = item && typeof item === "object" ? item.id ?? null : null;
      const result = decode(item);
      if (Either.isLeft(result)) {
        decodeErrors.push({
          schema: reported,
          index,
          id,
          error: ParseResult.TreeFormatter.formatErrorSync(result.left),
          issues: ParseResult.ArrayFormatter.formatErrorSync(result.left).map((issue) => ({
            path: issue.path.map(String),
            message: issue.message,
          })),
        });
        return;
      }
      const decoded = result.right;
      const check = (schemaName, sent, got, where) => {
        for (const [name, wire, field] of COERCING) {
          if (name === schemaName && sent[wire] !== got[field]) {
            coercions.push({ schema: reported, index, id, member: where + wire, sent: sent[wire], decoded: got[field] });
          }
        }
      };
      check(reported, item, decoded, "");
      if (reported === "Invoice" && item.customer && decoded.customer) check("Customer", item.customer, decoded.customer, "customer.");
    });
  };
  decodeAll("Customer", input.customers);
  decodeAll("Invoice", input.invoices);

  const expected = {};
  for (const [reported, variable] of Object.entries(REPORTED)) expected[reported] = expectedMembers(effect, schemas[variable]);

  process.stdout.write(`${JSON.stringify({ sdk, decode_errors: decodeErrors, coercions, expected_members: expected }, null, 2)}\n`);
}

try {
  main();
} catch (error) {
  if (error instanceof ExtractionError || error instanceof SyntaxError) {
    process.stderr.write(`check_schemas.mjs: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
