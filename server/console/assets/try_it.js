// "Try it": a form built from a model version's signature, sent through the real infer endpoint.
// Strings from the model (names, labels, tokens) reach the page through textContent only.
"use strict";
(function () {
  const FLOATS = new Set(["FP16", "FP32", "FP64", "BF16"]);
  const INTS = new Set(["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]);
  const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const count = (shape) => shape.reduce((a, b) => a * b, 1);

  function concreteShape(shape) {
    return shape.map((d) => (d < 0 ? 1 : d));
  }

  function parseShape(text) {
    const dims = text.split(",").map((s) => Number(s.trim()));
    if (!dims.length || dims.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`shape "${text}": give dimensions as comma-separated whole numbers`);
    }
    return dims;
  }

  function fill(datatype, n, random, vocabulary) {
    const values = new Array(n);
    const intTop = vocabulary ? vocabulary.tokens.length : 10;
    for (let i = 0; i < n; i++) {
      if (FLOATS.has(datatype)) values[i] = random ? Math.round(Math.random() * 10000) / 10000 : 0;
      else if (INTS.has(datatype)) values[i] = random ? Math.floor(Math.random() * intTop) : 0;
      else if (datatype === "BOOL") values[i] = random ? Math.random() < 0.5 : false;
      else values[i] = random ? "text" : "";
    }
    return values;
  }

  // An input shaped like an image after the batch dimension: [C, H, W] or [H, W, C] with C of 1 or 3.
  function imageLayout(spec) {
    if (!(FLOATS.has(spec.datatype) || spec.datatype === "UINT8")) return null;
    const dims = spec.shape.length === 4 ? spec.shape.slice(1) : null;
    if (!dims || dims.some((d) => d < 1)) return null;
    if ([1, 3].includes(dims[0]) && dims[1] >= 4 && dims[2] >= 4) return { channels: dims[0], height: dims[1], width: dims[2], first: true };
    if ([1, 3].includes(dims[2]) && dims[0] >= 4 && dims[1] >= 4) return { channels: dims[2], height: dims[0], width: dims[1], first: false };
    return null;
  }

  function imageValues(image, layout, datatype, invert) {
    const canvas = document.createElement("canvas");
    canvas.width = layout.width;
    canvas.height = layout.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0, layout.width, layout.height);
    const pixels = context.getImageData(0, 0, layout.width, layout.height).data;
    const plane = layout.width * layout.height;
    const values = new Array(plane * layout.channels);
    const scale = datatype === "UINT8" ? (v) => Math.round(v * 255) : (v) => Math.round(v * 10000) / 10000;
    for (let p = 0; p < plane; p++) {
      const rgb = [pixels[4 * p] / 255, pixels[4 * p + 1] / 255, pixels[4 * p + 2] / 255];
      const channels = layout.channels === 1 ? [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]] : rgb;
      channels.forEach((v, c) => {
        const value = scale(invert ? 1 - v : v);
        values[layout.first ? c * plane + p : p * layout.channels + c] = value;
      });
    }
    return values;
  }

  // Text to token ids as examples/vocabulary.py encodes it: lower-case, strip punctuation, split on
  // whitespace, unknown words to oov_id, truncated or padded with padding_id to the sequence length.
  function encode(text, vocabulary, length) {
    const ids = new Map(vocabulary.tokens.map((token, id) => [token, id]));
    const words = text.toLowerCase().replace(PUNCTUATION, "").split(/\s+/).filter(Boolean);
    const row = words.slice(0, length).map((w) => (ids.has(w) ? ids.get(w) : vocabulary.oov_id));
    while (row.length < length) row.push(vocabulary.padding_id);
    return row;
  }

  function inputField(spec, context) {
    const shapeBox = el("input", { class: "shape", value: concreteShape(spec.shape).join(","), size: "14" });
    const data = el("textarea", { class: "tensor-data", "data-input": spec.name, spellcheck: "false" });
    const setData = (values) => { data.value = JSON.stringify(values); };
    const shape = () => parseShape(shapeBox.value);
    const box = el(
      "div",
      { class: "try-input" },
      el("div", { class: "row" }, el("strong", { text: spec.name }), el("span", { class: "muted", text: spec.datatype }), el("label", { text: "shape " }, shapeBox)),
      data,
    );
    const buttons = el(
      "div",
      { class: "row" },
      el("button", { type: "button", class: "fill-random", text: "Random", onclick: () => setData(fill(spec.datatype, count(shape()), true, context.vocabulary)) }),
      el("button", { type: "button", class: "fill-zeros", text: "Zeros", onclick: () => setData(fill(spec.datatype, count(shape()), false, null)) }),
    );
    box.append(buttons);
    const layout = imageLayout(spec);
    if (layout) {
      const invert = el("input", { type: "checkbox", class: "invert" });
      const file = el("input", { type: "file", accept: "image/*", class: "image-file" });
      file.addEventListener("change", () => {
        if (!file.files.length) return;
        const url = URL.createObjectURL(file.files[0]);
        const image = new Image();
        image.onload = () => {
          shapeBox.value = [1, ...spec.shape.slice(1)].join(",");
          setData(imageValues(image, layout, spec.datatype, invert.checked));
          URL.revokeObjectURL(url);
        };
        image.src = url;
      });
      buttons.append(el("label", { text: `image (resized to ${layout.width}×${layout.height}) ` }, file), el("label", { text: " invert " }, invert));
    }
    if (context.vocabulary && INTS.has(spec.datatype) && spec.shape.length === 2) {
      const length = spec.shape[1] > 0 ? spec.shape[1] : context.vocabulary.sequence_length;
      const text = el("input", { type: "text", class: "text-input", size: "40", placeholder: "a sentence" });
      const go = el("button", { type: "button", class: "encode", text: "Encode", onclick: () => {
        shapeBox.value = `1,${length}`;
        setData(encode(text.value, context.vocabulary, length));
      } });
      buttons.append(el("label", { text: "text " }, text), go);
    }
    setData(fill(spec.datatype, count(shape()), false, null));
    return { box, read: () => ({ name: spec.name, datatype: spec.datatype, shape: shape(), data: JSON.parse(data.value) }) };
  }

  function labelled(output, labels) {
    const perRow = output.shape.length ? output.shape[output.shape.length - 1] : 0;
    if (!labels || perRow !== labels.length) return null;
    const table = el("table", { class: "labels" }, el("tr", {}, el("th", { text: "row" }), el("th", { text: "label" }), el("th", { text: "score" })));
    for (let row = 0; row * perRow < output.data.length; row++) {
      const scores = output.data.slice(row * perRow, (row + 1) * perRow);
      const order = scores.map((s, i) => i).sort((a, b) => scores[b] - scores[a]).slice(0, 3);
      order.forEach((i, rank) => table.append(el("tr", { class: rank === 0 ? "top" : "" }, el("td", { text: rank === 0 ? String(row) : "" }), el("td", { class: "label", text: labels[i] }), el("td", { text: Number(scores[i]).toPrecision(4) }))));
    }
    return table;
  }

  // build({model, version, metadata, labelOutputs: Set of output names, labels, vocabulary, infer}) -> element
  function build(context) {
    const fields = context.metadata.inputs.map((spec) => inputField(spec, context));
    const result = el("div", { class: "try-result" });
    const send = el("button", { type: "button", class: "send", text: `Send to ${context.model} v${context.version}` });
    send.addEventListener("click", async () => {
      result.replaceChildren(el("span", { class: "muted", text: "sending…" }));
      try {
        const inputs = fields.map((f) => f.read());
        for (const input of inputs) {
          if (!Array.isArray(input.data) || input.data.flat(Infinity).length !== count(input.shape)) {
            throw new Error(`input ${input.name}: give ${count(input.shape)} values (a JSON array) for shape [${input.shape}]`);
          }
          input.data = input.data.flat(Infinity);
        }
        const answer = await context.infer({ inputs });
        const parts = [];
        for (const output of answer.outputs || []) {
          parts.push(el("h4", { text: `${output.name} ${output.datatype} [${output.shape}]` }));
          if (context.labelOutputs.has(output.name)) {
            const table = labelled(output, context.labels);
            if (table) parts.push(table);
          }
          parts.push(el("pre", { class: "output-data", "data-output": output.name, text: JSON.stringify(output.data) }));
        }
        result.replaceChildren(...parts);
      } catch (error) {
        result.replaceChildren(el("p", { class: "error", text: String(error.message || error) }));
      }
    });
    return el("div", { class: "try-it" }, ...fields.map((f) => f.box), send, result);
  }

  window.TryIt = { build, encode, el };
})();
