// vaekit explore: the page. Plain JavaScript on canvases; every request goes to the vaekit server
// that served this file (see vaekit/explore/__init__.py for the API).
//
// Names in the page (class names, the run's name, feature names) come from a run folder: its
// config.json, a CSV's label values, an image folder's subfolder names. Whoever wrote that folder
// chose them, so they are only ever put in the page as text (textContent, new Option, el() below),
// never as HTML; the server's Content-Security-Policy would refuse an injected script anyway.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const PAD = { left: 44, right: 12, top: 12, bottom: 40 }; // plane margins for the axes

const S = {
  info: null, codes: [], labels: null, z: [], selected: 0, label: 0, dimX: 0, dimY: 1,
  dragging: false, downAt: null, example: null, hover: -1,
};
// What the browser tests read: decode rounds sent and the most ever in flight at once (must stay 1).
const stats = { decodes: 0, inflight: 0, maxInflight: 0, decodedZ: null };
window.vaekitExplore = { S, stats };

// -- fetching ---------------------------------------------------------------------------------
async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(await errorLine(r) || `${r.status} from ${url}`);
  return r;
}
// The server's one-line reason: {"error": "..."} from the JSON routes, plain text from the others.
async function errorLine(r) {
  const text = (await r.text()).trim();
  if (!(r.headers.get("Content-Type") || "").startsWith("application/json")) return text;
  try { return String(JSON.parse(text).error); } catch (e) { return text; }
}
const getJSON = async (url) => (await fetchOk(url)).json();
const getBitmap = async (url) => createImageBitmap(await (await fetchOk(url)).blob());
const fmt = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const zParam = (z) => z.map((v) => v.toFixed(4)).join(",");
const caps = () => S.info.capabilities; // what this model can show (vaekit/explore/capabilities.py)
const labelParam = () => (caps().conditional ? `&label=${S.label}` : "");
const isImage = () => S.info.data.kind === "image";
const className = (k) => (S.info.classes[k] !== undefined ? S.info.classes[k] : String(k));
const colour = (k) => (k === null || k === undefined ? "#4b5563" : PALETTE[k % PALETTE.length]);

function status(msg) { $("status").textContent = msg || ""; }

// An element with properties set (className, value, ...) and children appended: a string child
// becomes a text node, so no string is ever parsed as HTML.
function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

function drawBitmap(canvas, bmp) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const s = Math.min(canvas.width / bmp.width, canvas.height / bmp.height);
  const w = bmp.width * s, h = bmp.height * s;
  ctx.drawImage(bmp, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
}

// -- the decode loop: at most one round in flight; the latest z waits and is sent when it returns --
let pending = null, busy = false;
function requestDecode() {
  pending = { z: S.z.slice(), label: S.label };
  if (!busy) pump();
}
async function pump() {
  if (!pending) return;
  const job = pending;
  pending = null;
  busy = true;
  stats.inflight += 1;
  stats.maxInflight = Math.max(stats.maxInflight, stats.inflight);
  try {
    await renderDecoded(job);
    stats.decodedZ = job.z;
    status("");
  } catch (e) {
    status(e.message);
  } finally {
    stats.inflight -= 1;
    stats.decodes += 1;
    busy = false;
  }
  if (pending) pump();
}

async function renderDecoded(job) {
  const q = `z=${zParam(job.z)}`;
  const lab = caps().conditional ? `&label=${job.label}` : "";
  if (isImage()) {
    const tasks = [getBitmap(`/decode?${q}${lab}`)];
    if (caps().conditional) tasks.push(getBitmap(`/decode?${q}&label=all`));
    const [bmp, all] = await Promise.all(tasks);
    drawBitmap($("decoded"), bmp);
    if (all) showStrip($("all-labels-strip"), all, $("all-labels-names"), S.info.classes.slice(0, S.info.model.n_classes));
  } else {
    const out = await getJSON(`/decode.json?${q}${lab}`);
    drawBars($("decoded"), out.x[0], S.example ? S.example.x : null);
  }
  $("z-readout").textContent = job.z.length <= 4 ? `z = (${job.z.map((v) => fmt(v)).join(", ")})`
    : `z${S.dimX} = ${fmt(job.z[S.dimX])}, z${S.dimY} = ${fmt(job.z[S.dimY])}; the other ${job.z.length - 2} on the sliders`;
}

// A strip bitmap shown through an <img> (the server's PNG) with one name under each cell.
function showStrip(img, bmp, namesEl, names) {
  const c = document.createElement("canvas");
  c.width = bmp.width; c.height = bmp.height;
  c.getContext("2d").drawImage(bmp, 0, 0);
  img.src = c.toDataURL();
  img.onload = () => {
    const w = img.clientWidth / names.length;
    namesEl.replaceChildren(...names.map((n) => {
      const s = el("span", { title: n }, n); // a long name is cut short here: the title holds it all
      s.style.width = `${w}px`; // through the CSSOM, which the CSP allows (a style="" attribute it would not)
      return s;
    }));
  };
}

