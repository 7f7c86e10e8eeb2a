// sketch2anime drawing panel. Plain browser JavaScript: no build step, no external code.
// Layers (bottom to top): projected-sketch shadow, colour hints, sketch, brush cursor.
"use strict";

(() => {
  const SIZE = 512;
  const HISTORY_LIMIT = 50;
  const DEBOUNCE_MS = 150;
  const SWATCHES = ["#2b2b3a", "#f2d36b", "#c8503c", "#e58fb1", "#5a7fd6", "#6bb36b", "#f6dcc8", "#ffffff"];

  const $ = (id) => document.getElementById(id);
  const stack = $("stack"), shadow = $("shadow");
  const sketchCanvas = $("sketch-layer"), hintCanvas = $("hint-layer"), cursorCanvas = $("cursor-layer");
  const resultCanvas = $("result"), resultFrame = $("result-frame");
  const ctxOf = (canvas) => canvas.getContext("2d", { willReadFrequently: true });
  const sketchCtx = ctxOf(sketchCanvas), hintCtx = ctxOf(hintCanvas);
  const cursorCtx = cursorCanvas.getContext("2d"), resultCtx = resultCanvas.getContext("2d");
  const layers = { sketch: { canvas: sketchCanvas, ctx: sketchCtx }, hint: { canvas: hintCanvas, ctx: hintCtx } };

  const state = {
    tool: "pen",
    sizes: { pen: 4, eraser: 24, hint: 28, "hint-eraser": 36, eyedropper: 1 },
    color: "#d94f7a",
    models: [], model: null, upscalers: [],
    undo: [], redo: [],
    stroke: null,
    seq: 0, applied: 0, inFlight: false, pending: false, timer: 0,
    result: null, // {blob, image, projected: Blob|null}
  };

  // ------------------------------------------------------------------ small helpers
  function setStatus(text, isError = false) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  }

  function dataUrlToBlob(url) {
    const [head, data] = url.split(",");
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    return new Blob([bytes], { type: head.slice(5).split(";")[0] || "image/png" });
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the server sent an image the browser cannot show"));
      img.src = src;
    });
  }

  function canvasBlob(canvas) {
    return new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the canvas"))), "image/png"));
  }

  function sketchOnWhite() {
    // The model reads dark lines on white paper; the layer itself stays transparent for the shadow.
    const c = document.createElement("canvas");
    c.width = c.height = SIZE;
    const x = c.getContext("2d");
    x.fillStyle = "#fff";
    x.fillRect(0, 0, SIZE, SIZE);
    x.drawImage(sketchCanvas, 0, 0);
    return c;
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

  const currentModel = () => state.models.find((m) => m.name === state.model) || null;

  // ------------------------------------------------------------------ tools and brush
  function setTool(tool) {
    state.tool = tool;
    document.querySelectorAll("button.tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
    const size = $("brush-size");
    size.disabled = tool === "eyedropper";
    size.value = state.sizes[tool];
    $("brush-size-value").textContent = size.value;
    stack.classList.toggle("picking", tool === "eyedropper");
    resultFrame.classList.toggle("picking", tool === "eyedropper");
    clearCursor();
  }

  function setColor(hex) {
    state.color = hex.toLowerCase();
    $("hint-color").value = state.color;
    $("hint-hex").value = state.color;
    $("hint-hex").classList.remove("invalid");
  }

  function parseHex(text) {
    const t = text.trim().replace(/^#?/, "#");
    if (/^#[0-9a-fA-F]{6}$/.test(t)) return t;
    if (/^#[0-9a-fA-F]{3}$/.test(t)) return "#" + [...t.slice(1)].map((c) => c + c).join("");
    return null;
  }

  function canvasPoint(e) {
    const r = sketchCanvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * SIZE) / r.width, y: ((e.clientY - r.top) * SIZE) / r.height };
  }

  function brushWidth(e) {
    const base = state.sizes[state.tool];
    return e.pointerType === "pen" && e.pressure > 0 ? Math.max(1, base * (0.4 + e.pressure)) : base;
  }

  function prepareStroke(tool) {
    const layer = tool === "pen" || tool === "eraser" ? "sketch" : "hint";
    const ctx = layers[layer].ctx;
    ctx.globalCompositeOperation = tool.endsWith("eraser") ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = tool === "pen" ? "#000" : state.color;
    ctx.lineCap = ctx.lineJoin = "round";
    return { layer, ctx };
  }

  function dot(ctx, p, width) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, width / 2, 0, Math.PI * 2);
    ctx.fill();
  }

  function segment(ctx, a, b, width) {
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  function drawCursor(p) {
    cursorCtx.clearRect(0, 0, SIZE, SIZE);
    if (state.tool === "eyedropper" || !p) return;
    const r = Math.max(1, state.sizes[state.tool] / 2);
    cursorCtx.beginPath();
    cursorCtx.arc(p.x, p.y, r, 0, Math.PI * 2);
    if (state.tool === "hint") {
      cursorCtx.fillStyle = state.color + "66";
      cursorCtx.fill();
    }
    cursorCtx.lineWidth = 3;
    cursorCtx.strokeStyle = "rgba(255,255,255,0.9)";
    cursorCtx.stroke();
    cursorCtx.lineWidth = 1;
    cursorCtx.strokeStyle = "rgba(30,30,40,0.9)";
    cursorCtx.stroke();
  }

  function clearCursor() { cursorCtx.clearRect(0, 0, SIZE, SIZE); }

  // ------------------------------------------------------------------ undo / redo
  function snapshot(layer) {
    return { layer, data: layers[layer].ctx.getImageData(0, 0, SIZE, SIZE) };
  }

  function pushUndo(layer) {
    state.undo.push(snapshot(layer));
    if (state.undo.length > HISTORY_LIMIT) state.undo.shift();
    state.redo = [];
    updateHistoryButtons();
  }

  function restore(from, to) {
    const entry = from.pop();
    if (!entry) return;
    to.push(snapshot(entry.layer));
    const ctx = layers[entry.layer].ctx;
    ctx.globalCompositeOperation = "source-over";
    ctx.putImageData(entry.data, 0, 0);
    updateHistoryButtons();
    edited();
  }

  const undo = () => restore(state.undo, state.redo);
  const redo = () => restore(state.redo, state.undo);

  function updateHistoryButtons() {
    $("undo").disabled = state.undo.length === 0;
    $("redo").disabled = state.redo.length === 0;
  }

  // ------------------------------------------------------------------ pointer input
  stack.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    e.preventDefault();
    // Leave any text field, so Ctrl+Z after drawing undoes the drawing.
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    if (state.tool === "eyedropper") { pickColor(e, sketchCanvas); return; }
    if (state.stroke) return; // a second finger does not start a second stroke
    stack.setPointerCapture(e.pointerId);
    const { layer, ctx } = prepareStroke(state.tool);
    pushUndo(layer);
    const p = canvasPoint(e);
    dot(ctx, p, brushWidth(e));
    state.stroke = { id: e.pointerId, layer, ctx, last: p };
  });

  stack.addEventListener("pointermove", (e) => {
    const s = state.stroke;
    if (s && e.pointerId === s.id) {
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
      for (const ev of events.length ? events : [e]) {
        const p = canvasPoint(ev);
        segment(s.ctx, s.last, p, brushWidth(ev));
        s.last = p;
      }
    }
    if (e.pointerType !== "touch") drawCursor(canvasPoint(e));
  });

  function endStroke(e) {
    const s = state.stroke;
    if (!s || e.pointerId !== s.id) return;
    state.stroke = null;
    s.ctx.globalCompositeOperation = "source-over";
    edited();
  }
  stack.addEventListener("pointerup", endStroke);
  stack.addEventListener("pointercancel", endStroke);
  stack.addEventListener("pointerleave", () => { if (!state.stroke) clearCursor(); });

  resultCanvas.addEventListener("pointerdown", (e) => {
    if (state.tool === "eyedropper") pickColor(e, resultCanvas);
  });

  function pickColor(e, element) {
    if (!state.result) { setStatus("nothing to pick from yet: draw something first", true); return; }
    const img = state.result.image;
    const r = element.getBoundingClientRect();
    const x = Math.min(img.width - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * img.width)));
    const y = Math.min(img.height - 1, Math.max(0, Math.floor(((e.clientY - r.top) / r.height) * img.height)));
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const cx = c.getContext("2d");
    cx.drawImage(img, 0, 0);
    const [red, green, blue] = cx.getImageData(x, y, 1, 1).data;
    setColor("#" + [red, green, blue].map((v) => v.toString(16).padStart(2, "0")).join(""));
    setTool("hint");
  }

  // ------------------------------------------------------------------ generation
  function edited() {
    $("variations").classList.add("outdated");
    clearTimeout(state.timer);
    state.timer = setTimeout(() => { state.timer = 0; requestGenerate(); }, DEBOUNCE_MS);
    $("busy").hidden = false; // an update is on its way (also what tests wait for)
  }

  function requestGenerate() {
    // At most one request in flight: later edits wait and are sent together when it returns.
    if (state.inFlight) { state.pending = true; return; }
    runGenerate();
  }

  async function inputForm() {
    const form = new FormData();
    form.append("sketch", await canvasBlob(sketchOnWhite()), "sketch.png");
    form.append("hint", await canvasBlob(hintCanvas), "hint.png");
    form.append("projection", $("projection").value);
    form.append("seed", String(currentSeed()));
    if (state.model) form.append("model", state.model);
    return form;
  }

  function currentSeed() {
    const v = Number.parseInt($("seed").value, 10);
    return Number.isFinite(v) && v >= 0 && v <= 4294967295 ? v : 0;
  }

  async function runGenerate() {
    state.inFlight = true;
    state.pending = false;
    const seq = ++state.seq;
    const model = state.model;
    $("busy").hidden = false;
    try {
      const res = await fetch("/api/generate", { method: "POST", body: await inputForm() });
      const body = await readJson(res);
      if (!res.ok) throw new Error(errorText(res, body));
      // Responses older than what is shown, or for a model no longer selected, are dropped.
      if (seq > state.applied && model === state.model) {
        state.applied = seq;
        await showResult(dataUrlToBlob(body.image), body.projected_sketch);
        resultCanvas.dataset.generation = String(seq);
        setStatus(`${Math.round(body.elapsed_ms)} ms · ${body.model} · ${body.width}×${body.height}`);
      }
    } catch (err) {
      if (seq > state.applied) setStatus(err.message, true);
    } finally {
      state.inFlight = false;
      if (state.pending) requestGenerate();
      else if (!state.timer) $("busy").hidden = true;
    }
  }

  async function showResult(blob, projectedUrl) {
    const url = URL.createObjectURL(blob);
    const image = await loadImage(url);
    URL.revokeObjectURL(url);
    resultCtx.imageSmoothingQuality = "high";
    resultCtx.clearRect(0, 0, SIZE, SIZE);
    resultCtx.drawImage(image, 0, 0, SIZE, SIZE);
    const projected = projectedUrl ? dataUrlToBlob(projectedUrl) : state.result ? state.result.projected : null;
    state.result = { blob, image, projected };
    if (projectedUrl !== undefined) {
      if (projectedUrl) shadow.src = projectedUrl;
      else shadow.removeAttribute("src");
    }
    updateShadow();
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
          if (Array.isArray(body.seeds)) $("seed").value = String(body.seeds[i]);
          setStatus(`candidate ${i + 1} picked`);
        });
        box.appendChild(img);
      });
      setStatus(`${body.images.length} candidates · ${Math.round(body.elapsed_ms)} ms — click one to use it`);
    } catch (err) {
      setStatus(err.message, true);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ export
  async function exportZip() {
    const form = new FormData();
    form.append("sketch", await canvasBlob(sketchOnWhite()), "sketch.png");
    form.append("hint", await canvasBlob(hintCanvas), "hint.png");
    if (state.result) form.append("result", state.result.blob, "result.png");
    if (state.result && state.result.projected) form.append("projected", state.result.projected, "projected.png");
    form.append("settings", JSON.stringify({
      model: state.model, projection: Number($("projection").value), seed: currentSeed(),
    }));
    const res = await fetch("/api/export", { method: "POST", body: form });
    if (!res.ok) throw new Error(errorText(res, await readJson(res)));
    download(await res.blob(), "sketch2anime.zip");
  }

  async function exportLarge() {
    if (!state.result) throw new Error("no result to enlarge yet");
    const form = new FormData();
    form.append("image", state.result.blob, "result.png");
    form.append("upscaler", state.upscalers[0]);
    const res = await fetch("/api/upscale", { method: "POST", body: form });
    if (!res.ok) throw new Error(errorText(res, await readJson(res)));
    download(await res.blob(), "sketch2anime-large.png");
  }

  const guarded = (fn) => async () => {
    try { await fn(); } catch (err) { setStatus(err.message, true); }
  };

  // ------------------------------------------------------------------ upload
  async function uploadSketch(file) {
    const url = URL.createObjectURL(file);
    let img;
    try { img = await loadImage(url); } finally { URL.revokeObjectURL(url); }
    // Fit inside the square, then turn brightness into ink alpha so the shadow shows through.
    const c = document.createElement("canvas");
    c.width = c.height = SIZE;
    const x = c.getContext("2d", { willReadFrequently: true });
    x.fillStyle = "#fff";
    x.fillRect(0, 0, SIZE, SIZE);
    const scale = Math.min(SIZE / img.width, SIZE / img.height);
    const w = img.width * scale, h = img.height * scale;
    x.drawImage(img, (SIZE - w) / 2, (SIZE - h) / 2, w, h);
    const data = x.getImageData(0, 0, SIZE, SIZE);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) {
      const lum = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      px[i] = px[i + 1] = px[i + 2] = 0;
      px[i + 3] = 255 - lum;
    }
    pushUndo("sketch");
    sketchCtx.globalCompositeOperation = "source-over";
    sketchCtx.putImageData(data, 0, 0);
    edited();
  }

  // ------------------------------------------------------------------ wiring
  function clearLayer(layer) {
    pushUndo(layer);
    layers[layer].ctx.clearRect(0, 0, SIZE, SIZE);
    edited();
  }

  function wire() {
    document.querySelectorAll("button.tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
    $("brush-size").addEventListener("input", (e) => {
      state.sizes[state.tool] = Number(e.target.value);
      $("brush-size-value").textContent = e.target.value;
    });
    $("hint-color").addEventListener("input", (e) => { setColor(e.target.value); if (state.tool !== "hint") setTool("hint"); });
    $("hint-hex").addEventListener("input", (e) => {
      const hex = parseHex(e.target.value);
      e.target.classList.toggle("invalid", !hex);
      if (hex) { state.color = hex.toLowerCase(); $("hint-color").value = state.color; }
    });
    $("hint-hex").addEventListener("change", (e) => { const hex = parseHex(e.target.value); if (hex) setColor(hex); });
    const swatches = $("swatches");
    for (const colour of SWATCHES) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch";
      b.title = colour;
      b.style.background = colour;
      b.addEventListener("click", () => { setColor(colour); setTool("hint"); });
      swatches.appendChild(b);
    }
    $("undo").addEventListener("click", undo);
    $("redo").addEventListener("click", redo);
    $("clear-sketch").addEventListener("click", () => clearLayer("sketch"));
    $("clear-hints").addEventListener("click", () => clearLayer("hint"));
    $("upload").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) await guarded(() => uploadSketch(file))();
    });
    $("show-shadow").addEventListener("change", updateShadow);
    $("show-hints").addEventListener("change", (e) => hintCanvas.classList.toggle("hidden", !e.target.checked));
    $("projection").addEventListener("input", (e) => {
      $("projection-value").textContent = Number(e.target.value).toFixed(2);
      edited();
    });
    $("seed").addEventListener("change", edited);
    $("dice").addEventListener("click", () => { $("seed").value = String(Math.floor(Math.random() * 1e9)); edited(); });
    $("variations-button").addEventListener("click", showVariations);
    $("model-select").addEventListener("change", (e) => { state.model = e.target.value; applyModel(); edited(); });
    $("download-result").addEventListener("click", guarded(async () => {
      if (!state.result) throw new Error("no result yet: draw something first");
      download(state.result.blob, "sketch2anime-result.png");
    }));
    $("download-sketch").addEventListener("click", guarded(async () => download(await canvasBlob(sketchOnWhite()), "sketch.png")));
    $("download-hints").addEventListener("click", guarded(async () => download(await canvasBlob(hintCanvas), "hints.png")));
    $("download-zip").addEventListener("click", guarded(exportZip));
    $("download-large").addEventListener("click", guarded(exportLarge));
    document.addEventListener("keydown", onKey);
  }

  function onKey(e) {
    const t = e.target;
    const typing = t instanceof HTMLInputElement && (t.type === "text" || t.type === "number") || t instanceof HTMLSelectElement;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (key === "z" || key === "y")) {
      if (typing) return;
      e.preventDefault();
      if (key === "y" || e.shiftKey) redo(); else undo();
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

  function applyModel() {
    const m = currentModel();
    const control = $("projection-control");
    $("projection").disabled = !!m && !m.projection;
    control.title = m && !m.projection
      ? `the ${m.pipeline_type} model draws exactly from your lines (no projection)`
      : "0 = follow my lines exactly, 1 = snap fully to learned faces";
    updateShadow();
  }

  async function init() {
    wire();
    setTool("pen");
    setColor(state.color);
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
})();
