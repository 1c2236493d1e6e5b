// The Controls section: reset, scenarios, the clock, rules, export and import, each one of the
// existing control routes. Every outcome is said in the status region, a refusal with Layer's
// own description of what was wrong.
"use strict";

import { Stale, Unauthorized, control, session } from "./api.js";
import { element, say } from "./dom.js";

const value = (id) => document.getElementById(id).value.trim();
const number = (id) => (value(id) === "" ? undefined : Number(value(id)));

/** Leave out what was not filled in, so that the route's own defaults apply. */
function filled(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== ""));
}

function describeRule(rule) {
  const forced = [rule.code && `status ${rule.code}`, rule.example && `example ${rule.example}`,
    rule.delay_ms && `delay ${rule.delay_ms} ms`, rule.fault && `fault ${rule.fault}`].filter(Boolean).join(", ");
  const left = rule.remaining === null ? "" : `, ${rule.remaining} left`;
  return `${rule.id}: ${rule.method || "any method"} ${rule.path} → ${forced} (${rule.hits} hits${left})`;
}

export class Controls {
  /** `changed()` runs after anything that changes the namespace, to show it again;
      `trouble(error)` takes what only the page as a whole can answer (the admin token, another
      namespace shown meanwhile, the sandbox gone). */
  constructor(changed, trouble) {
    this.changed = changed;
    this.trouble = trouble;
    this.on("reset-form", () => control("reset", { method: "POST", body: filled({ seed: number("reset-seed") }) }),
      (d) => `Reset to scenario ${d.scenario}, seed ${d.seed}; rules cleared`);
    this.on("scenario-form", () => control(`scenarios/${encodeURIComponent(value("scenario-name"))}`,
      { method: "POST", body: filled({ seed: number("scenario-seed") }) }),
      (d) => `Loaded scenario ${d.scenario}, seed ${d.seed}`);
    this.on("clock-freeze", () => control("clock", { method: "POST", body: { freeze: true } }), (d) => `Clock frozen at ${d.now}`);
    this.on("clock-release", () => control("clock", { method: "POST", body: { system: true } }), (d) => `Clock follows the system again: ${d.now}`);
    this.on("clock-advance-form", () => control("clock", { method: "POST", body: { advance_seconds: number("clock-advance") } }),
      (d) => `Clock now ${d.now} (${d.mode})`);
    this.on("clock-freeze-at-form", () => control("clock", { method: "POST", body: { frozen_at: value("clock-frozen-at") } }),
      (d) => `Clock frozen at ${d.now}`);
    this.on("rule-form", () => control("rules", { method: "POST", body: filled({
      method: value("rule-method") || undefined, path: value("rule-path") || "*", code: number("rule-code"),
      example: value("rule-example"), delay: number("rule-delay"), fault: value("rule-fault"), count: number("rule-count"),
    }) }), (rule) => `Added ${describeRule(rule)}`);
    this.on("rules-clear", () => control("rules", { method: "DELETE" }), () => "Every rule removed");
    this.on("export-button", () => this.exportState(), (name) => `Exported to ${name}`, false);
    document.getElementById("import-file").addEventListener("change", (event) => this.importState(event.target));
  }

  /** Run `act` on the form's submit or the button's click, say how it went, show the change. */
  on(id, act, told, changes = true) {
    const target = document.getElementById(id);
    target.addEventListener(target.tagName === "FORM" ? "submit" : "click", async (event) => {
      event.preventDefault();
      let done;
      try {
        done = await act();
      } catch (error) {
        this.refused(error);
        return;
      }
      say("control-status", told(done));
      if (changes) await this.changed().catch(this.trouble);
    });
  }

  /** A control route's refusal, in its own words; the page's troubles to the page. */
  refused(error) {
    if (error instanceof Unauthorized || error instanceof Stale) this.trouble(error);
    else say("control-status", `Refused: ${error.message}`, true);
  }

  async load() {
    const [scenarios, rules] = await Promise.all([control("scenarios"), control("rules")]);
    const picker = document.getElementById("scenario-name");
    const chosen = picker.value;
    picker.replaceChildren(...scenarios.map((s) => element("option", { value: s.name, title: s.description }, s.name)));
    picker.value = chosen || session.scenario;
    this.showRules(rules);
  }

  async loadRules() {
    this.showRules(await control("rules"));
  }

  showRules(rules) {
    const list = document.getElementById("rules-list");
    list.replaceChildren(...rules.map((rule) => {
      const remove = element("button", { type: "button", "aria-label": `Remove ${rule.id}` }, "Remove");
      remove.addEventListener("click", async () => {
        try {
          await control(`rules/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
        } catch (error) {
          this.refused(error);
          return;
        }
        say("control-status", `Removed ${rule.id}`);
        await this.loadRules().catch(this.trouble);
      });
      return element("li", { "data-rule": rule.id }, element("span", {}, describeRule(rule)), " ", remove);
    }));
    document.getElementById("rules-empty").hidden = rules.length > 0;
  }

  /** The namespace's state as a file the browser saves (an import takes it back). */
  async exportState() {
    const exported = await control("state");
    const name = `layer-sandbox-${session.namespace}.json`;
    const link = element("a", { href: URL.createObjectURL(new Blob([JSON.stringify(exported, null, 2)], { type: "application/json" })), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    return name;
  }

  async importState(input) {
    const file = input.files[0];
    if (!file) return;
    let done;
    try {
      let document_;
      try {
        document_ = JSON.parse(await file.text());
      } catch (error) {
        throw new Error(`${file.name} is not JSON: ${error.message}`);
      }
      done = await control("state", { method: "PUT", body: document_ });
    } catch (error) {
      this.refused(error);
      return;
    } finally {
      input.value = "";
    }
    say("control-status", `Imported ${file.name}: scenario ${done.scenario}, seed ${done.seed}`);
    await this.changed().catch(this.trouble);
  }
}