// -- tables: one bar per feature (standardized when the model standardizes) -------------------
function standardize(x) {
  const sc = S.info.data.scaler;
  return sc ? x.map((v, j) => (v - sc.mean[j]) / sc.scale[j]) : x;
}
function drawBars(canvas, values, reference, what = "E[x|z]") {
  const v = standardize(values), ref = reference ? standardize(reference) : null;
  const n = v.length, rowH = Math.max(6, Math.min(16, 560 / n));
  const names = S.info.data.feature_names || v.map((_, j) => `x${j}`);
  canvas.width = 280; canvas.height = Math.ceil(n * rowH + 24);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const all = v.concat(ref || []);
  const lim = Math.max(3, ...all.map(Math.abs));
  const x0 = 84, x1 = canvas.width - 8, mid = (x0 + x1) / 2, sx = (x1 - x0) / (2 * lim);
  ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "middle";
  for (let j = 0; j < n; j++) {
    const y = 4 + j * rowH;
    ctx.fillStyle = "#1f77b4";
    ctx.fillRect(Math.min(mid, mid + v[j] * sx), y + 1, Math.abs(v[j] * sx), rowH - 2);
    if (ref) { ctx.fillStyle = "#111"; ctx.fillRect(mid + ref[j] * sx - 1, y, 2, rowH); }
    if (rowH >= 9) { ctx.fillStyle = "#555"; ctx.fillText(names[j].slice(0, 14), 4, y + rowH / 2); }
  }
  ctx.strokeStyle = "#999"; ctx.beginPath(); ctx.moveTo(mid, 2); ctx.lineTo(mid, n * rowH + 6); ctx.stroke();
  ctx.fillStyle = "#555";
  ctx.fillText(`bars: ${what}${S.info.data.scaler ? " (standardized)" : ""} · black: x`, 4, n * rowH + 16);
}

// -- the plane ----------------------------------------------------------------------------------
const plane = $("plane");
const dots = document.createElement("canvas"); // the scatter, drawn once per choice of axes
function toPx(zx, zy) {
  const d = S.info.dims, a = d[S.dimX], b = d[S.dimY];
  const w = plane.width - PAD.left - PAD.right, h = plane.height - PAD.top - PAD.bottom;
  return [PAD.left + ((zx - a.lo) / (a.hi - a.lo)) * w, PAD.top + (1 - (zy - b.lo) / (b.hi - b.lo)) * h];
}
function toZ(px, py) {
  const d = S.info.dims, a = d[S.dimX], b = d[S.dimY];
  const w = plane.width - PAD.left - PAD.right, h = plane.height - PAD.top - PAD.bottom;
  const cx = Math.min(Math.max(px, PAD.left), PAD.left + w), cy = Math.min(Math.max(py, PAD.top), PAD.top + h);
  return [a.lo + ((cx - PAD.left) / w) * (a.hi - a.lo), b.lo + (1 - (cy - PAD.top) / h) * (b.hi - b.lo)];
}
function dimName(j) {
  const d = S.info.dims[j];
  return d.kl !== null ? `z${j}  (KL ${fmt(d.kl)} nats)` : `z${j}  (variance ${fmt(d.variance, 3)})`;
}
function niceTicks(lo, hi) {
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4)));
  const m = (hi - lo) / step > 20 ? 5 : (hi - lo) / step > 8 ? 2 : 1;
  const out = [];
  for (let t = Math.ceil(lo / (step * m)) * step * m; t <= hi; t += step * m) out.push(Math.abs(t) < 1e-9 ? 0 : t);
  return out;
}
function drawDots() {
  dots.width = plane.width; dots.height = plane.height;
  const ctx = dots.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, dots.width, dots.height);
  const d = S.info.dims, a = d[S.dimX], b = d[S.dimY];
  ctx.strokeStyle = "#eceff3"; ctx.fillStyle = "#5d6675"; ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  for (const t of niceTicks(a.lo, a.hi)) {
    const [x] = toPx(t, b.lo);
    ctx.beginPath(); ctx.moveTo(x, PAD.top); ctx.lineTo(x, plane.height - PAD.bottom); ctx.stroke();
    ctx.fillText(String(+t.toFixed(2)), x, plane.height - PAD.bottom + 13);
  }
  ctx.textAlign = "right";
  for (const t of niceTicks(b.lo, b.hi)) {
    const [, y] = toPx(a.lo, t);
    ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(plane.width - PAD.right, y); ctx.stroke();
    ctx.fillText(String(+t.toFixed(2)), PAD.left - 5, y + 4);
  }
  ctx.fillStyle = "#1d2330"; ctx.textAlign = "center"; ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(dimName(S.dimX), PAD.left + (plane.width - PAD.left - PAD.right) / 2, plane.height - 8);
  ctx.save(); ctx.translate(12, PAD.top + (plane.height - PAD.top - PAD.bottom) / 2); ctx.rotate(-Math.PI / 2);
  ctx.fillText(dimName(S.dimY), 0, 0); ctx.restore();
  ctx.globalAlpha = 0.75;
  S.codes.forEach((c, i) => {
    const [x, y] = toPx(c[S.dimX], c[S.dimY]);
    ctx.fillStyle = colour(S.labels ? S.labels[i] : null);
    ctx.beginPath(); ctx.arc(x, y, 2.6, 0, 2 * Math.PI); ctx.fill();
  });
  ctx.globalAlpha = 1;
  drawOverlay();
}
function drawPlane() {
  const ctx = plane.getContext("2d");
  ctx.drawImage(dots, 0, 0);
  const sel = S.codes[S.selected];
  if (sel) {
    const [x, y] = toPx(sel[S.dimX], sel[S.dimY]);
    ctx.strokeStyle = "#111"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.stroke();
  }
  const [x, y] = toPx(S.z[S.dimX], S.z[S.dimY]); // the decoded point: a cross with a white halo, visible on any dot
  for (const [c, w] of [["#fff", 5], ["#c2410c", 2]]) {
    ctx.strokeStyle = c; ctx.lineWidth = w;
    ctx.beginPath(); ctx.moveTo(x - 11, y); ctx.lineTo(x + 11, y); ctx.moveTo(x, y - 11); ctx.lineTo(x, y + 11); ctx.stroke();
  }
  ctx.lineWidth = 1;
}
// A hover or click picks the nearest dot within this many canvas pixels: dots are 2-3 px wide, and
// asking for 5-pixel precision made them hard to hit.
const PICK_RADIUS = 12;
function nearest(px, py, radius) {
  let best = -1, bd = radius * radius;
  S.codes.forEach((c, i) => {
    const [x, y] = toPx(c[S.dimX], c[S.dimY]);
    const d = (x - px) ** 2 + (y - py) ** 2;
    if (d < bd) { bd = d; best = i; }
  });
  return best;
}
function pointerPos(ev) {
  const r = plane.getBoundingClientRect();
  return [(ev.clientX - r.left) * (plane.width / r.width), (ev.clientY - r.top) * (plane.height / r.height)];
}
function moveTo(px, py) {
  const [zx, zy] = toZ(px, py);
  S.z[S.dimY] = zy; S.z[S.dimX] = zx; // a 1-D code has one axis twice: the horizontal one counts
  drawPlane(); syncSliders(); requestDecode();
}
const tipCache = new Map();
async function showTip(i, px, py) {
  const tip = $("tooltip");
  if (i < 0) { tip.hidden = true; return; }
  $("tip-text").textContent = `#${i}` + (S.labels ? ` · ${className(S.labels[i])}` : "");
  tip.style.left = `${Math.min(px + 14, plane.width - 100)}px`;
  tip.style.top = `${Math.max(py - 110, 4)}px`;
  tip.hidden = false;
  $("tip-img").hidden = !isImage();
  if (!isImage()) return;
  if (!tipCache.has(i)) tipCache.set(i, getBitmap(`/image?i=${i}`));
  try {
    const bmp = await tipCache.get(i);
    if (S.hover === i) drawBitmap($("tip-img"), bmp);
  } catch (e) { status(e.message); }
}
plane.addEventListener("pointerdown", (ev) => {
  plane.setPointerCapture(ev.pointerId);
  S.dragging = true;
  S.downAt = pointerPos(ev);
  $("tooltip").hidden = true;
  moveTo(...S.downAt);
});
plane.addEventListener("pointermove", (ev) => {
  const [px, py] = pointerPos(ev);
  if (S.dragging) { moveTo(px, py); return; }
  const i = nearest(px, py, PICK_RADIUS);
  if (i !== S.hover) { S.hover = i; showTip(i, px, py); }
});
plane.addEventListener("pointerup", (ev) => {
  S.dragging = false;
  const [px, py] = pointerPos(ev);
  const moved = S.downAt ? Math.hypot(px - S.downAt[0], py - S.downAt[1]) : 99;
  const i = nearest(px, py, PICK_RADIUS);
  if (moved < 3 && i >= 0) selectExample(i); // a click on (or near) a dot picks the nearest example
});
plane.addEventListener("pointerleave", () => { S.hover = -1; $("tooltip").hidden = true; });

