// The dashboard: what a namespace holds, read through the control routes under /__sandbox/ only
// (never /v1, so the page adds nothing to the API's traffic, and control routes are not
// journaled). Plain JavaScript, no build step, nothing fetched from another origin.
"use strict";

const PAGE_ROWS = 200;  // rows drawn at first; "Show more" draws the rest
const state = { namespace: "default", kind: "credits", sort: null, descending: false, shown: PAGE_ROWS, data: null };

function element(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") made.className = value; else made.setAttribute(name, value);
  }
  for (const child of children) made.append(child);
  return made;
}

async function control(path) {
  const answer = await fetch(path, { headers: { "X-Sandbox-Namespace": state.namespace, "Accept": "application/json" } });
  if (!answer.ok) throw new Error(`${path}: ${answer.status}`);
  return (await answer.json()).data;
}

function money(cents) {
  return (cents / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function jsonCell(label, record) {
  // The row's record as JSON, one click (or Enter) away.
  return element("details", {}, element("summary", {}, label), element("pre", {}, JSON.stringify(record, null, 2)));
}

// Each table: its columns (label, value for sorting and filtering, cell, numeric).
const TABLES = {
  credits: {
    rows: (business) => business.credits,
    columns: [
      ["Id", (c) => c.id, (c) => jsonCell(c.id.slice(0, 8), c)],
      ["Customer", (c) => c.customer.individual_name || c.customer.company_name || c.customer.id],
      ["Total", (c) => c.line_items.reduce((sum, line) => sum + line.amount, 0), null, true],
      ["Allocated", (c) => c.allocations.reduce((sum, a) => sum + a.amount, 0), null, true],
      ["Memo", (c) => c.memo || ""],
      ["Created", (c) => c.created_at],
      ["Deleted", (c) => c.deleted_at || ""],
    ],
    deleted: (c) => c.deleted_at !== null,
  },
  invoices: {
    rows: (business) => business.invoices,
    columns: [
      ["Id", (i) => i.id, (i) => jsonCell(i.id.slice(0, 8), i)],
      ["Number", (i) => i.invoice_number || ""],
      ["Customer", (i) => i.customer_id],
      ["Total", (i) => i.total, null, true],
      ["Outstanding", (i) => i.outstanding_balance, null, true],
      ["Sent", (i) => i.sent_at || ""],
    ],
  },
  customers: {
    rows: (business) => business.customers,
    columns: [
      ["Id", (c) => c.id, (c) => jsonCell(c.id.slice(0, 8), c)],
      ["Name", (c) => c.individual_name || ""],
      ["Company", (c) => c.company_name || ""],
      ["Email", (c) => c.email || ""],
      ["External id", (c) => c.external_id || ""],
      ["Status", (c) => c.status],
    ],
  },
};

function currentBusiness() {
  const chosen = document.getElementById("business").value;
  return state.data.businesses.find((b) => b.id === chosen) || state.data.businesses[0];
}

function renderTable() {
  const area = document.getElementById("table-area");
  const business = currentBusiness();
  const table = TABLES[state.kind];
  const needle = document.getElementById("filter").value.trim().toLowerCase();
  let rows = table.rows(business);
  if (needle) {
    rows = rows.filter((row) => table.columns.some(([, value]) => String(value(row)).toLowerCase().includes(needle)));
  }
  if (state.sort !== null) {
    const value = table.columns[state.sort][1];
    rows = [...rows].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0) * (state.descending ? -1 : 1));
  }
  const head = element("tr");
  table.columns.forEach(([label, , , numeric], position) => {
    const sorted = state.sort === position ? (state.descending ? "descending" : "ascending") : "none";
    const button = element("button", { type: "button" }, label);
    button.addEventListener("click", () => {
      state.descending = state.sort === position ? !state.descending : false;
      state.sort = position;
      renderTable();
    });
    head.append(element("th", { scope: "col", "aria-sort": sorted, class: numeric ? "number" : "" }, button));
  });
  const body = element("tbody");
  for (const row of rows.slice(0, state.shown)) {
    const line = element("tr", { class: table.deleted && table.deleted(row) ? "deleted" : "" });
    for (const [, value, cell, numeric] of table.columns) {
      const shown = cell ? cell(row) : numeric ? money(value(row)) : String(value(row));
      line.append(element("td", { class: numeric ? "number" : "" }, shown));
    }
    body.append(line);
  }
  const caption = element("caption", {}, `${rows.length} ${document.getElementById(`tab-${state.kind}`).textContent.toLowerCase()}`);
  area.replaceChildren(element("table", { id: `${state.kind}-table` }, caption, element("thead", {}, head), body));
  if (rows.length > state.shown) {
    const more = element("button", { type: "button", id: "show-more" }, `Show all ${rows.length} rows`);
    more.addEventListener("click", () => { state.shown = Infinity; renderTable(); });
    area.append(more);
  }
}

async function loadNamespace() {
  const [health, clock, summaries, exported] = await Promise.all([
    control("health"), control("clock"), control("businesses"), control("state")]);
  // Summaries carry live invoice balances; the export carries every credit, deleted ones too.
  const credits = new Map(exported.businesses.map((b) => [b.id, b.customer_credits]));
  state.data = { businesses: summaries.map((b) => ({ ...b, credits: credits.get(b.id) || [] })) };
  document.getElementById("namespace-info").textContent =
    `scenario ${health.scenario}, seed ${health.seed}, clock ${clock.mode} at ${clock.now}`;
  const select = document.getElementById("business");
  const previous = select.value;
  select.replaceChildren(...state.data.businesses.map((b) => element("option", { value: b.id }, `${b.name} (${b.id.slice(0, 8)})`)));
  if (state.data.businesses.some((b) => b.id === previous)) select.value = previous;
  renderCounts();
  renderTable();
}

function renderCounts() {
  const business = currentBusiness();
  const live = business.credits.filter((c) => c.deleted_at === null).length;
  document.getElementById("counts").textContent =
    `${business.customers.length} customers, ${business.invoices.length} invoices, ` +
    `${live} customer credits (${business.credits.length - live} deleted)`;
}

async function loadNamespaces() {
  const listed = await control("namespaces");
  const names = listed.map((n) => n.namespace).sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : a.localeCompare(b)));
  const select = document.getElementById("namespace");
  select.replaceChildren(...names.map((name) => element("option", { value: name }, name)));
  const asked = new URLSearchParams(location.search).get("namespace");
  state.namespace = names.includes(asked) ? asked : names[0];
  select.value = state.namespace;
}

async function start() {
  document.getElementById("namespace").addEventListener("change", (event) => {
    state.namespace = event.target.value;
    state.shown = PAGE_ROWS;
    loadNamespace().catch(report);
  });
  document.getElementById("business").addEventListener("change", () => { state.shown = PAGE_ROWS; renderCounts(); renderTable(); });
  document.getElementById("filter").addEventListener("input", renderTable);
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[role=tab]")) other.setAttribute("aria-selected", String(other === tab));
      state.kind = tab.dataset.kind;
      state.sort = null;
      state.shown = PAGE_ROWS;
      renderTable();
    });
  }
  await loadNamespaces();
  const started = performance.now();
  await loadNamespace();
  document.body.dataset.firstTableMs = String(Math.round(performance.now() - started));
}

function report(error) {
  document.getElementById("counts").textContent = `The sandbox did not answer: ${error.message}`;
}

start().catch(report);
