// The drawing surface: sketch and hint layers, brushes, brush cursor, undo/redo, sketch upload.
// It knows nothing about the server; app.js listens to `onEdit` and `onPick`.

export const SIZE = 512;
const HISTORY_LIMIT = 50;
const SKETCH_TOOLS = new Set(["pen", "eraser"]);

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot read this image"));
    img.src = src;
  });
}

export function canvasBlob(canvas) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the canvas"))), "image/png"));
}

export function parseHex(text) {
  const t = text.trim().replace(/^#?/, "#");
  if (/^#[0-9a-fA-F]{6}$/.test(t)) return t.toLowerCase();
  if (/^#[0-9a-fA-F]{3}$/.test(t)) return "#" + [...t.slice(1)].map((c) => c + c).join("").toLowerCase();
  return null;
}

export class Drawing {
  /** elements: {stack, sketch, hint, cursor} (canvases SIZE x SIZE stacked inside `stack`). */
  constructor(elements, { onEdit = () => {}, onPick = () => {}, onHistory = () => {} } = {}) {
    this.stack = elements.stack;
    this.canvases = { sketch: elements.sketch, hint: elements.hint };
    const ctxOf = (canvas) => canvas.getContext("2d", { willReadFrequently: true });
    this.ctx = { sketch: ctxOf(elements.sketch), hint: ctxOf(elements.hint) };
    this.cursorCanvas = elements.cursor;
    this.cursorCtx = elements.cursor.getContext("2d");
    this.onEdit = onEdit;
    this.onPick = onPick;
    this.onHistory = onHistory;
    this.tool = "pen";
    this.sizes = { pen: 4, eraser: 24, hint: 28, "hint-eraser": 36, eyedropper: 1 };
    this.color = "#d94f7a";
    this.undoStack = [];
    this.redoStack = [];
    this.stroke = null;
    this.listen();
  }

  // ---- brushes -----------------------------------------------------------------------------
  point(e) {
    const r = this.canvases.sketch.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * SIZE) / r.width, y: ((e.clientY - r.top) * SIZE) / r.height };
  }

  width(e) {
    const base = this.sizes[this.tool];
    return e.pointerType === "pen" && e.pressure > 0 ? Math.max(1, base * (0.4 + e.pressure)) : base;
  }

  startStroke(e) {
    const tool = this.tool;
    const layer = SKETCH_TOOLS.has(tool) ? "sketch" : "hint";
    const ctx = this.ctx[layer];
    ctx.globalCompositeOperation = tool.endsWith("eraser") ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = tool === "pen" ? "#000" : this.color;
    ctx.lineCap = ctx.lineJoin = "round";
    this.pushUndo(layer);
    const p = this.point(e);
    ctx.beginPath();
    ctx.arc(p.x, p.y, this.width(e) / 2, 0, Math.PI * 2);
    ctx.fill();
    this.stroke = { id: e.pointerId, layer, ctx, last: p };
  }

  extendStroke(e) {
    const s = this.stroke;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) {
      const p = this.point(ev);
      s.ctx.lineWidth = this.width(ev);
      s.ctx.beginPath();
      s.ctx.moveTo(s.last.x, s.last.y);
      s.ctx.lineTo(p.x, p.y);
      s.ctx.stroke();
      s.last = p;
    }
  }

  endStroke(e) {
    const s = this.stroke;
    if (!s || e.pointerId !== s.id) return;
    this.stroke = null;
    s.ctx.globalCompositeOperation = "source-over";
    this.onEdit(s.layer);
  }

  drawCursor(p) {
    const c = this.cursorCtx;
    c.clearRect(0, 0, SIZE, SIZE);
    if (this.tool === "eyedropper" || !p) return;
    c.beginPath();
    c.arc(p.x, p.y, Math.max(1, this.sizes[this.tool] / 2), 0, Math.PI * 2);
    if (this.tool === "hint") {
      c.fillStyle = this.color + "66";
      c.fill();
    }
    c.lineWidth = 3;
    c.strokeStyle = "rgba(255,255,255,0.9)";
    c.stroke();
    c.lineWidth = 1;
    c.strokeStyle = "rgba(30,30,40,0.9)";
    c.stroke();
  }

  listen() {
    const stack = this.stack;
    stack.addEventListener("pointerdown", (e) => {
      if (e.pointerType === "mouse" && e.button !== 0) return;
      e.preventDefault();
      // Leave any text field, so Ctrl+Z after drawing undoes the drawing.
      if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
      if (this.tool === "eyedropper") { this.onPick(e, this.canvases.sketch); return; }
      if (this.stroke) return; // a second finger does not start a second stroke
      stack.setPointerCapture(e.pointerId);
      this.startStroke(e);
    });
    stack.addEventListener("pointermove", (e) => {
      if (this.stroke && e.pointerId === this.stroke.id) this.extendStroke(e);
      if (e.pointerType !== "touch") this.drawCursor(this.point(e));
    });
    stack.addEventListener("pointerup", (e) => this.endStroke(e));
    stack.addEventListener("pointercancel", (e) => this.endStroke(e));
    stack.addEventListener("pointerleave", () => { if (!this.stroke) this.drawCursor(null); });
  }

  // ---- undo / redo ---------------------------------------------------------------------------
  snapshot(layer) {
    return { layer, data: this.ctx[layer].getImageData(0, 0, SIZE, SIZE) };
  }

  pushUndo(layer) {
    this.undoStack.push(this.snapshot(layer));
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.onHistory();
  }

  restore(from, to) {
    const entry = from.pop();
    if (!entry) return;
    to.push(this.snapshot(entry.layer));
    this.ctx[entry.layer].globalCompositeOperation = "source-over";
    this.ctx[entry.layer].putImageData(entry.data, 0, 0);
    this.onHistory();
    this.onEdit(entry.layer);
  }

  undo() { this.restore(this.undoStack, this.redoStack); }
  redo() { this.restore(this.redoStack, this.undoStack); }
  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }

  clear(layer) {
    this.pushUndo(layer);
    this.ctx[layer].clearRect(0, 0, SIZE, SIZE);
    this.onEdit(layer);
  }

  // ---- import / export -----------------------------------------------------------------------
  /** The sketch as the model reads it: dark lines on white paper (the layer itself is transparent). */
  sketchOnWhite() {
    const c = document.createElement("canvas");
    c.width = c.height = SIZE;
    const x = c.getContext("2d");
    x.fillStyle = "#fff";
    x.fillRect(0, 0, SIZE, SIZE);
    x.drawImage(this.canvases.sketch, 0, 0);
    return c;
  }

  sketchBlob() { return canvasBlob(this.sketchOnWhite()); }

  /** The same picture as a binary PGM (8-bit grey, no compression) for live updates: the ink is
   * black, so paper white minus the layer's alpha is exactly `sketchOnWhite`, and building it costs
   * one getImageData instead of a PNG encode of the 512 px canvas (the slowest step of an update). */
  sketchPgm(side = SIZE) {
    const rgba = this.ctx.sketch.getImageData(0, 0, SIZE, SIZE).data;
    const header = new TextEncoder().encode(`P5\n${side} ${side}\n255\n`);
    const bytes = new Uint8Array(header.length + side * side);
    bytes.set(header);
    const step = SIZE / side;
    if (step === 1) {
      for (let i = 0, o = header.length; i < rgba.length; i += 4, o++) bytes[o] = 255 - rgba[i + 3];
    } else {
      // Smaller uploads keep each block's darkest ink (a min filter, like the server's before it
      // shrinks a sketch), so thin pen lines stay dark instead of fading to grey.
      const ink = new Uint8Array(side * side);
      for (let y = 0; y < SIZE; y++) {
        const row = ((y / step) | 0) * side;
        for (let x = 0, i = y * SIZE * 4 + 3; x < SIZE; x++, i += 4) {
          const o = row + ((x / step) | 0);
          if (rgba[i] > ink[o]) ink[o] = rgba[i];
        }
      }
      for (let o = 0; o < ink.length; o++) bytes[header.length + o] = 255 - ink[o];
    }
    return new Blob([bytes], { type: "image/x-portable-graymap" });
  }
  /** The hint layer as PNG; with `side` < SIZE shrunk first (the canvas averages premultiplied colour). */
  hintBlob(side = SIZE) {
    if (side >= SIZE) return canvasBlob(this.canvases.hint);
    const small = document.createElement("canvas");
    small.width = small.height = side;
    const cx = small.getContext("2d");
    cx.imageSmoothingQuality = "high";
    cx.drawImage(this.canvases.hint, 0, 0, side, side);
    return canvasBlob(small);
  }

  /** Load line art: fit it in the square, then turn brightness into ink alpha (paper -> transparent). */
  async upload(file) {
    const url = URL.createObjectURL(file);
    let img;
    try { img = await loadImage(url); } finally { URL.revokeObjectURL(url); }
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
    this.pushUndo("sketch");
    this.ctx.sketch.globalCompositeOperation = "source-over";
    this.ctx.sketch.putImageData(data, 0, 0);
    this.onEdit("sketch");
  }
}