// -- sliders, one per latent dimension, in order of use ------------------------------------------
function buildSliders() {
  const box = $("sliders");
  box.replaceChildren();
  $("slider-order").textContent = S.info.ordered_by === "kl" ? "ordered by KL(q(z_j|x) ‖ p(z_j)), most used first"
    : "ordered by the variance of the codes, most used first";
  for (const j of S.info.order) {
    const d = S.info.dims[j];
    const input = el("input", { type: "range", min: d.lo, max: d.hi, step: (d.hi - d.lo) / 400 });
    input.dataset.dim = j;
    input.setAttribute("aria-label", `z${j}`);
    const val = el("span", { className: "mono val" });
    const meta = el("span", { className: "meta" }, d.kl !== null ? `KL ${fmt(d.kl)} nats` : `variance ${fmt(d.variance, 3)}`);
    if (d.active === false) meta.append(" · ", el("span", { className: "tag" }, "inactive"), " (its code barely varies over x)");
    input.addEventListener("input", () => {
      S.z[j] = Number(input.value);
      val.textContent = fmt(S.z[j]);
      drawPlane(); requestDecode();
    });
    box.append(el("div", { className: "slider" + (d.active === false ? " inactive" : "") }, el("span", { className: "mono" }, `z${j}`), input, val, meta));
  }
}
function syncSliders() {
  for (const input of $("sliders").querySelectorAll("input")) {
    const j = Number(input.dataset.dim);
    input.value = S.z[j];
    input.parentElement.querySelector(".val").textContent = fmt(S.z[j]);
  }
}

