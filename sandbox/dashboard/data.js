// The Data section: a namespace's businesses, and per business its customer credits (live and
// deleted, with allocations), invoices and customers, read from GET businesses (live invoice
// balances) and GET state (every credit, deleted ones too).
"use strict";

import { control } from "./api.js";
import { Table, block, element, moment, money } from "./dom.js";

const name = (customer) => customer.individual_name || customer.company_name || customer.id;
const sum = (items) => items.reduce((total, item) => total + item.amount, 0);
const short = (id) => id.slice(0, 8);

const TABLES = {
  credits: new Table({
    id: "credits-table", noun: "customer credits", key: (c) => c.id, details: block,
    rowClass: (c) => (c.deleted_at ? "deleted" : null),
    columns: [
      { label: "Id", value: (c) => c.id, cell: (c) => element("code", { title: c.id }, short(c.id)) },
      { label: "Customer", value: (c) => name(c.customer) },
      { label: "Total", value: (c) => sum(c.line_items), cell: (c) => money(sum(c.line_items)), numeric: true },
      { label: "Allocated", value: (c) => sum(c.allocations), cell: (c) => money(sum(c.allocations)), numeric: true },
      { label: "Memo", value: (c) => c.memo || "" },
      { label: "Created", value: (c) => c.created_at, cell: (c) => moment(c.created_at) },
      { label: "Deleted", value: (c) => c.deleted_at || "", cell: (c) => moment(c.deleted_at) },
    ],
  }),
  invoices: new Table({
    id: "invoices-table", noun: "invoices", key: (i) => i.id, details: block,
    columns: [
      { label: "Id", value: (i) => i.id, cell: (i) => element("code", { title: i.id }, short(i.id)) },
      { label: "Number", value: (i) => i.invoice_number || "" },
      { label: "Customer", value: (i) => i.customer_name },
      { label: "Total", value: (i) => i.total, cell: (i) => money(i.total), numeric: true },
      { label: "Outstanding", value: (i) => i.outstanding_balance, cell: (i) => money(i.outstanding_balance), numeric: true },
      { label: "Sent", value: (i) => i.sent_at || "", cell: (i) => moment(i.sent_at) },
    ],
  }),
  customers: new Table({
    id: "customers-table", noun: "customers", key: (c) => c.id, details: block,
    columns: [
      { label: "Id", value: (c) => c.id, cell: (c) => element("code", { title: c.id }, short(c.id)) },
      { label: "Name", value: (c) => c.individual_name || "" },
      { label: "Company", value: (c) => c.company_name || "" },
      { label: "Email", value: (c) => c.email || "" },
      { label: "External id", value: (c) => c.external_id || "" },
      { label: "Status", value: (c) => c.status },
    ],
  }),
};

export class DataView {
  constructor() {
    this.businesses = [];
    this.read = null;  // what the last load read, as text
    this.kind = "credits";
    this.picker = document.getElementById("business");
    this.filter = document.getElementById("filter");
    this.area = document.getElementById("table-area");
    this.picker.addEventListener("change", () => { this.restartTables(); this.draw(); });
    this.filter.addEventListener("input", () => this.draw());
    const tabs = [...document.querySelectorAll("#data [role=tab]")];
    tabs.forEach((tab, position) => {
      tab.addEventListener("click", () => this.pick(tabs, tab));
      // The tab list's keys (WAI-ARIA tabs): arrows move and select, Home and End jump.
      tab.addEventListener("keydown", (event) => {
        const to = { ArrowRight: position + 1, ArrowLeft: position - 1, Home: 0, End: tabs.length - 1 }[event.key];
        if (to === undefined) return;
        event.preventDefault();
        const next = tabs[(to + tabs.length) % tabs.length];
        this.pick(tabs, next);
        next.focus();
      });
    });
  }

  pick(tabs, chosen) {
    for (const tab of tabs) {
      tab.setAttribute("aria-selected", String(tab === chosen));
      tab.tabIndex = tab === chosen ? 0 : -1;
    }
    this.kind = chosen.dataset.kind;
    this.area.setAttribute("aria-labelledby", chosen.id);
    TABLES[this.kind].restart();
    this.draw();
  }

  /** Another namespace: read from scratch, tables back to their start. */
  restart() {
    this.read = null;
    this.restartTables();
  }

  /** Another business: the same reading, tables back to their start. */
  restartTables() {
    for (const table of Object.values(TABLES)) table.restart();
  }

  /** Read the namespace again; drawn again only when something changed, keeping the tables'
      sort, open rows and business (and the reader's place and focus). */
  async load() {
    const answers = await Promise.all([control("businesses", { text: true }), control("state", { text: true })]);
    const read = answers.map((answer) => answer.text).join("\n");
    if (read === this.read) return;
    this.read = read;
    const [summaries, exported] = answers.map((answer) => answer.data);
    const credits = new Map(exported.businesses.map((b) => [b.id, b.customer_credits]));
    this.businesses = summaries.map((b) => {
      const names = new Map(b.customers.map((c) => [c.id, name(c)]));
      return { ...b, credits: credits.get(b.id) || [],
               invoices: b.invoices.map((i) => ({ ...i, customer_name: names.get(i.customer_id) || i.customer_id })) };
    });
    const previous = this.picker.value;
    this.picker.replaceChildren(...this.businesses.map((b) => element("option", { value: b.id }, `${b.name} (${short(b.id)})`)));
    if (this.businesses.some((b) => b.id === previous)) this.picker.value = previous;
    this.draw();
  }

  business() {
    return this.businesses.find((b) => b.id === this.picker.value) || this.businesses[0];
  }

  draw() {
    const business = this.business();
    if (!business) {
      document.getElementById("counts").textContent = "This namespace holds no business.";
      this.area.replaceChildren();
      return;
    }
    const live = business.credits.filter((c) => c.deleted_at === null).length;
    document.getElementById("counts").textContent =
      `${business.customers.length} customers, ${business.invoices.length} invoices, ` +
      `${live} customer credits (${business.credits.length - live} deleted)`;
    const table = TABLES[this.kind];
    let rows = business[this.kind];
    const needle = this.filter.value.trim().toLowerCase();
    if (needle) {
      rows = rows.filter((row) => table.columns.some(({ value }) => String(value(row)).toLowerCase().includes(needle)));
    }
    table.draw(this.area, rows);
    if (!document.body.dataset.firstTableMs) {
      // Since the page was asked for: its files, the reads and the first table page drawn.
      document.body.dataset.firstTableMs = String(Math.round(performance.now()));
    }
  }
}
