// Line charts as plain SVG: the console's live series (no library). Strings go in with textContent only.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 320, H = 110, LEFT = 34, RIGHT = 6, TOP = 8, BOTTOM = 14;

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function format(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (value >= 100) return value.toFixed(0);
    if (value >= 10) return value.toFixed(1);
    return value.toPrecision(2);
  }

  // draw(svg, {times, series: [{label, values}], now, window_s, unit}): replaces the SVG's content.
  function draw(svg, options) {
    const { times, series, now, window_s: windowS, unit } = options;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.replaceChildren();
    let max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    const top = niceMax(max);
    // The axis spans the samples kept (at most the window), so a young series fills the chart too.
    const oldest = times.length ? Math.max(times[0], now - windowS) : now - windowS;
    const span = Math.max(now - oldest, 10);
    const x = (t) => LEFT + ((t - (now - span)) / span) * (W - LEFT - RIGHT);
    const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
    svg.append(svgEl("line", { class: "axis", x1: LEFT, y1: y(0), x2: W - RIGHT, y2: y(0) }));
    svg.append(svgEl("line", { class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: y(0) }));
    svg.append(svgEl("text", { x: LEFT - 4, y: TOP + 8, "text-anchor": "end" }, format(top)));
    svg.append(svgEl("text", { x: LEFT - 4, y: y(0), "text-anchor": "end" }, "0"));
    const ago = span >= 120 ? `-${Math.round(span / 60)} min` : `-${Math.round(span)} s`;
    svg.append(svgEl("text", { x: LEFT, y: H - 4 }, ago));
    svg.append(svgEl("text", { x: W - RIGHT, y: H - 4, "text-anchor": "end" }, `now (${unit})`));
    series.forEach((s, index) => {
      let points = [];
      const flush = () => {
        if (points.length) svg.append(svgEl("polyline", { class: `s${index}`, points: points.join(" ") }));
        points = [];
      };
      s.values.forEach((v, i) => {
        if (v === null || times[i] < now - span) flush();
        else points.push(`${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`);
      });
      flush();
    });
    const first = series[0] ? series[0].values : [];
    svg.dataset.points = String(times.length);
    svg.dataset.last = first.length && first[first.length - 1] !== null ? String(first[first.length - 1]) : "";
  }

  // The legend under a chart: each series' label and latest value.
  function legend(node, series, unit) {
    node.replaceChildren(
      ...series.map((s, index) => {
        const span = document.createElement("span");
        span.className = `s${index}`;
        const last = s.values.length ? s.values[s.values.length - 1] : null;
        span.textContent = `■ ${s.label} ${format(last)} ${unit}`;
        return span;
      }),
    );
  }

  const create = () => svgEl("svg", { class: "chart" });

  window.LineChart = { create, draw, legend, format };
})();
