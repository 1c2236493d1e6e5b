// The Traffic section: the namespace's journal (GET requests), newest first, polled while the tab
// is visible; each entry opens to its violations (field and problem) and both bodies.
"use strict";

import { control } from "./api.js";
import { Table, block, element } from "./dom.js";

const KEPT = 500;  // entries the page holds (the journal itself may hold more)

/** The contract filter's values an entry answers to (the journal's own `contract=` filter). */
function outcomes(entry) {
  const checks = [entry.request_validation, entry.response_validation];
  if (checks.includes("fail")) return ["fail", "violation"];
  const outcome = checks.includes("pass") ? "pass" : "skipped";
  return entry.operation_id === null ? [outcome, "violation"] : [outcome];
}

const failed = (entry) => entry.status === null || entry.status >= 400 || outcomes(entry).includes("fail");

/** Field and problem of each error the answer gave: a contract violation lists every one. */
function violations(entry) {
  const errors = (entry.response_body && entry.response_body.errors) || [];
  const found = [];
  for (const error of errors) {
    const meta = error.meta || {};
    for (const line of meta.violations || []) {
      const split = line.indexOf(": ");
      found.push(split > 0 ? [line.slice(0, split), line.slice(split + 2)] : ["(root)", line]);
    }
    if (!meta.violations) found.push([meta.field || "(root)", error.description]);
  }
  if (!found.length && entry.error) found.push([entry.field || "(root)", entry.error]);
  return found;
}

function details(entry) {
  const parts = [];
  const found = violations(entry);
  if (found.length) {
    parts.push(element("h3", {}, "Violations"), element("table", { class: "violations" },
      element("thead", {}, element("tr", {}, element("th", { scope: "col" }, "Field"), element("th", { scope: "col" }, "Problem"))),
      element("tbody", {}, ...found.map(([field, problem]) => element("tr", {}, element("td", {}, element("code", {}, field)), element("td", {}, problem))))));
  }
  const facts = [`request ${entry.request_validation}, response ${entry.response_validation}`,
    entry.forced ? `forced: ${entry.forced}` : null, entry.fault ? `fault: ${entry.fault}` : null,
    entry.bodies_withheld ? `bodies withheld: ${entry.bodies_withheld}` : null,
    entry.bodies_dropped ? "bodies dropped (the journal's body budget)" : null].filter(Boolean);
  parts.push(element("p", {}, `Contract: ${facts.join("; ")}`));
  for (const [title, body] of [["Request body", entry.request_body], ["Response body", entry.response_body]]) {
    parts.push(element("h3", {}, title), block(body === null ? "(none)" : body));
  }
  return element("div", {}, ...parts);
}

const time = (at) => (at || "").slice(11, 23);

export class Traffic {
  constructor() {
    this.entries = [];  // newest first
    this.last = null;
    this.inflight = null;  // the fetch on its way
    this.operations = new Set();
    this.area = document.getElementById("traffic-area");
    this.filters = ["traffic-status", "traffic-operation", "traffic-contract"].map((id) => document.getElementById(id));
    for (const filter of this.filters) filter.addEventListener("change", () => this.draw());
    this.table = new Table({
      id: "traffic-table", noun: "requests", key: (e) => String(e.id), details, firstRows: 100,
      rowClass: (e) => (failed(e) ? "failed" : null),
      columns: [
        { label: "Time (UTC)", value: (e) => e.id, cell: (e) => element("time", { datetime: e.at }, time(e.at)) },
        { label: "Method", value: (e) => e.method },
        { label: "Path", value: (e) => e.path + (e.query ? `?${e.query}` : ""), cell: (e) => element("code", { class: "path" }, e.path + (e.query ? `?${e.query}` : "")) },
        { label: "Status", value: (e) => e.status ?? 0, cell: (e) => String(e.status ?? "none"), numeric: true },
        { label: "Operation", value: (e) => e.operation_id || "(not in the contract)" },
        { label: "Contract", value: (e) => outcomes(e)[0] },
        { label: "ms", value: (e) => e.duration_ms, numeric: true },
      ],
    });
  }

  /** Another namespace: its own journal from the start. */
  restart() {
    this.entries = [];
    this.last = null;
    this.inflight = null;
    this.table.restart();
    this.operations.clear();
    this.offerOperations([]);
  }

  /** Whether these entries may have changed the data: a write that was answered. */
  static changedData(entries) {
    return entries.some((e) => !["GET", "HEAD", "OPTIONS"].includes(e.method) && e.status !== null && e.status < 500);
  }

  /** Fetch and show what is new; the new entries, oldest first. One fetch at a time: a second
      caller meanwhile shares the first one's. */
  poll() {
    if (!this.inflight) {
      const asked = this.inflight = this.fetchNew().finally(() => {
        if (this.inflight === asked) this.inflight = null;
      });
    }
    return this.inflight;
  }

  async fetchNew() {
    const fresh = await control(`requests?limit=${KEPT}` + (this.last === null ? "" : `&after=${this.last}`));
    const first = this.last === null;
    const unseen = first ? fresh : fresh.filter((e) => e.id > this.last);
    if (first || unseen.length) this.draw([...unseen]);
    if (this.last === null) this.last = 0;  // an empty journal: from its first entry on (ids start at 1)
    return unseen;
  }

  draw(fresh = []) {
    if (fresh.length) {
      this.last = fresh[fresh.length - 1].id;
      this.entries = [...fresh.reverse(), ...this.entries].slice(0, KEPT);
      this.offerOperations(fresh);
    }
    const [status, operation, contract] = this.filters.map((f) => f.value);
    const rows = this.entries.filter((e) =>
      (!status || (status === "none" ? e.status === null : e.status !== null && String(e.status)[0] === status[0]))
      && (!operation || e.operation_id === operation)
      && (!contract || outcomes(e).includes(contract)));
    this.table.draw(this.area, rows);
  }

  offerOperations(entries) {
    const known = this.operations.size;
    for (const e of entries) if (e.operation_id) this.operations.add(e.operation_id);
    if (this.operations.size === known && entries.length) return;
    const picker = this.filters[1];
    const chosen = picker.value;
    picker.replaceChildren(element("option", { value: "" }, "any"),
      ...[...this.operations].sort().map((op) => element("option", { value: op }, op)));
    picker.value = this.operations.has(chosen) ? chosen : "";
  }
}
