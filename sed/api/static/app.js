// sed operations centre dashboard: no framework, no CDN, nothing stored but the session token.
// Data comes only from the authenticated API; text is always set with textContent (no HTML injection).
"use strict";

const LABEL_NAMES = { gunshot: "Gunshot", scream: "Scream", glass_break: "Glass break" };
const STATUS_NAMES = { new: "new", acknowledged: "acknowledged", confirmed: "confirmed", false_alarm: "false alarm" };
const OPEN_STATUSES = new Set(["new", "acknowledged"]);
// The fusion node's false-alarm policy: only alerts sound and flash; the others are listed muted.
const PRIORITY_NAMES = { alert: "alert", unconfirmed: "unconfirmed", suppressed: "suppressed (storm)" };
const PRIORITY_FILTERS = {
  shown: (i) => i.priority !== "suppressed",
  alert: (i) => i.priority === "alert",
  all: () => true,
  suppressed: (i) => i.priority === "suppressed",
};
// Alert first, refine later: what each stage of an incident is called where it is shown.
const STAGE_NAMES = { provisional: "provisional — locating", located: "located", unlocated: "not located", merged: "merged" };
const CHI2_95_2DOF = 5.991; // 95 % of a 2-D Gaussian lies inside sqrt(5.991) sigma
const SENSOR_REFRESH_MS = 5000;
const RECONNECT_MS = 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
// Room kept right of the right-most sensor for its name (a longer name flips to the left), px.
const SENSOR_LABEL_PX = 80;
// Band kept above the legend for the scale bar and its label, px.
const SCALE_BAR_PX = 30;
// The same colours as style.css (SVG presentation attributes cannot use CSS variables).
const COLOURS = {
  gunshot: "#ff4d4f", scream: "#ffa940", glass_break: "#40a9ff",
  online: "#52c41a", stale: "#6b7785", clock_unsynced: "#fa8c16", silent: "#b37feb", clipping: "#ff4d4f",
  noisy: "#d4b106", muted: "#6b7785",
};

// Coverage layer (the plan of `sedcity coverage plan`): band fill by the band's lower edge.
const COVERAGE_BANDS = [[0.9, "band-high", "#52c41a"], [0.5, "band-mid", "#fadb14"], [0, "band-low", "#fa8c16"]];
const COVERAGE_LAYER_NAMES = { located: "P(located)", heard: "P(heard)" };
// The server's local frame <-> WGS84 (sed/api/schemas.py: equirectangular about the site origin).
const EARTH_RADIUS_M = 6371008.8;

const state = {
  token: sessionStorage.getItem("sed-token"),
  user: null,
  site: null,
  incidents: new Map(), // incident_id -> IncidentOut
  sensors: [],
  selected: null, // incident_id
  detail: null, // IncidentDetail of the selected incident
  fresh: new Set(), // ids that arrived live and are not yet looked at
  audio: null, // AudioContext for the alert tone (created on a user gesture)
  liveAbort: null,
  clipUrl: null,
  imageUrl: null,
  coverage: null, // { plan, features: [{ properties, rings }], corners } while the layer is on
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------- API access

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.token}` };
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.json === undefined ? undefined : JSON.stringify(options.json),
    signal: options.signal,
  });
  if (response.status === 401) {
    signOut("Your session ended; sign in again.");
    throw new Unauthorized(path);
  }
  if (!response.ok) {
    let detail = `${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();

// ---------------------------------------------------------------- sign in / out

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    state.audio = state.audio || new AudioContext(); // created on this click, so the alert tone may play
  } catch (_) { state.audio = null; }
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("login-user").value, password: $("login-password").value }),
  });
  if (!response.ok) {
    $("login-error").textContent = response.status === 401 ? "Wrong user or password." : `Sign-in failed (${response.status}).`;
    return;
  }
  const body = await response.json();
  state.token = body.token;
  sessionStorage.setItem("sed-token", state.token);
  $("login-password").value = "";
  await start();
}