// -- one example ---------------------------------------------------------------------------------
function holdOthers() {
  const base = S.codes[S.selected];
  S.info.dims.forEach((d, j) => {
    if (j === S.dimX || j === S.dimY) return;
    S.z[j] = $("hold").value === "zero" ? 0 : base[j];
  });
}
async function selectExample(i) {
  S.selected = i;
  $("example-index").value = i;
  S.z = S.codes[i].slice();
  if ($("hold").value === "zero") holdOthers();
  if (caps().conditional && S.labels) { S.label = S.labels[i]; $("label").value = String(S.label); }
  drawPlane(); syncSliders(); requestDecode();
  try {
    const ex = await getJSON(`/example?i=${i}`);
    if (S.selected !== i) return;
    S.example = ex;
    showExample(ex);
    if (isImage()) {
      const [orig, rec] = await Promise.all([getBitmap(ex.image_url), getBitmap(ex.reconstruction_url)]);
      drawBitmap($("ex-original"), orig); drawBitmap($("ex-recon"), rec);
      await showArithmetic(i);
      if (caps().code_grid) await showGrid(i);
    } else {
      drawBars($("ex-original"), ex.reconstruction, ex.x, "reconstruction");
    }
  } catch (e) { status(e.message); }
}
// One row of the example's numbers; name may be several parts (text and elements such as <sub>).
function row(name, value, how) {
  const parts = Array.isArray(name) ? name : [name];
  return el("tr", {}, el("td", {}, ...parts), el("td", { className: "num" }, value), el("td", { className: "how" }, how));
}
const NB = "\u00a0\u00a0"; // indents a term under the ELBO
function showExample(ex) {
  const rows = [];
  if (ex.label !== null) rows.push(row("label", className(ex.label), ""));
  if (caps().density) {
    rows.push(row("ELBO", `${fmt(ex.elbo)} nats`, `reconstruction − KL (${S.info.elbo_samples} draws of z)`));
    rows.push(row([`${NB}E`, el("sub", {}, "q"), "[log p(x|z)]"], `${fmt(ex.log_likelihood)} nats`, "reconstruction"));
    rows.push(row(`${NB}KL(q(z|x)‖p(z))`, `${fmt(ex.kl)} nats`, "what the code costs"));
    rows.push(row("log p(x)", `${fmt(ex.iw_log_likelihood)} nats`, `importance-weighted, k=${S.info.iw_k}`));
    rows.push(row("gap", `${fmt(ex.iw_log_likelihood - ex.elbo)} nats`, "log p(x) − ELBO ≈ KL(q(z|x)‖p(z|x))"));
  } else {
    for (const k of ["reconstruction", "sparsity"]) if (k in ex) rows.push(row(k, `${fmt(ex[k])} ${ex.unit}`, "the autoencoder's training loss term"));
  }
  rows.push(row("MSE", fmt(ex.mse, 4), "per value, x against its reconstruction"));
  if (!ex.binarization.startsWith("none")) rows.push(row("scored on", "", ex.binarization));
  $("ex-numbers").replaceChildren(...rows);
  drawPosterior(ex);
}
// Three columns, so nothing drawn on the axis can reach the numbers: the dimension's name, the axis
// (the prior's ±2 band, the mean as a dot, ±2 std as a bar), and μ, σ as text. A mean beyond the axis
// is drawn as an arrow at that end. The canvas is as wide as its card (at most 420 px) and is redrawn
// when the window is resized. The browser tests read the columns from its data-* attributes.
const POST_LIM_MAX = 12;
function drawPosterior(ex) {
  const canvas = $("ex-posterior"), order = S.info.order, n = order.length;
  const rowH = n > 24 ? 10 : 16;
  const room = canvas.parentElement.clientWidth - 28; // the card's padding: 14 px a side
  canvas.width = Math.max(240, Math.min(420, room)); canvas.height = n * rowH + 26;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const mono = "10px ui-monospace, Menlo, monospace";
  ctx.font = mono;
  const stdOf = (j) => (ex.posterior_std ? ex.posterior_std[j] : null);
  const texts = order.map((j) => `μ ${fmt(ex.code[j]).padStart(6)}` + (stdOf(j) !== null ? `  σ ${fmt(stdOf(j))}` : ""));
  const nameW = Math.max(...order.map((j) => ctx.measureText(`z${j}`).width));
  const textW = Math.max(...texts.map((t) => ctx.measureText(t).width));
  const textX = canvas.width - textW - 4; // the numbers' column, right up to the canvas edge
  const x0 = Math.ceil(nameW) + 12, x1 = Math.floor(textX) - 16; // 16 px: a dot or an arrow at the axis end, and a gap
  let lim = 3;
  order.forEach((j) => { lim = Math.max(lim, Math.abs(ex.code[j]) + 2 * (stdOf(j) || 0)); });
  lim = Math.min(lim, POST_LIM_MAX);
  const X = (v) => x0 + ((Math.max(-lim, Math.min(lim, v)) + lim) / (2 * lim)) * (x1 - x0);
  Object.assign(canvas.dataset, { axisLeft: x0, axisRight: x1, textLeft: Math.floor(textX), lim });
  if (caps().prior_contours) { // the prior N(0, 1): its ±2 band
    ctx.fillStyle = "#eef2f7"; ctx.fillRect(X(-2), 0, X(2) - X(-2), n * rowH);
  }
  ctx.strokeStyle = "#c9ced6"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(X(0), 0); ctx.lineTo(X(0), n * rowH); ctx.stroke();
  ctx.beginPath(); ctx.moveTo(x1 + 0.5, 0); ctx.lineTo(x1 + 0.5, n * rowH); ctx.moveTo(x0 - 0.5, 0); ctx.lineTo(x0 - 0.5, n * rowH); ctx.stroke();
  ctx.textBaseline = "middle";
  order.forEach((j, r) => {
    const y = r * rowH + rowH / 2, m = ex.code[j], s = stdOf(j);
    const inactive = S.info.dims[j].active === false, c = inactive ? "#9aa3af" : "#1f77b4";
    ctx.fillStyle = inactive ? "#9aa3af" : "#1d2330";
    ctx.textAlign = "left"; ctx.fillText(`z${j}`, 2, y);
    ctx.strokeStyle = c; ctx.fillStyle = c; ctx.lineWidth = 2;
    if (s !== null) { ctx.beginPath(); ctx.moveTo(X(m - 2 * s), y); ctx.lineTo(X(m + 2 * s), y); ctx.stroke(); }
    ctx.beginPath();
    if (Math.abs(m) > lim) { // off the axis: an arrow at that end, pointing on
      const e = m > 0 ? x1 : x0, d = m > 0 ? 1 : -1;
      ctx.moveTo(e + 7 * d, y); ctx.lineTo(e - d, y - 5); ctx.lineTo(e - d, y + 5); ctx.closePath();
    } else {
      ctx.arc(X(m), y, 3, 0, 2 * Math.PI);
    }
    ctx.fill();
    ctx.fillStyle = "#5d6675"; ctx.fillText(texts[r], textX, y);
  });
  ctx.lineWidth = 1; ctx.fillStyle = "#5d6675"; ctx.textAlign = "center"; ctx.font = "10px system-ui, sans-serif";
  for (const t of niceTicks(-lim, lim)) ctx.fillText(String(+t.toFixed(1)), X(t), n * rowH + 10);
  ctx.fillText(caps().prior_contours ? "shaded: the prior's ±2 std" : "", (x0 + x1) / 2, n * rowH + 21);
}
window.addEventListener("resize", () => { if (S.example) drawPosterior(S.example); });

