// The dashboard's start: the admin token, the namespace picker, and one polling loop that keeps
// the traffic, rules, clock and data current while the tab is visible. Plain JavaScript modules,
// no build step, nothing fetched from another origin; see api.js for why it adds no traffic.
"use strict";

import { Stale, Unauthorized, control, session, takeTokenFromLink, turnTo, useToken } from "./api.js";
import { Controls } from "./controls.js";
import { DataView } from "./data.js";
import { element, say } from "./dom.js";
import { Traffic } from "./traffic.js";

const POLL_MS = 1000;
const SLOW_ROUND = 5;  // every fifth poll also reads the namespace list, the data and the rules

/** The namespace shown was deleted (reading it would make it again): back to the default one. */
class Gone extends Error {}

const data = new DataView();
const traffic = new Traffic();
const controls = new Controls(showNamespace, trouble);
let polls = 0;
let waiting = null;   // the next poll's timer
let polling = false;  // a poll is on its way (it sets the next one's timer)
let whole = false;    // the namespace shown has been read whole (else the next poll reads it all)

async function loadNamespaces() {
  const names = (await control("namespaces")).map((n) => n.namespace)
    .sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : a.localeCompare(b)));
  if (!names.includes(session.namespace)) {
    // Reading a namespace would make it: one asked for that is not there is not shown.
    say("page-status", `No namespace ${session.namespace}; showing ${names[0]}`);
    switchTo(names[0]);
  }
  const picker = document.getElementById("namespace");
  if (picker.options.length !== names.length || [...picker.options].some((o, i) => o.value !== names[i])) {
    picker.replaceChildren(...names.map((name) => element("option", { value: name }, name)));
  }
  picker.value = session.namespace;
}

/** The namespace's scenario and seed; Gone when it was deleted. Health never makes a namespace,
    the other routes would: they are read only after it. */
async function checkNamespace() {
  const health = await control("health");
  if (!health.exists) throw new Gone(`The namespace ${session.namespace} was deleted`);
  session.scenario = health.scenario;
  document.getElementById("namespace-info").textContent = `scenario ${health.scenario}, seed ${health.seed}`;
}

async function showClock() {
  const clock = await control("clock");
  document.getElementById("clock-now").textContent = `${clock.mode === "system" ? "system time" : clock.mode}, ${clock.now}`;
}

/** Everything shown about the namespace, read again. */
async function showNamespace() {
  await checkNamespace();
  await Promise.all([showClock(), data.load(), controls.load()]);
}

/** The namespace list, then all of the namespace shown, its traffic from the start. */
async function readWhole() {
  await loadNamespaces();
  traffic.restart();
  await Promise.all([showNamespace(), traffic.poll()]);
  document.body.dataset.ready = "";  // (tests wait for it)
}

/** What is new since the last poll: traffic at once, and what it may have changed. */
async function readNew() {
  const [fresh] = await Promise.all([traffic.poll(), checkNamespace()]);
  // A write shows at once; what changed without a request (fixtures, a reset by a test harness:
  // control routes are not journaled) at the next slow round.
  const slowRound = ++polls % SLOW_ROUND === 0;
  const reads = [showClock()];
  if (slowRound || Traffic.changedData(fresh)) reads.push(data.load());
  if (slowRound || fresh.length) reads.push(controls.loadRules());  // rules count their hits
  if (slowRound) reads.push(loadNamespaces());
  await Promise.all(reads);
}

function schedule(delay = POLL_MS) {
  clearTimeout(waiting);
  waiting = setTimeout(poll, delay);
}

/** One poll at a time, while the tab is visible (showing it again starts polling again). */
async function poll() {
  if (polling || document.hidden) return;
  polling = true;
  try {
    if (whole) await readNew(); else await readWhole();
    whole = true;
    const status = document.getElementById("page-status");
    if (status.classList.contains("failed")) say("page-status", "");  // it answers again
    schedule();
  } catch (error) {
    trouble(error);
  } finally {
    polling = false;
  }
}

function switchTo(name) {
  turnTo(name);
  const address = new URL(location.href);
  address.searchParams.set("namespace", name);
  history.replaceState(null, "", address);
  data.restart();
  traffic.restart();
  whole = false;
}

/** What went wrong, said; and when to poll again. */
function trouble(error) {
  if (error instanceof Stale) {
    schedule(0);  // the namespace changed meanwhile: read the new one now
  } else if (error instanceof Unauthorized) {
    clearTimeout(waiting);  // until the token is given
    document.getElementById("login").hidden = false;
    document.getElementById("admin-token").focus();
    say("page-status", session.token ? `The admin token was refused: ${error.message}`
      : "This sandbox runs with --admin-token: enter it to see the dashboard.", true);
  } else if (error instanceof Gone) {
    say("page-status", `${error.message}; showing default`);
    switchTo("default");
    schedule(0);
  } else {
    say("page-status", `The sandbox did not answer: ${error.message}`, true);
    whole = false;  // it may have restarted meanwhile (its journal's ids with it)
    schedule();
  }
}

document.getElementById("namespace").addEventListener("change", (event) => {
  switchTo(event.target.value);
  say("page-status", "");
  schedule(0);
});
document.getElementById("refresh").addEventListener("click", () => {
  whole = false;
  schedule(0);
});
document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  useToken(document.getElementById("admin-token").value.trim());
  document.getElementById("login").hidden = true;
  schedule(0);
});
document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(0); });

takeTokenFromLink();
// The namespace asked for: `?namespace=NAME`, or the page opened under a `/__ns/NAME/` prefix.
const prefixed = location.pathname.match(/^\/__ns\/([^/]+)\//);
turnTo(new URLSearchParams(location.search).get("namespace") || (prefixed && decodeURIComponent(prefixed[1])) || "default");
schedule(0);
