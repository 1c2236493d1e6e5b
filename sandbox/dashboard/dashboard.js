// The dashboard's start: the admin token, the namespace picker, and one polling loop that keeps
// the traffic, rules, clock and data current while the tab is visible. Plain JavaScript modules,
// no build step, nothing fetched from another origin; see api.js for why it adds no traffic.
"use strict";

import { Unauthorized, control, session, takeTokenFromLink, useToken } from "./api.js";
import { Controls } from "./controls.js";
import { DataView } from "./data.js";
import { element, say } from "./dom.js";
import { Traffic } from "./traffic.js";

const POLL_MS = 1000;
const SLOW_ROUND = 5;  // every fifth poll also reads the namespace list, the data and the rules

const data = new DataView();
const traffic = new Traffic();
const controls = new Controls(showNamespace);
let polls = 0;
let waiting = null;  // the next poll's timer

async function loadNamespaces() {
  const names = (await control("namespaces")).map((n) => n.namespace)
    .sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : a.localeCompare(b)));
  if (!names.includes(session.namespace)) {
    // Reading a namespace would make it: one asked for that is not there is not shown.
    if (session.namespace !== names[0]) say("page-status", `No namespace ${session.namespace}; showing ${names[0]}`);
    switchTo(names[0]);
  }
  const picker = document.getElementById("namespace");
  if (picker.options.length === names.length && [...picker.options].every((o, i) => o.value === names[i])) return;
  picker.replaceChildren(...names.map((name) => element("option", { value: name }, name)));
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

async function poll() {
  const [fresh] = await Promise.all([traffic.poll(), checkNamespace()]);
  const reads = [showClock()];
  // A write shows at once; what changed without a request (fixtures, a reset by a test harness:
  // control routes are not journaled) at the next slow round.
  const slowRound = ++polls % SLOW_ROUND === 0;
  if (slowRound || Traffic.changedData(fresh)) reads.push(data.load());
  if (slowRound || fresh.length) reads.push(controls.loadRules());  // rules count their hits
  if (slowRound) reads.push(loadNamespaces());
  await Promise.all(reads);
}

/** Poll again and again, one poll at a time, while the page is visible and allowed in. */
function keepPolling() {
  clearTimeout(waiting);
  waiting = setTimeout(async () => {
    if (document.hidden) return keepPolling();
    try {
      await poll();
      say("page-status", "");
    } catch (error) {
      if (fail(error)) return;
    }
    keepPolling();
  }, POLL_MS);
}

/** The namespace shown was deleted (not made again by reading it): back to the default one. */
class Gone extends Error {}

function switchTo(name) {
  session.namespace = name;
  const address = new URL(location.href);
  address.searchParams.set("namespace", name);
  history.replaceState(null, "", address);
  data.restart();
  traffic.restart();
}

/** Say what went wrong; true when only the admin token can help (polling stops until then). */
function fail(error) {
  if (error instanceof Unauthorized) {
    clearTimeout(waiting);
    document.getElementById("login").hidden = false;
    document.getElementById("admin-token").focus();
    say("page-status", session.token ? `The admin token was refused: ${error.message}` : "This sandbox runs with --admin-token: enter it to see the dashboard.", true);
    return true;
  }
  if (error instanceof Gone) {
    say("page-status", `${error.message}; showing default`, true);
    switchTo("default");
    loadNamespaces().then(() => Promise.all([showNamespace(), traffic.poll()])).catch(fail);
    return false;
  }
  say("page-status", `The sandbox did not answer: ${error.message}`, true);
  return false;
}

async function start() {
  try {
    await loadNamespaces();  // (it may turn to another namespace: before anything is read)
    await Promise.all([showNamespace(), traffic.poll()]);
    // Since the page was asked for: its files, every read and the first table page drawn.
    document.body.dataset.firstTableMs = String(Math.round(performance.now()));
    say("page-status", "");
    keepPolling();
  } catch (error) {
    fail(error);
  }
}

document.getElementById("namespace").addEventListener("change", (event) => {
  switchTo(event.target.value);
  Promise.all([showNamespace(), traffic.poll()]).catch(fail);
});
document.getElementById("refresh").addEventListener("click", () => {
  Promise.all([loadNamespaces(), showNamespace()]).then(() => say("page-status", "Read again")).catch(fail);
});
document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  useToken(document.getElementById("admin-token").value.trim());
  document.getElementById("login").hidden = true;
  start();
});
document.addEventListener("visibilitychange", () => { if (!document.hidden) keepPolling(); });

takeTokenFromLink();
session.namespace = new URLSearchParams(location.search).get("namespace") || "default";
start();
