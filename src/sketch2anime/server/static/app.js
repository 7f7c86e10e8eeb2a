// sketch2anime drawing panel: controls, live generation, variations, export.
// Plain browser JavaScript modules: no build step, nothing loaded from outside this server.
import { Drawing, SIZE, canvasBlob, parseHex } from "/static/drawing.js";

const DEBOUNCE_MS = 150; // slider and seed changes: wait until the hand stops
// A lifted pen is one discrete event: the update starts almost at once (a short pause still merges an
// undo pressed right after the stroke). At most one request is in flight; edits made meanwhile are
// sent together when it returns.
const STROKE_DEBOUNCE_MS = 20;
// Hints live on a grid 4x coarser than the model (16 px for a 64 px model, 128 for a 512 px one), so
// live updates send the hint layer at 128 px: a 512 px PNG would cost encoding and decoding for nothing.
const HINT_UPLOAD_SIZE = 128;
const SWATCHES = ["#2b2b3a", "#f2d36b", "#c8503c", "#e58fb1", "#5a7fd6", "#6bb36b", "#f6dcc8", "#ffffff"];

const $ = (id) => document.getElementById(id);
const shadow = $("shadow"), hintCanvas = $("hint-layer");
const resultCanvas = $("result"), resultFrame = $("result-frame"), busy = $("busy");
const resultCtx = resultCanvas.getContext("2d");

const state = {
  models: [], model: null, upscalers: [], sharpTimer: 0,
  seq: 0, applied: 0, inFlight: false, pending: false, timer: 0,
  editedAt: 0, // when the oldest edit not yet shown happened (pen-up): the pen-up-to-pixels figure
  hintBlob: null, // the encoded hint layer, kept until the hint layer changes
  result: null, // {blob, projected: Blob | null}, both at the model's resolution
};

const drawing = new Drawing(
  { stack: $("stack"), sketch: $("sketch-layer"), hint: hintCanvas, cursor: $("cursor-layer") },
  { onEdit: edited, onPick: pickColor, onHistory: updateHistoryButtons },
);

// ------------------------------------------------------------------ small helpers
function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function dataUrlToBlob(url) {
  // Decoded by hand: the page's CSP does not let fetch() read data: URLs.
  const [head, data] = url.split(",");
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: head.slice(5).split(";")[0] || "image/png" });
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function readJson(res) {
  try { return await res.json(); } catch { return {}; }
}

function errorText(res, body) {
  let detail = body && body.detail;
  if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
  return detail || `request failed (HTTP ${res.status})`;
}

const guarded = (fn) => async () => {
  try { await fn(); } catch (err) { setStatus(err.message, true); }
};

const currentModel = () => state.models.find((m) => m.name === state.model) || null;

// ------------------------------------------------------------------ tools
function setTool(tool) {
  drawing.tool = tool;
  document.querySelectorAll("button.tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
  const size = $("brush-size");
  size.disabled = tool === "eyedropper";
  size.value = drawing.sizes[tool];
  $("brush-size-value").textContent = size.value;
  $("stack").classList.toggle("picking", tool === "eyedropper");
  resultFrame.classList.toggle("picking", tool === "eyedropper");
  drawing.drawCursor(null);
}

function setColor(hex) {
  drawing.color = hex;
  $("hint-color").value = hex;
  $("hint-hex").value = hex;
  $("hint-hex").classList.remove("invalid");
}

function updateHistoryButtons() {
  $("undo").disabled = !drawing.canUndo;
  $("redo").disabled = !drawing.canRedo;
}

function pickColor(e, element) {
  // The colour the user sees under the pointer: the shown result canvas, at the same relative position.
  if (!state.result) { setStatus("nothing to pick from yet: draw something first", true); return; }
  const r = element.getBoundingClientRect();
  const x = Math.min(SIZE - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * SIZE)));
  const y = Math.min(SIZE - 1, Math.max(0, Math.floor(((e.clientY - r.top) / r.height) * SIZE)));
  const [red, green, blue] = resultCtx.getImageData(x, y, 1, 1).data;
  setColor("#" + [red, green, blue].map((v) => v.toString(16).padStart(2, "0")).join(""));
  setTool("hint");
}

// ------------------------------------------------------------------ live generation
function edited(layer) {
  $("variations").classList.add("outdated");
  if (layer === "hint") state.hintBlob = null;
  if (!state.editedAt) state.editedAt = performance.now();
  clearTimeout(state.timer);
  const wait = layer === "sketch" || layer === "hint" ? STROKE_DEBOUNCE_MS : DEBOUNCE_MS;
  state.timer = setTimeout(() => { state.timer = 0; requestGenerate(); }, wait);
  busy.hidden = false; // an update is on its way (also what the browser test waits for)
}

