// One way to the control routes: the namespace header, the admin token, Layer's envelope.
// The page reads and changes the sandbox through /__sandbox/ only (never /v1), and control routes
// are not journaled, so it adds nothing to the traffic it shows.
"use strict";

const TOKEN_KEY = "layer-sandbox-admin-token";

// What the whole page shares: the namespace it shows and the admin token it sends. The token lives
// in this tab's sessionStorage (gone when the tab closes), never in a cookie: a cookie would ride
// along on requests other sites make to the sandbox, a header cannot.
export const session = { namespace: "default", scenario: null, token: sessionStorage.getItem(TOKEN_KEY), generation: 0 };

// The control routes, whatever address the page was opened at (a `/__ns/NAME/` prefix would
// override the namespace header).
const BASE = "/__sandbox/";

export class Unauthorized extends Error {}

/** The answer to a request sent for the namespace shown before: dropped, not drawn. */
export class Stale extends Error {}

/** Show another namespace: answers still on their way for the one before become Stale. */
export function turnTo(namespace) {
  session.namespace = namespace;
  session.generation += 1;
}

/** The admin token from a `#token=...` link (the fragment never reaches a server or a log),
    kept for this tab and taken off the address bar. */
export function takeTokenFromLink() {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    useToken(given);
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export function useToken(token) {
  session.token = token || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
}

/** A control route's `data` (with `text`: also the answer as it came, to tell whether it changed);
    a Layer error's description as the Error's message. */
export async function control(path, { method = "GET", body, text = false } = {}) {
  const headers = { "Accept": "application/json", "X-Sandbox-Namespace": session.namespace };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const generation = session.generation;
  const answer = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const raw = await answer.text();
  if (generation !== session.generation) throw new Stale(`${path}: asked for another namespace`);
  let payload = null;
  try {
    payload = JSON.parse(raw);
  } catch {
    // not JSON: said below by its status
  }
  const problem = payload && payload.errors && payload.errors[0];
  if (answer.status === 401) throw new Unauthorized(problem ? problem.description : "the admin token is needed");
  if (!answer.ok) throw new Error(problem ? problem.description : `${method} ${path}: ${answer.status}`);
  return text ? { data: payload.data, text: raw } : payload.data;
}
