// Building the page: elements, and the one table every list on it uses (sort by any column,
// rows that open to their details, the first rows drawn at once and the rest on request).
"use strict";

/** An element with attributes (null or false ones left out) and children (null ones too). */
export function element(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") made.className = value; else made.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) made.append(child);
  return made;
}

/** Say something to everyone, screen readers included (the region is aria-live). */
export function say(id, text, failed = false) {
  const region = document.getElementById(id);
  region.textContent = text;
  region.classList.toggle("failed", failed);
}

const DOLLARS = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

export function money(cents) {
  return DOLLARS.format(cents / 100);
}

/** A moment as the sandbox writes it (ISO 8601, UTC), shown to the minute; all of it on hover. */
export function moment(at) {
  return at ? element("time", { datetime: at, title: at }, `${at.slice(0, 10)} ${at.slice(11, 16)}`) : "";
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** A record or body as text in a box of its own, which scrolls when long: focusable, so that
    the keyboard can scroll it too. */
export function block(value) {
  return element("pre", { tabindex: "0" }, typeof value === "string" ? value : json(value));
}

/**
 * A sortable table. `columns`: {label, value (sorts), cell (shows; default: the value), numeric}.
 * `key(row)` names a row, so rows opened stay open when the table is drawn again; `details(row)`
 * builds what a row opens to, only when it is opened (a thousand rows cost nothing until then).
 */
export class Table {
  constructor({ id, noun, columns, key, details, rowClass = () => null, firstRows = 200 }) {
    Object.assign(this, { id, noun, columns, key, details, rowClass, firstRows });
    this.sort = null;
    this.descending = false;
    this.shown = firstRows;
    this.open = new Set();
  }

  /** Back to the first rows, unsorted, nothing open: another business or namespace. */
  restart() {
    this.sort = null;
    this.descending = false;
    this.shown = this.firstRows;
    this.open.clear();
  }

  draw(area, rows) {
    // What had the keyboard's focus gets it back in the new table (a sort button, a row's opener).
    const focused = area.contains(document.activeElement) ? document.activeElement.dataset.focus : undefined;
    if (this.sort !== null) {
      const value = this.columns[this.sort].value;
      const order = this.descending ? -1 : 1;
      rows = [...rows].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0) * order);
    }
    const head = element("tr", {}, element("th", { scope: "col" }, element("span", { class: "visually-hidden" }, "Details")));
    this.columns.forEach(({ label, numeric }, position) => {
      const button = element("button", { type: "button", "data-focus": `sort-${position}` }, label);
      button.addEventListener("click", () => {
        this.descending = this.sort === position ? !this.descending : false;
        this.sort = position;
        this.draw(area, rows);
      });
      const sorted = this.sort === position ? (this.descending ? "descending" : "ascending") : null;
      head.append(element("th", { scope: "col", "aria-sort": sorted, class: numeric ? "number" : null }, button));
    });
    const body = element("tbody");
    for (const row of rows.slice(0, this.shown)) {
      body.append(...this.rowLines(row));
    }
    const table = element("table", { id: this.id }, element("caption", {}, `${rows.length} ${this.noun}`),
      element("thead", {}, head), body);
    area.replaceChildren(table);
    if (rows.length > this.shown) {
      const more = element("button", { type: "button", class: "more" }, `Show all ${rows.length} rows`);
      more.addEventListener("click", () => {
        const next = `open-${this.key(rows[this.shown])}`;  // the first row it adds takes the focus
        this.shown = Infinity;
        this.draw(area, rows);
        this.focus(area, next);
      });
      area.append(more);
    }
    if (focused !== undefined) this.focus(area, focused);
  }

  focus(area, name) {
    (area.querySelector(`[data-focus="${CSS.escape(name)}"]`) || area).focus();
  }

  rowLines(row) {
    const key = this.key(row);
    const opener = element("button", { type: "button", class: "opener", "aria-expanded": "false",
      "aria-label": `Details of ${key}`, "data-focus": `open-${key}` }, "▸");
    const line = element("tr", { class: this.rowClass(row), "data-key": key }, element("td", {}, opener));
    for (const { value, cell, numeric } of this.columns) {
      line.append(element("td", { class: numeric ? "number" : null }, cell ? cell(row) : String(value(row) ?? "")));
    }
    const more = element("tr", { class: "details", hidden: true },
      element("td", { colspan: String(this.columns.length + 1) }));
    const toggle = (opened) => {
      opener.setAttribute("aria-expanded", String(opened));
      opener.textContent = opened ? "▾" : "▸";
      more.hidden = !opened;
      if (opened && !more.firstChild.firstChild) more.firstChild.append(this.details(row));
      if (opened) this.open.add(key); else this.open.delete(key);
    };
    opener.addEventListener("click", () => toggle(more.hidden));
    if (this.open.has(key)) toggle(true);
    return [line, more];
  }
}