function signOut(message) {
  if (state.liveAbort) state.liveAbort.abort();
  if (state.token && !message) fetch("/api/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${state.token}` } });
  state.token = null;
  sessionStorage.removeItem("sed-token");
  state.coverage = null; // plan data came from the signed-in API: not kept for the next user
  $("coverage-on").checked = false;
  showCoverageControls();
  $("login-error").textContent = message || "";
  $("login").hidden = false;
}

async function start() {
  try {
    state.user = await getJson("/api/auth/me");
    state.site = await getJson("/api/site");
  } catch (error) {
    if (!(error instanceof Unauthorized)) $("login-error").textContent = String(error.message || error);
    return;
  }
  $("login").hidden = true;
  $("whoami").textContent = `${state.user.username} (${state.user.role})`;
  $("site-name").textContent = state.site.name;
  document.title = `${state.site.name} · sed operations centre`;
  $("attribution").textContent = state.site.tile_url ? state.site.tile_attribution : "local coordinates, m";
  await Promise.all([loadIncidents(), loadSensors(), loadHealth()]);
  followLive();
}

// ---------------------------------------------------------------- data

async function loadIncidents() {
  const list = await getJson("/api/incidents?limit=500");
  state.incidents = new Map(list.map((i) => [i.incident_id, i]));
  render();
}

async function loadSensors() {
  try {
    state.sensors = await getJson("/api/sensors");
  } catch (error) {
    if (error instanceof Unauthorized) return;
  }
  renderSensors();
  renderMap();
}

/** The server's own health (no token needed): a badge while the fusion node is behind or a worker is down. */
async function loadHealth() {
  let health;
  try {
    health = await (await fetch("/healthz", { cache: "no-store" })).json();
  } catch {
    return; // unreachable: the live-state dot already says so
  }
  const problem = health.overloaded || (health.status && health.status !== "ok" ? `server ${health.status}` : "");
  const badge = $("node-health");
  badge.textContent = problem ? `⚠ ${problem}` : "";
  badge.title = problem ? "nothing is dropped; alerts may come late" : "";
  badge.hidden = !problem;
}

/** Server-Sent Events over fetch (EventSource cannot send the Authorization header). */
async function followLive() {
  if (state.liveAbort) state.liveAbort.abort();
  const controller = new AbortController();
  state.liveAbort = controller;
  while (state.token && !controller.signal.aborted) {
    try {
      const response = await api("/api/live", { signal: controller.signal });
      setLive(true);
      await loadIncidents(); // whatever happened while we were not connected
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized || controller.signal.aborted) break;
    }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function handleEvent(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (kind !== "incident" || data.length === 0) return;
  const { incident } = JSON.parse(data.join("\n"));
  const before = state.incidents.get(incident.incident_id);
  // Updates of one incident may overtake each other: keep the latest revision.
  if (before && (before.revision || 0) > (incident.revision || 0)) return;
  if (incident.stage === "merged") {
    // Superseded: its detections now belong to merged_into, which is pushed on its own.
    state.incidents.delete(incident.incident_id);
    state.fresh.delete(incident.incident_id);
    if (state.selected === incident.incident_id) select(incident.merged_into);
    else render();
    return;
  }
  state.incidents.set(incident.incident_id, incident);
  // A new alert, or an unconfirmed incident upgraded to one (more poles heard it): alert the operator.
  if (incident.priority === "alert" && (!before || before.priority !== "alert")) {
    state.fresh.add(incident.incident_id);
    alertOperator(incident);
  }
  render();
  if (state.selected === incident.incident_id) loadDetail(incident.incident_id, { keepPlayer: true });
}

function setLive(on) {
  const node = $("live-state");
  node.className = `live ${on ? "on" : "off"}`;
  node.textContent = on ? "● live" : "● reconnecting";
}

// ---------------------------------------------------------------- alert

function alertOperator(incident) {
  if (!$("sound-on").checked || !state.audio) return;
  const context = state.audio;
  if (context.state === "suspended") context.resume();
  const pitches = incident.label === "gunshot" ? [880, 660, 880] : [660, 880];
  pitches.forEach((hz, i) => {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    const t0 = context.currentTime + i * 0.22;
    oscillator.frequency.value = hz;
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(0.3, t0 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.2);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(t0);
    oscillator.stop(t0 + 0.21);
  });
}

// ---------------------------------------------------------------- formatting

function timeOf(ns) {
  return new Date(ns / 1e6).toLocaleTimeString([], { hour12: false });
}

function dateTimeOf(ns) {
  return new Date(ns / 1e6).toLocaleString([], { hour12: false });
}

function ago(ns) {
  const s = Math.max(0, (Date.now() - ns / 1e6) / 1000);
  if (s < 90) return `${s.toFixed(0)} s ago`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function whereText(incident) {
  if (incident.stage === "provisional") return `${STAGE_NAMES.provisional} · heard by ${incident.sensor_ids.join(", ")}`;
  if (!incident.position) return `not located · heard by ${incident.sensor_ids.join(", ")}`;
  const p = incident.position;
  const unc = incident.uncertainty_m == null ? "" : ` ±${incident.uncertainty_m.toFixed(0)} m`;
  return `(${p.x_m.toFixed(0)}, ${p.y_m.toFixed(0)}) m${unc} · ${incident.sensor_ids.length} sensors`;
}

// ---------------------------------------------------------------- rendering

function visibleIncidents() {
  const filter = $("filter-status").value;
  const byPriority = PRIORITY_FILTERS[$("filter-priority").value] || PRIORITY_FILTERS.shown;
  const all = [...state.incidents.values()].filter(byPriority).sort((a, b) => b.origin_time_ns - a.origin_time_ns);
  if (filter === "all") return all;
  if (filter === "open") return all.filter((i) => OPEN_STATUSES.has(i.status));
  return all.filter((i) => i.status === filter);
}

function render() {
  renderList();
  renderMap();
  renderCounts();
}

function renderCounts() {
  const fresh = [...state.incidents.values()].filter((i) => i.status === "new");
  const open = fresh.filter((i) => i.priority === "alert").length;
  const held = fresh.length - open;
  $("counts").textContent = `${open} new alert${open === 1 ? "" : "s"}` + (held ? ` · ${held} unconfirmed or suppressed` : "");
}

function renderList() {
  const list = $("incident-list");
  const items = visibleIncidents();
  list.replaceChildren(
    ...items.map((incident) => {
      const item = el("li", { class: "incident", "data-id": incident.incident_id, tabindex: "0" });
      if (incident.incident_id === state.selected) item.classList.add("selected");
      if (!OPEN_STATUSES.has(incident.status)) item.classList.add("reviewed");
      if (state.fresh.has(incident.incident_id)) item.classList.add("fresh");
      if (incident.priority !== "alert") item.classList.add("muted-priority", incident.priority);
      item.classList.add(`stage-${incident.stage || "located"}`);
      item.append(
        el("span", { class: `bar ${incident.label}` }),
        el("span", { class: "what" }, `${LABEL_NAMES[incident.label] || incident.label}${incident.n_shots > 1 ? ` ×${incident.n_shots}` : ""}`),
        el("span", { class: "when", title: dateTimeOf(incident.origin_time_ns) }, timeOf(incident.origin_time_ns)),
        el("span", { class: "where" }, whereText(incident)),
        el("span", { class: `status ${incident.status}` },
          (incident.priority !== "alert" ? `${PRIORITY_NAMES[incident.priority] || incident.priority} · ` : "") +
          (STATUS_NAMES[incident.status] || incident.status)),
      );
      item.addEventListener("click", () => select(incident.incident_id));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") select(incident.incident_id); });
      return item;
    }),
  );
  $("incident-empty").hidden = items.length > 0;
}

function renderSensors() {
  const body = $("sensor-table").querySelector("tbody");
  const counts = {};
  body.replaceChildren(
    ...state.sensors.map((s) => {
      counts[s.status] = (counts[s.status] || 0) + 1;
      const row = el("tr", { "data-sensor": s.sensor_id });
      row.append(
        el("td", {}, s.sensor_id),
        el("td", { class: `health ${s.status}`, title: s.noisy.length ? `noisy: ${s.noisy.join(", ")}` : "" },
          s.status === "noisy" ? `noisy (${s.noisy.map((l) => LABEL_NAMES[l] || l).join(", ")})` : s.status.replace("_", " ")),
        el("td", {}, ago(s.last_seen_ns)),
        el("td", {}, s.clock_status || "–"),
        el("td", {}, s.input_rms_dbfs == null ? "–" : `${s.input_rms_dbfs.toFixed(0)} dBFS`),
        el("td", {}, s.clipping_fraction == null ? "–" : `${(100 * s.clipping_fraction).toFixed(2)} %`),
        el("td", {}, s.outbox_depth == null ? "–" : String(s.outbox_depth)),
        el("td", {}, s.description || ""),
      );
      return row;
    }),
  );
  const online = counts.online || 0;
  $("sensor-summary").textContent = `${online} of ${state.sensors.length} online` +
    Object.entries(counts).filter(([k]) => k !== "online").map(([k, n]) => ` · ${n} ${k.replace("_", " ")}`).join("");
}

// ---------------------------------------------------------------- map

/**
 * Pixels kept free around the points, so nothing drawn next to a point leaves the map:
 * axis labels left and top, a sensor's name right of its marker, the legend and the scale
 * bar below.
 */
function plotInsets(height) {
  const legend = $("map-legend");
  const legendPx = legend ? legend.getBoundingClientRect().height + 12 : 40;
  return { left: 44, right: SENSOR_LABEL_PX, top: 26, bottom: Math.min(legendPx + SCALE_BAR_PX, height / 3), legendPx };
}

/**
 * Where an incident is drawn: its position; else (provisional, or unlocated for good) the
 * poles that heard it, their centre (one pole: at the pole). null when no such pole is known.
 */
function anchorOf(incident) {
  if (incident.position) return incident.position;
  const poles = state.sensors.filter((s) => s.position && incident.sensor_ids.includes(s.sensor_id)).map((s) => s.position);
  if (poles.length === 0) return null;
  const mean = (key) => poles.reduce((sum, p) => sum + (p[key] == null ? NaN : p[key]), 0) / poles.length;
  const centre = { x_m: mean("x_m"), y_m: mean("y_m"), z_m: mean("z_m") };
  if (poles.every((p) => p.lat_deg != null)) Object.assign(centre, { lat_deg: mean("lat_deg"), lon_deg: mean("lon_deg") });
  return centre;
}

/** Projection from the site frame (metres) or lat/lon to SVG units. */
function makeProjection(points, width, height) {
  const site = state.site;
  const tiles = site && site.tile_url && site.origin_lat_deg != null && site.origin_lon_deg != null;
  const inset = plotInsets(height);
  const innerW = Math.max(width - inset.left - inset.right, 50), innerH = Math.max(height - inset.top - inset.bottom, 50);
  // Where the centre of the points lands: the middle of the free area, not of the box.
  const px0 = inset.left + innerW / 2, py0 = inset.top + innerH / 2;
  if (!tiles) {
    const xs = points.map((p) => p.x_m), ys = points.map((p) => p.y_m);
    let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const pad = Math.max(10, 0.05 * Math.max(x1 - x0, y1 - y0));
    x0 -= pad; x1 += pad; y0 -= pad; y1 += pad;
    // Equal scale on both axes, filling the free area.
    const scale = Math.min(innerW / (x1 - x0), innerH / (y1 - y0));
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    return {
      tiles: false,
      unitsPerMetre: scale,
      at: (p) => [px0 + (p.x_m - cx) * scale, py0 - (p.y_m - cy) * scale],
      bounds: [cx - px0 / scale, cx + (width - px0) / scale, cy - (height - py0) / scale, cy + py0 / scale],
    };
  }
  // Web Mercator pixels at the largest zoom that fits every point.
  const world = (lat, lon, z) => {
    const n = 256 * 2 ** z, s = Math.sin((lat * Math.PI) / 180);
    return [((lon + 180) / 360) * n, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n];
  };
  const geo = points.filter((p) => p.lat_deg != null);
  let z = 19;
  for (; z > 2; z--) {
    const px = geo.map((p) => world(p.lat_deg, p.lon_deg, z));
    const w = Math.max(...px.map((q) => q[0])) - Math.min(...px.map((q) => q[0]));
    const h = Math.max(...px.map((q) => q[1])) - Math.min(...px.map((q) => q[1]));
    if (w < 0.9 * innerW && h < 0.9 * innerH) break;
  }
  const px = geo.map((p) => world(p.lat_deg, p.lon_deg, z));
  const cx = (Math.max(...px.map((q) => q[0])) + Math.min(...px.map((q) => q[0]))) / 2;
  const cy = (Math.max(...px.map((q) => q[1])) + Math.min(...px.map((q) => q[1]))) / 2;
  const metresPerPixel = (156543.03392 * Math.cos((site.origin_lat_deg * Math.PI) / 180)) / 2 ** z;
  return {
    tiles: true,
    z, cx, cy, px0, py0,
    unitsPerMetre: 1 / metresPerPixel,
    at: (p) => { const [x, y] = world(p.lat_deg, p.lon_deg, z); return [x - cx + px0, y - cy + py0]; },
  };
}

function drawTiles(map, projection, width, height) {
  const { z, cx, cy, px0, py0 } = projection;
  const x0 = Math.floor((cx - px0) / 256), x1 = Math.floor((cx - px0 + width) / 256);
  const y0 = Math.floor((cy - py0) / 256), y1 = Math.floor((cy - py0 + height) / 256);
  for (let tx = x0; tx <= x1; tx++) {
    for (let ty = y0; ty <= y1; ty++) {
      const href = state.site.tile_url.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
      map.append(svg("image", { href, x: tx * 256 - cx + px0, y: ty * 256 - cy + py0, width: 256, height: 256 }));
    }
  }
}

function drawGrid(map, projection, width, height) {
  const [x0, x1, y0, y1] = projection.bounds;
  const span = Math.max(x1 - x0, y1 - y0);
  const step = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000].find((s) => span / s <= 14) || 10000;
  for (let x = Math.ceil(x0 / step) * step; x <= x1; x += step) {
    const [sx] = projection.at({ x_m: x, y_m: 0 });
    map.append(svg("line", { class: "grid", x1: sx, y1: 0, x2: sx, y2: height }));
    map.append(svg("text", { class: "axis-label", x: sx + 3, y: 14, "font-size": 12 }, `${x} m`));
  }
  for (let y = Math.ceil(y0 / step) * step; y <= y1; y += step) {
    const [, sy] = projection.at({ x_m: 0, y_m: y });
    map.append(svg("line", { class: "grid", x1: 0, y1: sy, x2: width, y2: sy }));
    map.append(svg("text", { class: "axis-label", x: 4, y: sy - 3, "font-size": 12 }, `${y} m`));
  }
}

function ellipseOf(incident, projection, cx, cy) {
  const [xx, xy, yy] = incident.covariance_m2;
  const mean = (xx + yy) / 2, diff = Math.sqrt(((xx - yy) / 2) ** 2 + xy ** 2);
  const major = Math.sqrt(CHI2_95_2DOF * Math.max(mean + diff, 0)) * projection.unitsPerMetre;
  const minor = Math.sqrt(CHI2_95_2DOF * Math.max(mean - diff, 0)) * projection.unitsPerMetre;
  const angleDeg = (0.5 * Math.atan2(2 * xy, xx - yy) * 180) / Math.PI;
  return svg("ellipse", {
    class: "ellipse", cx, cy, rx: Math.max(major, 2), ry: Math.max(minor, 2),
    transform: `rotate(${-angleDeg} ${cx} ${cy})`, fill: COLOURS[incident.label], stroke: COLOURS[incident.label],
  });
}

function renderMap() {
  const map = $("map");
  const { width, height } = map.getBoundingClientRect();
  if (!width || !height) return;
  map.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const incidents = visibleIncidents().map((i) => [i, anchorOf(i)]).filter(([, at]) => at);
  const sensors = state.sensors.filter((s) => s.position);
  const points = [...sensors.map((s) => s.position), ...incidents.map(([, at]) => at)];
  if (state.coverage) points.push(...state.coverage.corners);
  map.replaceChildren();
  if (points.length === 0) {
    map.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#8b98a8" }, "No sensor has reported yet."));
    return;
  }
  const projection = makeProjection(points, width, height);
  if (projection.tiles) drawTiles(map, projection, width, height);
  else drawGrid(map, projection, width, height);
  if (state.coverage) drawCoverage(map, projection);
  for (const [incident, at] of [...incidents].reverse()) {
    const [cx, cy] = projection.at(at);
    const reviewed = !OPEN_STATUSES.has(incident.status);
    if (incident.covariance_m2 && !reviewed) map.append(ellipseOf(incident, projection, cx, cy));
    const muted = incident.priority !== "alert";
    const stage = incident.stage || "located";
    const colour = muted ? COLOURS.muted : COLOURS[incident.label];
    // Provisional and unlocated markers are hollow rings at the poles that heard it: not a position.
    const hollow = stage !== "located";
    const dot = svg("circle", {
      class: `incident-dot stage-${stage}${reviewed ? " reviewed" : ""}${muted ? " muted-priority" : ""}`,
      cx, cy, r: hollow ? 9 : muted ? 5 : 6,
      fill: hollow ? "none" : colour, stroke: hollow ? colour : "#000",
      "data-id": incident.incident_id, "data-stage": stage,
    });
    dot.append(svg("title", {}, `${LABEL_NAMES[incident.label]} ${timeOf(incident.origin_time_ns)} · ${STAGE_NAMES[stage] || stage}`));
    dot.addEventListener("click", () => select(incident.incident_id));
    map.append(dot);
    if (stage === "provisional") {
      map.append(svg("text", { class: "stage-label", x: cx + 12, y: cy - 10, "font-size": 13, "data-id": incident.incident_id },
        STAGE_NAMES.provisional));
    }
    if (state.fresh.has(incident.incident_id)) map.append(svg("circle", { class: "pulse", cx, cy, r: 18 }));
    if (incident.incident_id === state.selected) map.append(svg("circle", { class: "selected-ring", cx, cy, r: 14 }));
  }
  for (const sensor of sensors) {
    const [x, y] = projection.at(sensor.position);
    map.append(svg("path", {
      d: `M ${x} ${y - 9} L ${x + 8} ${y + 6} L ${x - 8} ${y + 6} Z`, fill: COLOURS[sensor.status], stroke: "#000",
    }));
    const label = svg("text", { class: "sensor-label", x: x + 10, y: y + 4, "font-size": 13 }, sensor.sensor_id);
    map.append(label);
    if (x + 10 + label.getComputedTextLength() > width - 4) {
      label.setAttribute("x", x - 10);
      label.setAttribute("text-anchor", "end");
    }
  }
  // Scale bar: 50 m (or the nearest round length) in the lower right, just above the legend.
  const length = [10, 20, 50, 100, 200, 500, 1000].find((m) => m * projection.unitsPerMetre >= 60) || 1000;
  const barPx = length * projection.unitsPerMetre;
  const barY = height - plotInsets(height).legendPx - 8;
  map.append(svg("line", { x1: width - 20 - barPx, y1: barY, x2: width - 20, y2: barY, stroke: "#e6edf3", "stroke-width": 3 }));
  map.append(svg("text", { class: "scale-label", x: width - 20 - barPx, y: barY - 7, "font-size": 13 }, `${length} m`));
}

// ---------------------------------------------------------------- coverage layer

/** Fetch the latest plan when the toggle goes on; forget it when it goes off. */
async function toggleCoverage() {
  $("coverage-status").textContent = "";
  if (!$("coverage-on").checked) {
    state.coverage = null;
    showCoverageControls();
    renderMap();
    return;
  }
  $("coverage-status").textContent = "loading…";
  let coverage;
  try {
    const response = await api("/api/coverage");
    coverage = placeCoverage(await response.json(), response.headers.get("X-Coverage-Plan") || "");
  } catch (error) {
    if (error instanceof Unauthorized) return;
    $("coverage-on").checked = false;
    $("coverage-status").textContent = String(error.message || error);
    return;
  }
  if (!$("coverage-on").checked) return; // switched off while loading
  state.coverage = coverage;
  const keys = [...new Set(coverage.features.map(coverageKey))].sort();
  const select = $("coverage-layer");
  const before = select.value;
  select.replaceChildren(...keys.map((key) => {
    const [label, period, layer] = key.split("|");
    return el("option", { value: key }, `${LABEL_NAMES[label] || label} · ${period} · ${COVERAGE_LAYER_NAMES[layer] || layer}`);
  }));
  select.value = keys.includes(before) ? before : (keys.find((k) => k.endsWith("|located")) || keys[0] || "");
  $("coverage-status").textContent = coverage.plan ? `plan ${coverage.plan}` : "";
  showCoverageControls();
  renderMap();
}

/** The plan's features with every ring as map points; throws when they cannot be placed. */
function placeCoverage(plan, name) {
  if (!plan || plan.type !== "FeatureCollection" || !Array.isArray(plan.features)) {
    throw new Error(`coverage plan ${name}: not a GeoJSON FeatureCollection`);
  }
  const site = state.site;
  const geodetic = site && site.origin_lat_deg != null && site.origin_lon_deg != null;
  if (!geodetic) throw new Error("the site has no geodetic origin (site.origin_lat_deg, origin_lon_deg): the plan cannot be placed");
  const cosLat = Math.cos((site.origin_lat_deg * Math.PI) / 180);
  const point = ([lon, lat]) => ({
    lat_deg: lat, lon_deg: lon,
    x_m: (((lon - site.origin_lon_deg) * Math.PI) / 180) * EARTH_RADIUS_M * cosLat,
    y_m: (((lat - site.origin_lat_deg) * Math.PI) / 180) * EARTH_RADIUS_M,
  });
  const features = [];
  const all = [];
  for (const feature of plan.features) {
    const geometry = feature && feature.geometry;
    if (!geometry || !feature.properties) continue;
    const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
      : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
    const rings = polygons.flat().map((ring) => ring.map(point));
    if (rings.length === 0) continue;
    rings.forEach((ring) => all.push(...ring));
    features.push({ properties: feature.properties, rings });
  }
  if (features.length === 0) throw new Error(`coverage plan ${name}: no polygon to draw`);
  const corner = (pick) => ({
    lat_deg: pick(all.map((p) => p.lat_deg)), lon_deg: pick(all.map((p) => p.lon_deg)),
    x_m: pick(all.map((p) => p.x_m)), y_m: pick(all.map((p) => p.y_m)),
  });
  const low = (values) => values.reduce((a, b) => Math.min(a, b));
  const high = (values) => values.reduce((a, b) => Math.max(a, b));
  return { plan: name, features, corners: [corner(low), corner(high)] };
}

function coverageKey(feature) {
  const p = feature.properties;
  return `${p.label}|${p.period}|${p.layer}`;
}

function bandOf(properties) {
  return COVERAGE_BANDS.find(([low]) => (properties.band_min || 0) >= low) || COVERAGE_BANDS[COVERAGE_BANDS.length - 1];
}

/** The chosen class, period and quantity's bands, semi-transparent, under everything else. */
function drawCoverage(map, projection) {
  const key = $("coverage-layer").value;
  for (const feature of state.coverage.features.filter((f) => coverageKey(f) === key)) {
    const p = feature.properties;
    const d = feature.rings.map((ring) => ring.map((q, i) => `${i ? "L" : "M"} ${projection.at(q).join(" ")}`).join(" ") + " Z").join(" ");
    const [, name, colour] = bandOf(p);
    const path = svg("path", { class: `coverage-band ${name}`, d, fill: colour, stroke: colour, "fill-rule": "evenodd" });
    const error = p.median_error_95_m == null ? "" : ` · median 95 % error ${Number(p.median_error_95_m).toFixed(0)} m`;
    path.append(svg("title", {}, `${COVERAGE_LAYER_NAMES[p.layer] || p.layer} ${p.band_min}–${p.band_max} · ` +
      `${(Number(p.area_m2) / 1e4).toFixed(1)} ha${error}`));
    map.append(path);
  }
}

function showCoverageControls() {
  const on = Boolean(state.coverage);
  $("coverage-layer").hidden = !on;
  const legend = $("coverage-legend");
  legend.hidden = !on;
  if (!on) return;
  const layer = $("coverage-layer").value.split("|")[2];
  const bands = [...new Map((state.coverage.features.filter((f) => f.properties.layer === layer))
    .map((f) => [f.properties.band_min, f.properties])).values()].sort((a, b) => a.band_min - b.band_min);
  legend.replaceChildren(...bands.map((p) => {
    const item = el("span");
    item.append(el("i", { class: `swatch ${bandOf(p)[1]}` }), document.createTextNode(`${p.band_min}–${p.band_max}`));
    return item;
  }));
}

// ---------------------------------------------------------------- detail

async function select(incidentId) {
  state.selected = incidentId;
  if (state.fresh.delete(incidentId)) renderMap();
  render();
  await loadDetail(incidentId, { keepPlayer: false });
}

async function loadDetail(incidentId, { keepPlayer }) {
  let detail;
  try {
    detail = await getJson(`/api/incidents/${encodeURIComponent(incidentId)}`);
  } catch (error) {
    return;
  }
  if (state.selected !== incidentId) return;
  state.detail = detail;
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  $("detail-title").textContent = `${LABEL_NAMES[detail.label] || detail.label} · ${STATUS_NAMES[detail.status]}`;
  $("detail-title").className = `status ${detail.status}`;
  const facts = [
    ["time", dateTimeOf(detail.origin_time_ns)],
    ["confidence", `${(100 * detail.score).toFixed(0)} %`],
    ["position", detail.position ? `x ${detail.position.x_m.toFixed(1)} m, y ${detail.position.y_m.toFixed(1)} m` : "not located"],
    ["uncertainty", detail.uncertainty_m == null ? "–" : `±${detail.uncertainty_m.toFixed(1)} m (95 %)`],
  ];
  if (detail.position && detail.position.lat_deg != null) {
    facts.push(["lat, lon", `${detail.position.lat_deg.toFixed(6)}, ${detail.position.lon_deg.toFixed(6)}`]);
  }
  facts.push(["shots", String(detail.n_shots)], ["sensors", detail.sensor_ids.join(", ")]);
  facts.push(["priority", PRIORITY_NAMES[detail.priority] || detail.priority]);
  facts.push(["stage", `${STAGE_NAMES[detail.stage] || detail.stage} (revision ${detail.revision})`]);
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const rows = detail.detections.map((d) => {
    const row = el("tr");
    const play = el("button", { type: "button", class: "play", "data-detection": d.detection_id }, d.has_clip ? "▶ listen" : "no clip");
    play.disabled = !d.has_clip;
    play.addEventListener("click", () => playClip(d));
    const cell = el("td");
    cell.append(play);
    row.append(
      el("td", {}, d.sensor_id), el("td", {}, LABEL_NAMES[d.label] || d.label),
      el("td", {}, `${(100 * d.score).toFixed(0)} %`), el("td", {}, timeOf(d.arrival_time_ns)), cell,
    );
    return row;
  });
  $("detail-detections").querySelector("tbody").replaceChildren(...rows);
  if (!keepPlayer) {
    $("player").hidden = true;
    $("review-text").value = "";
    $("review-error").textContent = "";
  }
  $("review-trail").replaceChildren(
    ...detail.reviews.map((r) => el("li", {}, `${timeOf(r.at_ns)} ${r.username}: ${r.action.replace("_", " ")}${r.text ? ` — ${r.text}` : ""}`)),
  );
}

async function playClip(detection) {
  const id = encodeURIComponent(detection.detection_id);
  try {
    const [audio, image] = await Promise.all([api(`/api/clips/${id}`), api(`/api/clips/${id}/spectrogram.png`)]);
    if (state.clipUrl) URL.revokeObjectURL(state.clipUrl);
    if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
    state.clipUrl = URL.createObjectURL(await audio.blob());
    state.imageUrl = URL.createObjectURL(await image.blob());
  } catch (error) {
    $("review-error").textContent = `clip: ${error.message || error}`;
    return;
  }
  $("player").hidden = false;
  $("player-caption").textContent = `${detection.sensor_id} · heard ${timeOf(detection.arrival_time_ns)} · access is logged`;
  $("clip-spectrogram").src = state.imageUrl;
  const player = $("clip-audio");
  player.src = state.clipUrl;
  try { await player.play(); } catch (_) { /* autoplay refused: the controls are there */ }
}

async function review(action) {
  if (!state.detail) return;
  const text = $("review-text").value.trim();
  if ((action === "false_alarm" || action === "note") && !text) {
    $("review-error").textContent = action === "note" ? "Write the note first." : "Give the reason for the false alarm.";
    $("review-text").focus();
    return;
  }
  $("review-error").textContent = "";
  try {
    const response = await api(`/api/incidents/${encodeURIComponent(state.detail.incident_id)}/review`, {
      method: "POST", json: { action, text: text || null },
    });
    const updated = await response.json();
    state.incidents.set(updated.incident_id, { ...state.incidents.get(updated.incident_id), status: updated.status });
    $("review-text").value = "";
    render();
    await loadDetail(updated.incident_id, { keepPlayer: true });
  } catch (error) {
    $("review-error").textContent = String(error.message || error);
  }
}

// ---------------------------------------------------------------- wiring

function tick() {
  $("clock").textContent = new Date().toLocaleTimeString([], { hour12: false });
}

window.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut());
  $("filter-status").addEventListener("change", render);
  $("filter-priority").addEventListener("change", render);
  $("coverage-on").addEventListener("change", toggleCoverage);
  $("coverage-layer").addEventListener("change", () => { showCoverageControls(); renderMap(); });
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => review(button.dataset.action));
  }
  window.addEventListener("resize", renderMap);
  setInterval(tick, 1000);
  setInterval(() => { if (state.token && state.user) { loadSensors(); loadHealth(); } }, SENSOR_REFRESH_MS);
  tick();
  if (state.token) start();
  else $("login").hidden = false;
});