// -- interpolation and latent arithmetic ----------------------------------------------------------
function endParam(end) {
  return $(`${end}-kind`).value === "class" ? `class:${$(`${end}-class`).value}` : String($(`${end}-index`).value);
}
function syncEnds() {
  for (const end of ["a", "b"]) {
    const cls = $(`${end}-kind`).value === "class";
    $(`${end}-class`).hidden = !cls;
    $(`${end}-index`).hidden = cls;
  }
}
async function interpolate() {
  const max = S.info.limits.max_steps, asked = Math.round(Number($("steps").value) || 10);
  const steps = Math.max(2, Math.min(max, asked));
  if (steps !== asked) $("steps").value = steps; // the box shows what the strip holds
  try {
    const bmp = await getBitmap(`/interpolate?a=${encodeURIComponent(endParam("a"))}&b=${encodeURIComponent(endParam("b"))}&steps=${steps}${labelParam()}`);
    const c = document.createElement("canvas");
    c.width = bmp.width; c.height = bmp.height; c.getContext("2d").drawImage(bmp, 0, 0);
    $("interp-strip").src = c.toDataURL();
    showPath(steps);
    status(asked > max ? `at most ${max} interpolation steps: showing ${max}` : asked < 2 ? "at least 2 interpolation steps: showing 2" : "");
  } catch (e) { status(e.message); }
}
async function showArithmetic(i) {
  const means = S.info.class_means, ks = Object.keys(means);
  if (!S.labels || ks.length < 2) return;
  const own = means[String(S.labels[i])], z = S.codes[i];
  const codes = ks.map((k) => z.map((v, j) => v - own[j] + means[k][j]));
  const [x, strip] = await Promise.all([getBitmap(`/image?i=${i}`), getBitmap(`/decode?z=${codes.map(zParam).join(";")}`)]);
  drawBitmap($("arith-x"), x);
  // Under x: which example it is and its label; under each image: the class it was moved to.
  $("arith-x-caption").replaceChildren(`x = example #${i}`, el("br"), `label ${className(S.labels[i])}`);
  showStrip($("arith-strip"), strip, $("arith-names"), ks.map((k) => `as ${className(Number(k))}`));
}

// -- drawing your own digit, and the plane's overlay: the prior, the interpolation path, a posterior --
// The overlay is an SVG laid over the plane canvas (pointer events pass through it to the canvas),
// so what it draws keeps its coordinates as attributes: the browser test reads the ellipses' cx, cy, rx, ry.
const SVG_NS = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}
// The drawing: its latest posterior (result) and the pixels that were sent for it; gen counts clears.
const D = { drawing: false, last: null, inked: false, result: null, sent: null, pending: false, busy: false, gen: 0 };
Object.assign(stats, { encodes: 0, encodeInflight: 0 });
Object.assign(window.vaekitExplore, { D, drawingPixels });

function drawOverlay() {
  const o = $("plane-overlay"), notes = [];
  if (!S.info || S.dimX === S.dimY) { o.replaceChildren(); $("overlay-caption").textContent = ""; return; } // a 1-D code: no plane
  const d = S.info.dims, w = plane.width - PAD.left - PAD.right, h = plane.height - PAD.top - PAD.bottom;
  const sx = w / (d[S.dimX].hi - d[S.dimX].lo), sy = h / (d[S.dimY].hi - d[S.dimY].lo); // pixels per unit of z
  const at = (z) => toPx(z[S.dimX], z[S.dimY]);
  const clip = svgEl("clipPath", { id: "plot-area" }, svgEl("rect", { x: PAD.left, y: PAD.top, width: w, height: h }));
  const prior = svgEl("g", { id: "prior-contours" });
  const priorLabels = svgEl("g", { id: "prior-labels" }); // drawn last, over the path and the posterior
  const m = S.info.model, cap = caps();
  if (cap.prior_contours) {
    const [cx, cy] = toPx(0, 0), diag = Math.SQRT1_2;
    for (const r of [1, 2, 3]) {
      prior.append(svgEl("ellipse", { cx, cy, rx: r * sx, ry: r * sy, fill: "none", stroke: "#7b8595", "stroke-width": 1, "stroke-dasharray": "5 4", "data-sd": r }));
      // At the circle's top right (45°), just outside it, on a white halo so it reads over dots and lines.
      priorLabels.append(svgEl("text", { x: cx + r * sx * diag + 2, y: cy - r * sy * diag - 3, fill: "#3b4252", "font-size": 11, "font-weight": 600,
        stroke: "#fff", "stroke-width": 3, "stroke-linejoin": "round", "paint-order": "stroke", "data-sd": r }, `${r} sd`));
    }
    notes.push("Dashed circles: the prior N(0, I) at 1, 2 and 3 sd.");
  } else if (cap.prior) {
    notes.push(`The prior (${cap.prior}) is not a standard normal: its contours are not drawn.`);
  }
  const path = svgEl("g", { id: "interp-path" });
  if (S.path) {
    const { a, b, steps } = S.path, [x1, y1] = at(a), [x2, y2] = at(b);
    path.append(svgEl("line", { x1, y1, x2, y2, stroke: "#fff", "stroke-width": 4 }), svgEl("line", { x1, y1, x2, y2, stroke: "#1d2330", "stroke-width": 1.5 }));
    for (let k = 0; k < steps; k++) {
      const t = k / (steps - 1), [x, y] = at(a.map((v, j) => (1 - t) * v + t * b[j]));
      path.append(svgEl("circle", { cx: x, cy: y, r: 2.5, fill: "#fff", stroke: "#1d2330", "stroke-width": 1.2 }));
    }
    path.append(svgEl("text", { x: x1 + 6, y: y1 - 6, fill: "#1d2330", "font-size": 12, "font-weight": 700 }, "a"),
      svgEl("text", { x: x2 + 6, y: y2 - 6, fill: "#1d2330", "font-size": 12, "font-weight": 700 }, "b"));
    notes.push(`Line a → b: the interpolation path, its ${steps} codes as open dots.`);
  }
  const post = svgEl("g", { id: "drawn-posterior", "data-dims": `${S.dimX},${S.dimY}` });
  const r = D.result;
  if (r) {
    const [cx, cy] = at(r.mean), s = r.std;
    if (s && s[S.dimX] !== null && s[S.dimY] !== null) {
      for (const k of [2, 1]) { // a white halo under each, so they read over the dots of any class
        const e = { cx, cy, rx: k * s[S.dimX] * sx, ry: k * s[S.dimY] * sy };
        post.append(svgEl("ellipse", { ...e, fill: "none", stroke: "#fff", "stroke-width": 4 }),
          svgEl("ellipse", { ...e, id: `posterior-${k}sd`, fill: k === 1 ? "rgba(17, 17, 17, 0.12)" : "none", stroke: "#111", "stroke-width": 2, "stroke-dasharray": k === 2 ? "7 4" : "none" }));
      }
    }
    for (const z of r.samples) {
      const [x, y] = at(z);
      post.append(svgEl("circle", { cx: x, cy: y, r: 2.4, fill: "#fff", stroke: "#111", "stroke-width": 1.2, class: "posterior-sample" }));
    }
    post.append(svgEl("circle", { id: "posterior-mean", cx, cy, r: 4.5, fill: "#111", stroke: "#fff", "stroke-width": 2 }));
    if (!cap.posterior_spread) notes.push("Black dot: the code of your drawing (an autoencoder's encoder gives one point).");
    else if (s && s[S.dimX] !== null && s[S.dimY] !== null) notes.push(`Black ellipses: the posterior q(z|x) of your drawing, ±1 sd (shaded) and ±2 sd (dashed), with ${r.samples.length} samples from it as white dots.`);
    else notes.push(`Black dot: the mean of your drawing's posterior; its family (${r.posterior}) has no finite sd to draw.`);
  }
  if (m.code_dim > 2 && notes.length) notes.push(`With a ${m.code_dim}-D code these are projected onto the plane's axes z${S.dimX} and z${S.dimY}: each is the marginal on those two dimensions.`);
  o.replaceChildren(svgEl("defs", {}, clip), svgEl("g", { "clip-path": "url(#plot-area)" }, prior, path, post, priorLabels));
  $("overlay-caption").textContent = notes.join(" ");
}
// The interpolation just shown: its two ends as codes (a class mean or an example's code) and its steps.
function showPath(steps) {
  const end = (e) => ($(`${e}-kind`).value === "class" ? S.info.class_means[$(`${e}-class`).value] : S.codes[Number($(`${e}-index`).value)]);
  const a = end("a"), b = end("b");
  S.path = a && b ? { a, b, steps } : null;
  drawOverlay();
}