function requestGenerate() {
  // At most one request in flight: later edits wait and are sent together when it returns.
  if (state.inFlight) { state.pending = true; return; }
  runGenerate();
}

function currentSeed() {
  const v = Number.parseInt($("seed").value, 10);
  return Number.isFinite(v) && v >= 0 && v <= 4294967295 ? v : 0;
}

function sketchUploadSize() {
  // 4x the model's resolution (256 px for a 64 px model; the whole 512 px canvas from 128 px up): a
  // quarter of the bytes, and nearly the full canvas's result (measured on examples/sketches/face.png:
  // mean |difference| 1.0 of 255 at 256 px, but 5.9 at 128 px, where the pooled lines get too thick).
  const m = currentModel();
  const side = m ? 4 * m.image_size : SIZE;
  return SIZE % side === 0 && side < SIZE ? side : SIZE;
}

function hintUploadSize() {
  // 128 px is 4x the hint grid of a 128 px model; bigger models get their grid's size at least.
  const m = currentModel();
  return Math.min(SIZE, Math.max(HINT_UPLOAD_SIZE, m ? m.hint_size : 0));
}

function workScale() {
  // Only guided models run at another size; the switch is hidden for the others.
  return !$("work-scale-choice").hidden && $("work-scale").checked ? 2 : 1;
}

async function inputForm() {
  const form = new FormData();
  form.append("sketch", drawing.sketchPgm(sketchUploadSize()), "sketch.pgm");
  if (!state.hintBlob) state.hintBlob = await drawing.hintBlob(hintUploadSize());
  form.append("hint", state.hintBlob, "hint.png");
  form.append("projection", $("projection").value);
  form.append("seed", String(currentSeed()));
  form.append("flatten", $("flatten").checked ? "1" : "0");
  if (workScale() !== 1) form.append("work_scale", String(workScale()));
  if (state.model) form.append("model", state.model);
  // The result comes at the model's resolution and the canvas scales it up: an upscaled 512 px PNG
  // would cost the server more time than the model itself.
  form.append("output_size", "model");
  return form;
}

async function runGenerate() {
  state.inFlight = true;
  state.pending = false;
  const seq = ++state.seq;
  const model = state.model;
  busy.hidden = false;
  const editedAt = state.editedAt;
  state.editedAt = 0;
  // The update time shown counts encoding, upload, server, decoding and drawing; each part is kept
  // on the result canvas for benchmarks/panel_latency.py.
  const started = performance.now();
  try {
    const form = await inputForm();
    const encoded = performance.now();
    const res = await fetch("/api/generate", { method: "POST", body: form });
    const body = await readJson(res);
    const answered = performance.now();
    if (!res.ok) throw new Error(errorText(res, body));
    // Stale answers (older than the one shown, or for a model no longer selected) are dropped.
    if (seq > state.applied && model === state.model) {
      state.applied = seq;
      const times = await showResult(dataUrlToBlob(body.image), body.projected_sketch);
      scheduleSharp(seq);
      const done = performance.now();
      const updateMs = done - started;
      Object.assign(resultCanvas.dataset, {
        updateMs: updateMs.toFixed(1),
        penUpMs: editedAt ? (done - editedAt).toFixed(1) : "",
        encodeMs: (encoded - started).toFixed(1),
        requestMs: (answered - encoded).toFixed(1),
        serverMs: String(body.server_ms ?? ""),
        modelMs: String(body.elapsed_ms),
        decodeMs: times.decode.toFixed(1),
        drawMs: times.draw.toFixed(1),
      });
      resultCanvas.dataset.generation = String(seq);
      const precision = state.models.find((m) => m.name === body.model)?.precision;
      setStatus(`${Math.round(updateMs)} ms update (model ${Math.round(body.elapsed_ms)} ms`
        + `${precision ? `, ${precision}` : ""}) · ${body.model} · ${body.width}×${body.height} px`);
    }
  } catch (err) {
    if (seq > state.applied) setStatus(err.message, true);
  } finally {
    state.inFlight = false;
    if (state.pending) requestGenerate();
    else if (!state.timer) busy.hidden = true;
  }
}

async function showResult(blob, projectedUrl) {
  // createImageBitmap decodes off the main thread; an <img> would wait for its load event.
  const start = performance.now();
  const image = await createImageBitmap(blob);
  const decoded = performance.now();
  resultCtx.imageSmoothingQuality = "high";
  resultCtx.clearRect(0, 0, SIZE, SIZE);
  resultCtx.drawImage(image, 0, 0, SIZE, SIZE);
  image.close();
  const drawn = performance.now();
  // projectedUrl: a data URL, null (model without projection), or undefined (keep the current one).
  const projected = projectedUrl ? dataUrlToBlob(projectedUrl) : projectedUrl === null ? null : state.result?.projected ?? null;
  state.result = { blob, projected };
  if (projectedUrl) shadow.src = projectedUrl;
  else if (projectedUrl === null) shadow.removeAttribute("src");
  updateShadow();
  return { decode: decoded - start, draw: drawn - decoded };
}