function setupDrawing() {
  const c = $("draw");
  const pos = (ev) => { const r = c.getBoundingClientRect(); return [(ev.clientX - r.left) * (c.width / r.width), (ev.clientY - r.top) * (c.height / r.height)]; };
  c.addEventListener("pointerdown", (ev) => { c.setPointerCapture(ev.pointerId); D.drawing = true; D.last = pos(ev); strokeTo(D.last); });
  c.addEventListener("pointermove", (ev) => { if (D.drawing) { strokeTo(pos(ev)); requestEncode(); } });
  const end = () => { if (D.drawing) { D.drawing = false; requestEncode(); } };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", clearDrawing);
  if (caps().conditional) $("label").addEventListener("change", () => { if (D.inked) requestEncode(); }); // q(z|x, y) depends on y
  const [h, w] = S.info.data.image_shape;
  $("draw-input-caption").textContent = `what the encoder sees (${h}×${w})`;
  $("draw-panel").hidden = false;
  clearDrawing();
}
// A thick white stroke with round ends on black, like the pen strokes of MNIST's digits.
function strokeTo(p) {
  const c = $("draw"), ctx = c.getContext("2d");
  Object.assign(ctx, { strokeStyle: "#fff", lineWidth: c.width / 11, lineCap: "round", lineJoin: "round" });
  ctx.beginPath(); ctx.moveTo(...D.last); ctx.lineTo(...p); ctx.stroke();
  D.last = p; D.inked = true;
}
function clearDrawing() {
  D.gen += 1; D.inked = false; D.result = null; D.sent = null;
  for (const id of ["draw", "draw-input", "draw-decoded"]) {
    const c = $(id), ctx = c.getContext("2d");
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height);
  }
  $("draw-readout").textContent = "";
  drawOverlay();
}

// The drawing as the model's input, in [0, 1], as MNIST's digits were made: the bounding box of the
// ink scaled to fit 20×20 of 28×28 (aspect kept; in proportion for other sizes), the centre of mass
// at the image's centre. Each pixel averages n×n points of the drawing (a box filter). Rounded to 3
// decimals, the values sent; null when nothing is drawn.
function drawingPixels() {
  const c = $("draw"), W = c.width, H = c.height;
  const rgba = c.getContext("2d").getImageData(0, 0, W, H).data, g = new Float32Array(W * H);
  let mass = 0, mx = 0, my = 0, x0 = W, x1 = -1, y0 = H, y1 = -1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const v = rgba[4 * (y * W + x)] / 255;
      if (v <= 0) continue;
      g[y * W + x] = v; mass += v; mx += v * (x + 0.5); my += v * (y + 0.5);
      if (v > 0.1) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
  }
  if (x1 < 0) return null;
  const [h, w] = S.info.data.image_shape;
  const s = ((20 / 28) * Math.min(h, w)) / Math.max(x1 - x0 + 1, y1 - y0 + 1, W / 6); // image pixels per drawing pixel; a dot is not blown up
  const cx = mx / mass, cy = my / mass, n = Math.min(16, Math.ceil(1 / s));
  const out = [];
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      let sum = 0;
      for (let a = 0; a < n; a++) {
        const py = Math.floor(cy + (i + (a + 0.5) / n - h / 2) / s);
        if (py < 0 || py >= H) continue;
        for (let b = 0; b < n; b++) {
          const px = Math.floor(cx + (j + (b + 0.5) / n - w / 2) / s);
          if (px >= 0 && px < W) sum += g[py * W + px];
        }
      }
      out.push(Math.round((sum / (n * n)) * 1000) / 1000);
    }
  }
  const shape = S.info.data.shape; // a colour model (3, H, W) gets the grey drawing in each channel
  return shape.length === 3 && shape[0] === 3 ? out.concat(out, out) : out;
}