function updateShadow() {
  const m = currentModel();
  const visible = $("show-shadow").checked && shadow.hasAttribute("src") && (!m || m.projection);
  shadow.classList.toggle("hidden", !visible);
}

async function showVariations() {
  const button = $("variations-button");
  button.disabled = true;
  setStatus("making variations…");
  try {
    const form = await inputForm();
    form.append("count", "4");
    const res = await fetch("/api/variations", { method: "POST", body: form });
    const body = await readJson(res);
    if (!res.ok) throw new Error(errorText(res, body));
    const box = $("variations");
    box.replaceChildren();
    box.classList.remove("outdated");
    body.images.forEach((url, i) => {
      const img = document.createElement("img");
      img.src = url;
      img.alt = `candidate ${i + 1}`;
      img.title = "Use this one";
      img.addEventListener("click", async () => {
        box.querySelectorAll("img").forEach((el) => el.classList.toggle("picked", el === img));
        await showResult(dataUrlToBlob(url), undefined);
        setStatus(`candidate ${i + 1} picked (the next stroke makes a fresh result)`);
      });
      box.appendChild(img);
    });
    setStatus(`${body.images.length} candidates · ${Math.round(body.elapsed_ms)} ms · click one to use it`);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ export
async function exportZip() {
  const form = new FormData();
  form.append("sketch", await drawing.sketchBlob(), "sketch.png");
  form.append("hint", await drawing.hintBlob(), "hint.png");
  if (state.result) form.append("result", await canvasBlob(resultCanvas), "result.png");
  if (state.result?.projected) form.append("projected", state.result.projected, "projected.png");
  form.append("settings", JSON.stringify({ model: state.model, projection: Number($("projection").value), seed: currentSeed(),
                                          flatten: $("flatten").checked ? 1 : 0, work_scale: workScale() }));
  const res = await fetch("/api/export", { method: "POST", body: form });
  if (!res.ok) throw new Error(errorText(res, await readJson(res)));
  download(await res.blob(), "sketch2anime.zip");
}

// When the pen rests, the server's anime upscaler (waifu2x / Real-ESRGAN) replaces the browser-scaled
// preview with a sharp picture; any newer edit or result makes the answer stale and it is dropped.
const SHARP_REST_MS = 300;

function scheduleSharp(seq) {
  clearTimeout(state.sharpTimer);
  if (!state.upscalers.length) return;
  state.sharpTimer = setTimeout(guarded(() => sharpen(seq)), SHARP_REST_MS);
}

const resting = (seq) => state.seq === seq && state.applied === seq && !state.timer && !state.inFlight;

async function sharpen(seq) {
  const result = state.result;
  if (!resting(seq) || !result) return;
  const started = performance.now();
  const form = new FormData();
  form.append("image", result.blob, "result.png");
  form.append("upscaler", state.upscalers[0]);
  const res = await fetch("/api/upscale", { method: "POST", body: form });
  if (!res.ok) throw new Error(errorText(res, await readJson(res)));
  const large = await res.blob();
  if (!resting(seq) || state.result !== result) return;
  const image = await createImageBitmap(large);
  resultCtx.imageSmoothingQuality = "high";
  resultCtx.clearRect(0, 0, SIZE, SIZE);
  resultCtx.drawImage(image, 0, 0, SIZE, SIZE);
  result.large = large;
  resultCanvas.dataset.sharp = `${seq}:${image.width}`;
  image.close();
  setStatus(`${$("status").textContent.split(" · sharp")[0]} · sharp ${state.upscalers[0]} `
    + `(${Math.round(performance.now() - started)} ms)`);
}

async function exportLarge() {
  if (!state.result) throw new Error("no result to enlarge yet");
  if (state.result.large) { download(state.result.large, "sketch2anime-large.png"); return; }
  const form = new FormData();
  form.append("image", state.result.blob, "result.png");
  form.append("upscaler", state.upscalers[0]);
  const res = await fetch("/api/upscale", { method: "POST", body: form });
  if (!res.ok) throw new Error(errorText(res, await readJson(res)));
  download(await res.blob(), "sketch2anime-large.png");
}

// ------------------------------------------------------------------ wiring
function onKey(e) {
  const t = e.target;
  const typing = (t instanceof HTMLInputElement && (t.type === "text" || t.type === "number")) || t instanceof HTMLSelectElement;
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && !e.altKey && (key === "z" || key === "y")) {
    if (typing) return; // the field's own text undo
    e.preventDefault();
    if (key === "y" || e.shiftKey) drawing.redo(); else drawing.undo();
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const tools = { p: "pen", e: e.shiftKey ? "hint-eraser" : "eraser", h: "hint", i: "eyedropper" };
  if (tools[key]) setTool(tools[key]);
  else if (key === "[" || key === "]") {
    const size = $("brush-size");
    size.value = String(Number(size.value) + (key === "]" ? 2 : -2));
    size.dispatchEvent(new Event("input"));
  }
}

function wire() {
  document.querySelectorAll("button.tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("brush-size").addEventListener("input", (e) => {
    drawing.sizes[drawing.tool] = Number(e.target.value);
    $("brush-size-value").textContent = e.target.value;
  });
  $("hint-color").addEventListener("input", (e) => { setColor(e.target.value); if (drawing.tool !== "hint") setTool("hint"); });
  $("hint-hex").addEventListener("input", (e) => {
    const hex = parseHex(e.target.value);
    e.target.classList.toggle("invalid", !hex);
    if (hex) { drawing.color = hex; $("hint-color").value = hex; }
  });
  $("hint-hex").addEventListener("change", (e) => { const hex = parseHex(e.target.value); if (hex) setColor(hex); });
  for (const colour of SWATCHES) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "swatch";
    b.title = colour;
    b.style.background = colour;
    b.addEventListener("click", () => { setColor(colour); setTool("hint"); });
    $("swatches").appendChild(b);
  }
  $("undo").addEventListener("click", () => drawing.undo());
  $("redo").addEventListener("click", () => drawing.redo());
  $("clear-sketch").addEventListener("click", () => drawing.clear("sketch"));
  $("clear-hints").addEventListener("click", () => drawing.clear("hint"));
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) await guarded(() => drawing.upload(file))();
  });
  $("show-shadow").addEventListener("change", updateShadow);
  $("show-hints").addEventListener("change", (e) => hintCanvas.classList.toggle("hidden", !e.target.checked));
  $("projection").addEventListener("input", (e) => {
    $("projection-value").textContent = Number(e.target.value).toFixed(2);
    edited();
  });
  $("seed").addEventListener("change", edited);
  $("flatten").addEventListener("change", edited);
  $("work-scale").addEventListener("change", edited);
  $("dice").addEventListener("click", () => { $("seed").value = String(Math.floor(Math.random() * 1e9)); edited(); });
  $("variations-button").addEventListener("click", showVariations);
  $("model-select").addEventListener("change", (e) => {
    state.model = e.target.value; state.hintBlob = null; applyModel(); edited();
  });
  resultCanvas.addEventListener("pointerdown", (e) => { if (drawing.tool === "eyedropper") pickColor(e, resultCanvas); });
  $("download-result").addEventListener("click", guarded(async () => {
    if (!state.result) throw new Error("no result yet: draw something first");
    download(await canvasBlob(resultCanvas), "sketch2anime-result.png");
  }));
  $("download-sketch").addEventListener("click", guarded(async () => download(await drawing.sketchBlob(), "sketch.png")));
  $("download-hints").addEventListener("click", guarded(async () => download(await canvasBlob(hintCanvas), "hints.png")));
  $("download-zip").addEventListener("click", guarded(exportZip));
  $("download-large").addEventListener("click", guarded(exportLarge));
  document.addEventListener("keydown", onKey);
}

function applyModel() {
  const m = currentModel();
  $("projection").disabled = !!m && !m.projection;
  $("work-scale-choice").hidden = !m || m.pipeline_type !== "guided";
  $("projection-control").title = m && !m.projection
    ? `the ${m.pipeline_type} model draws exactly from your lines (no projection)`
    : "0 = follow my lines exactly, 1 = snap fully to learned faces";
  updateShadow();
}

async function init() {
  wire();
  setTool("pen");
  setColor(drawing.color);
  try {
    const res = await fetch("/api/models");
    const body = await readJson(res);
    if (!res.ok) throw new Error(errorText(res, body));
    state.models = body.models;
    state.model = body.default;
    state.upscalers = body.upscalers || [];
    const select = $("model-select");
    for (const m of state.models) select.appendChild(new Option(`${m.name} (${m.pipeline_type}, ${m.image_size}px)`, m.name));
    select.value = state.model;
    $("model-choice").hidden = state.models.length < 2;
    $("download-large").hidden = state.upscalers.length === 0;
    applyModel();
    setStatus("ready: start drawing");
    requestGenerate();
  } catch (err) {
    setStatus(`cannot reach the model server: ${err.message}`, true);
  }
}

init();