// At most one encode in flight, as with decodes: strokes meanwhile only mark the drawing as changed,
// and its latest state is sent when the answer arrives.
function requestEncode() {
  D.pending = true;
  if (!D.busy) encodePump();
}
async function encodePump() {
  if (!D.pending) return;
  D.pending = false;
  const x = drawingPixels(), gen = D.gen;
  if (!x) return;
  D.busy = true;
  stats.encodeInflight += 1;
  try {
    const r = await getJSON(`/encode.json?x=${x.join(",")}${labelParam()}`);
    if (gen === D.gen) {
      D.result = r; D.sent = x;
      showDrawnInput(x);
      drawOverlay();
      const s = r.std, dims = r.mean.length <= 4 ? r.mean.map((_, j) => j) : [S.dimX, S.dimY];
      $("draw-readout").textContent = `μ = (${dims.map((j) => fmt(r.mean[j])).join(", ")})` + (s ? `, σ = (${dims.map((j) => fmt(s[j])).join(", ")})` : "")
        + (r.mean.length > 4 ? ` on z${S.dimX}, z${S.dimY}` : "");
      const bmp = await getBitmap(r.decoded_url);
      if (gen === D.gen) drawBitmap($("draw-decoded"), bmp);
    }
    status("");
  } catch (e) {
    status(e.message);
  } finally {
    stats.encodeInflight -= 1;
    stats.encodes += 1;
    D.busy = false;
  }
  if (D.pending) encodePump();
}
function showDrawnInput(x) {
  const [h, w] = S.info.data.image_shape, img = new ImageData(w, h);
  for (let k = 0; k < h * w; k++) {
    const v = Math.round(x[k] * 255);
    img.data.set([v, v, v, 255], 4 * k);
  }
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  c.getContext("2d").putImageData(img, 0, 0);
  drawBitmap($("draw-input"), c);
}

// A code drawn from the prior p(z), decoded: the generative model run forwards. Each click draws anew.
let priorDraws = 0;
async function samplePrior() {
  try {
    const z = (await getJSON(`/sample.json?n=1&seed=${++priorDraws}`)).z[0];
    S.z = z;
    drawPlane(); syncSliders(); requestDecode();
  } catch (e) { status(e.message); }
}

// -- start ---------------------------------------------------------------------------------------
function fillSelect(sel, items, value) {
  sel.replaceChildren(...items.map(([v, text]) => new Option(text, String(v))));
  if (value !== undefined) sel.value = String(value);
}
// The header, the titles and the panels this model has: read from its capabilities, never its family's name.
function describeModel(info) {
  const m = info.model, d = info.data, cap = info.capabilities;
  $("run-name").textContent = info.name;
  document.title = `vaekit explore: ${info.name}`;
  $("summary").textContent = `${cap.conditional ? "conditional " : ""}${cap.title}, ${m.code_dim}-D code, `
    + `${m.architecture === "mlp" ? `MLP ${m.hidden.join("-")}` : "convolutional"}, ${m.likelihood} decoder · `
    + `the first ${d.n} examples of ${d.name}` + (d.split ? ` (${d.split} split)` : "");
  $("command").textContent = info.command ? `trained with: ${info.command}` : "";
  if (cap.conditional) {
    $("label-picker").hidden = false; $("all-labels").hidden = false;
    fillSelect($("label"), info.classes.slice(0, m.n_classes).map((c, k) => [k, c]), 0);
    $("label").addEventListener("change", () => { S.label = Number($("label").value); requestDecode(); interpolate(); });
  }
  if (!isImage()) {
    $("decoded").classList.add("table");
    $("interp-panel").hidden = true;
    $("ex-recon").parentElement.hidden = true;
    $("ex-original").nextElementSibling.textContent = "";
    $("ex-original").classList.add("table");
  }
  // What a decoded image is and what to look for in it: the likelihood's own words (its registry flags).
  $("decoded-title").textContent = `Decoded: ${cap.decoded}`;
  if (isImage() && cap.decoded_note) $("decoded-note").textContent = `What to look for: ${cap.decoded_note}.`;
  if (!cap.posterior_spread) $("posterior-title").textContent = "Code (the encoder's output) per dimension";
  if (cap.prior_samples) {
    $("prior-sample").hidden = false;
    $("prior-sample").addEventListener("click", samplePrior);
  }
}
function setupPlane(info) {
  [S.dimX, S.dimY] = info.plane.length === 2 ? info.plane : [0, 0];
  const dimItems = info.order.map((j) => [j, dimName(j)]);
  fillSelect($("dim-x"), dimItems, S.dimX);
  fillSelect($("dim-y"), dimItems, S.dimY);
  if (info.model.code_dim <= 2) $("plane-controls").hidden = true;
  for (const id of ["dim-x", "dim-y"]) {
    $(id).addEventListener("change", () => {
      S.dimX = Number($("dim-x").value); S.dimY = Number($("dim-y").value);
      drawDots(); drawPlane();
    });
  }
  $("hold").addEventListener("change", () => { holdOthers(); drawPlane(); syncSliders(); requestDecode(); });
  const present = S.labels ? [...new Set(S.labels)].sort((a, b) => a - b) : [];
  $("legend").replaceChildren(...present.map((k) => {
    const s = el("span", {}, className(k));
    s.style.setProperty("--c", colour(k)); // the dot's colour, read by app.css
    return s;
  }));
}
function setupInterpolation(info) {
  const meanKeys = Object.keys(info.class_means), n = info.data.n, codeDim = info.model.code_dim;
  for (const end of ["a", "b"]) {
    fillSelect($(`${end}-class`), meanKeys.map((k) => [k, className(Number(k))]));
    $(`${end}-kind`).addEventListener("change", syncEnds);
    $(`${end}-use`).addEventListener("click", () => { $(`${end}-kind`).value = "example"; $(`${end}-index`).value = S.selected; syncEnds(); interpolate(); });
    $(`${end}-index`).max = n - 1;
  }
  if (meanKeys.length >= 2) {
    $("a-class").value = meanKeys.includes("1") ? "1" : meanKeys[0];
    $("b-class").value = meanKeys.includes("7") ? "7" : meanKeys[1];
  } else {
    $("a-kind").value = "example"; $("b-kind").value = "example";
    $("a-kind").disabled = $("b-kind").disabled = true;
  }
  syncEnds();
  $("interpolate").addEventListener("click", interpolate);
  $("arith").hidden = !(isImage() && meanKeys.length >= 2);
  $("steps").max = info.limits.max_steps; // typing more is clamped to this, with a note (interpolate)
  $("steps").title = `2 to ${info.limits.max_steps} images`;
  if (codeDim <= 2) {
    // Two numbers hold the class itself, not a style beside it: the row drifts into other classes.
    $("arith-hint").textContent = "The selected example moved by each class's mean: z(x) − mean(class of x) + mean(class k). "
      + `With a ${codeDim}-D code the class takes up the code, so expect other digits than k in this row, not x's style kept.`;
  }
}
// -- a discrete code (a VQ-VAE): the selected example's grid of codebook entries, each cell editable --
// G.original is the example's grid as encoded, G.grid the edited one; G.gen drops a decode answered
// after a newer edit, so the image shown is always the grid shown.
const G = { original: null, grid: null, cell: null, gen: 0 };
function setupGrid(info) {
  if (!caps().code_grid) return;
  $("grid-panel").hidden = false;
  // The grid is this model's code; the chart of one row per number of it (D per cell) would be hundreds of rows.
  $("posterior-title").hidden = true; $("ex-posterior").hidden = true;
  const k = info.code_grid.codebook_size;
  $("grid-entry").max = String(k - 1);
  $("grid-entry").title = `a codebook entry, 0 to ${k - 1}`;
  $("grid-entry").addEventListener("input", () => setCell($("grid-entry").value));
  $("grid-reset").addEventListener("click", () => {
    if (!G.original) return;
    G.grid = G.original.map((r) => r.slice()); G.cell = null;
    drawGrid(); decodeGrid();
  });
}
async function showGrid(i) {
  const out = await getJSON(`/grid.json?i=${i}`);
  if (S.selected !== i) return;
  G.original = out.grid; G.grid = out.grid.map((r) => r.slice()); G.cell = null;
  drawGrid();
  await decodeGrid();
}
function drawGrid() {
  const rows = G.grid.map((r, a) => el("tr", {}, ...r.map((v, b) => {
    const cls = [v !== G.original[a][b] ? "edited" : "", G.cell && G.cell[0] === a && G.cell[1] === b ? "sel" : ""].join(" ").trim();
    const td = el("td", { className: cls, title: `row ${a + 1}, column ${b + 1}: entry ${v} (encoded: ${G.original[a][b]})` }, String(v));
    td.dataset.row = a; td.dataset.col = b;
    td.addEventListener("click", () => {
      G.cell = [a, b];
      $("grid-entry").disabled = false; $("grid-entry").value = String(G.grid[a][b]);
      drawGrid(); $("grid-entry").focus();
    });
    return td;
  })));
  $("grid-cells").replaceChildren(...rows);
  $("grid-cell").textContent = G.cell ? `row ${G.cell[0] + 1}, column ${G.cell[1] + 1}:` : "click a cell";
  $("grid-entry").disabled = !G.cell;
  const changed = G.grid.flat().filter((v, j) => v !== G.original.flat()[j]).length;
  $("grid-changed").textContent = `${changed} of ${G.grid.flat().length} cells edited`;
}
function setCell(text) {
  const k = S.info.code_grid.codebook_size, v = Number(text);
  if (!G.cell || text === "" || !Number.isInteger(v) || v < 0 || v >= k) {
    status(`an entry is a whole number from 0 to ${k - 1}`);
    return;
  }
  status("");
  G.grid[G.cell[0]][G.cell[1]] = v;
  drawGrid(); decodeGrid();
}
async function decodeGrid() {
  const gen = ++G.gen;
  try {
    const bmp = await getBitmap("/decode-grid?g=" + G.grid.flat().join(","));
    if (gen === G.gen) drawBitmap($("grid-decoded"), bmp);
  } catch (e) { status(e.message); }
}
async function start() {
  const [info, codes] = await Promise.all([getJSON("/info"), getJSON("/codes")]);
  S.info = info; S.codes = codes.codes; S.labels = codes.labels;
  const n = info.data.n;
  describeModel(info);
  setupPlane(info);
  setupInterpolation(info);
  $("example-index").max = n - 1;
  $("example-index").addEventListener("change", () => {
    const i = Math.max(0, Math.min(n - 1, Math.round(Number($("example-index").value) || 0)));
    selectExample(i);
  });
  $("random-example").addEventListener("click", () => selectExample(Math.floor(Math.random() * n)));
  if (isImage()) setupDrawing();
  setupGrid(info);
  buildSliders();
  S.z = S.codes[0].slice();
  drawDots();
  await selectExample(0);
  if (isImage()) await interpolate();
  document.body.dataset.ready = "1"; // the browser tests wait for this
}
start().catch((e) => status(`could not start: ${e.message}`));
