// The fixed parts of the HTML run report (controller/report/html_report.cc
// puts them around the run's data): style sheet, containers, and the inline
// script that draws the timeline and the tables from the embedded JSON.
// The script writes untrusted text only through textContent and DOM
// properties. Each literal stays under 16 KiB (MSVC's limit per literal).

#ifndef LABTRACE_CONTROLLER_REPORT_HTML_REPORT_ASSETS_H_
#define LABTRACE_CONTROLLER_REPORT_HTML_REPORT_ASSETS_H_

namespace labtrace::controller {

// The report's style sheet.
inline constexpr char kReportCss[] = R"LT(:root{color-scheme:light;--bad:#b00020;--line:#d9dde3;--muted:#667}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2025;background:#fff}
header{padding:14px 20px 10px;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:6px 16px;align-items:baseline}
h1{font-size:20px;margin:0}
h2{font-size:16px;margin:22px 0 8px}
h3{font-size:14px;margin:16px 0 6px}
main{padding:0 20px 40px}
code,.sha,.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.verdict{padding:2px 10px;border-radius:10px;font-weight:600}
.verdict.good{background:#e3f4e5;color:#1b6e2a}
.verdict.bad{background:#fde7e9;color:var(--bad)}
.sub{color:var(--muted)}
.warnings{background:#fff7e0;border:1px solid #f0d68a;border-radius:6px;padding:4px 14px;margin-top:14px}
.warnings h2{margin-top:8px}
.warnings ul{margin:4px 0 10px;padding-left:20px;max-height:320px;overflow:auto}
.warnings li{white-space:pre-wrap;word-break:break-word}
.more{color:var(--muted);font-style:italic}
.counts{display:flex;flex-wrap:wrap;gap:8px}
.count{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:92px}
.count b{display:block;font-size:18px}
.count span{color:var(--muted);font-size:12px}
.count.bad{border-color:#f3b5bd;background:#fff4f5}
.count.bad b{color:var(--bad)}
table{border-collapse:collapse}
.grid th,.grid td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
.grid thead th{background:#f3f5f8;position:sticky;top:0}
.grid .err{white-space:pre-wrap;word-break:break-word;max-width:60ch}
tr.o-failed td,tr.bad td{background:#fff4f5}
tr.o-skipped td{color:var(--muted)}
tr.picked td{outline:2px solid #4c78a8}
.kv th{text-align:left;padding:2px 14px 2px 0;color:var(--muted);font-weight:500;vertical-align:top}
.kv td{word-break:break-all}
.ph{padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.ph-setup{background:#4c78a8}.ph-test{background:#54a24b}.ph-cleanup{background:#9467bd}
.noscript{background:#eef3fb;border:1px solid #c9d8f0;padding:8px 12px;border-radius:6px}
.filterbar{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin:18px 0 6px;position:sticky;top:0;background:#fff;z-index:2;padding:6px 0;border-bottom:1px solid var(--line)}
input[type=search]{padding:3px 6px;min-width:220px}
button{font:inherit;padding:1px 9px;margin-right:2px}
.hint{color:var(--muted);font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0;font-size:12px}
.lg i{display:inline-block;width:14px;height:10px;margin-right:5px;border-radius:2px;vertical-align:middle}
#tl-scroll{position:relative;overflow-y:auto;overflow-x:hidden;border:1px solid var(--line);border-radius:4px}
#tl-canvas{position:sticky;top:0;display:block;outline:none}
.tooltip{position:fixed;z-index:10;max-width:560px;background:#1d2025;color:#fff;padding:7px 10px;border-radius:5px;font-size:12px;white-space:pre-wrap;word-break:break-word;pointer-events:none;box-shadow:0 2px 8px rgba(0,0,0,.25)}
.pager{margin:4px 0;color:var(--muted)}
.scroll-x{overflow-x:auto}
.matrix th,.matrix td{border:1px solid var(--line);padding:0;text-align:center;font-size:12px}
.matrix th.host{text-align:left;padding:0 8px;white-space:nowrap;font-weight:500;max-width:260px;overflow:hidden;text-overflow:ellipsis}
.matrix th.host.bad{color:var(--bad)}
.matrix thead th.step{vertical-align:bottom;padding:4px 0;height:110px;border-top:4px solid #999}
.matrix thead th.ph-setup{border-top-color:#4c78a8;background:#fff}.matrix thead th.ph-test{border-top-color:#54a24b;background:#fff}.matrix thead th.ph-cleanup{border-top-color:#9467bd;background:#fff}
.matrix thead th.step span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;max-height:104px;overflow:hidden;text-overflow:ellipsis;display:inline-block;font-weight:500;color:#333}
.matrix td.c{min-width:24px;height:20px}
.matrix td.c a{display:block;color:inherit;text-decoration:none}
.matrix td.o-ok{background:#e3f4e5;color:#1b6e2a}
.matrix td.o-failed{background:#d62728;color:#fff;font-weight:600}
.matrix td.o-timed_out{background:#ff7f0e;color:#fff}
.matrix td.o-unreachable{background:#444;color:#fff}
.matrix td.o-interrupted{background:#e3b505}
.matrix td.o-skipped{background:#f0f0f0;color:#999}
.files td.num{text-align:right;white-space:nowrap}
.files td.lost{color:var(--bad);font-weight:600}
.files td.sha{font-size:11px;word-break:break-all;min-width:34ch}
.scrollbox{max-height:360px;overflow:auto;border-bottom:1px solid var(--line)}
details summary{cursor:pointer;margin:8px 0;color:#335}
)LT";

// The containers the script fills, after the static part.
inline constexpr char kReportBody[] = R"LT(<noscript><p class="noscript">The timeline, the steps &times; hosts table and the file list need JavaScript. The summary above is complete without it; manifest.json holds everything.</p></noscript>
<section id="interactive" hidden>
<div class="filterbar"><label>Hosts <input id="host-filter" type="search" placeholder="filter by name" aria-label="filter hosts"></label><label><input id="host-bad" type="checkbox"> only hosts with problems</label><span id="host-count" class="hint"></span></div>
<section id="timeline-section"><h2>Timeline</h2>
<div><button id="zoom-in" type="button" title="zoom in (+)">+</button><button id="zoom-out" type="button" title="zoom out (-)">&minus;</button><button id="zoom-fit" type="button" title="whole run (0)">fit</button> <span class="hint">wheel: scroll hosts &middot; ctrl+wheel: zoom &middot; shift+wheel or drag: pan &middot; hover a bar for details, click it for its file</span></div>
<div id="legend" class="legend"></div>
<div id="tl-scroll"><canvas id="tl-canvas" tabindex="0" aria-label="timeline: a lane per host, a bar per step"></canvas><div id="tl-spacer"></div></div>
</section>
<section id="matrix-section"><h2>Steps &times; hosts</h2>
<p class="hint">&#10003; ok &middot; a number: failed with that exit code (F: failed without one) &middot; T timed out &middot; U unreachable &middot; I interrupted &middot; &middot; skipped. A cell links to its trace file.</p>
<div class="pager" id="matrix-pager"></div><div class="scroll-x"><table id="matrix" class="matrix"></table></div></section>
<section id="files-section"><h2>Files</h2>
<div class="filterbar"><input id="file-filter" type="search" placeholder="filter: host, step or file" aria-label="filter files"><label><input id="file-bad" type="checkbox"> only with problems</label><label><input id="file-traces" type="checkbox"> traces only (no step logs)</label></div>
<div class="pager" id="files-pager"></div><div class="scroll-x"><table id="files" class="grid files"></table></div></section>
</section>
<div id="tooltip" class="tooltip" role="tooltip" hidden></div>
<div id="lt-stats" hidden data-ready="0"></div>
)LT";

// The script, in pieces (compilers limit one literal's length):
// data, helpers, the model.
inline constexpr char kReportScript1[] = R"LT((function () {
  'use strict';
  var began = performance.now();
  var D = JSON.parse(document.getElementById('lt-data').textContent);
  var S = D.str, H = D.hosts, ST = D.steps, F = D.files, C = D.cells;
  var K = 10;  // Numbers per host in a step's cells (see html_report.cc).
  var stats = document.getElementById('lt-stats');
  function $(id) { return document.getElementById(id); }
  function s(i) { return i >= 0 ? S[i] : ''; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtDur(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '-';
    var neg = ms < 0, a = Math.abs(ms), t;
    if (a < 1000) t = Math.round(a) + ' ms';
    else if (a < 60000) t = (a / 1000).toFixed(a < 10000 ? 2 : 1) + ' s';
    else if (a < 3600000) {
      var sec = (a % 60000) / 1000;
      t = Math.floor(a / 60000) + 'm' + (sec < 10 ? '0' : '') +
          (sec === Math.floor(sec) ? sec : sec.toFixed(1)) + 's';
    } else {
      t = Math.floor(a / 3600000) + 'h' +
          Math.floor((a % 3600000) / 60000) + 'm' +
          Math.round((a % 60000) / 1000) + 's';
    }
    return (neg ? '-' : '') + t;
  }
  function fmtBytes(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; ++i; }
    return (i ? n.toFixed(n < 10 ? 2 : 1) : String(n)) + ' ' + u[i];
  }
  function absTime(off) {
    return D.t0 ? new Date(D.t0 + off).toISOString() : '';
  }
  function cut(t, n) { return t.length > n ? t.slice(0, n) + ' ...' : t; }
  function hrefOf(f) {
    var h = f[4];
    return h === 0 ? '' : h === 1 ? f[3] : h;
  }
  function fileLink(fi, text) {
    var f = F[fi], h = hrefOf(f);
    if (!h) return el('span', null, text);
    var a = el('a', null, text);
    a.href = h;
    return a;
  }

  // Colours: a successful bar takes its phase's colour; any other outcome
  // its own (the legend shows both).
  var PHASE = {setup: '#4c78a8', test: '#54a24b', cleanup: '#9467bd'};
  var OUTCOME = {failed: '#d62728', timed_out: '#ff7f0e', unreachable: '#444',
    interrupted: '#e3b505', skipped: '#c7c7c7'};
  function colour(phase, outcome) {
    if (outcome === 'ok') return PHASE[phase] || '#7f7f7f';
    return OUTCOME[outcome] || '#d62728';
  }
  var legend = $('legend');
  function swatch(c, label) {
    var i = el('span', 'lg');
    var b = el('i');
    b.style.background = c;
    i.appendChild(b);
    i.appendChild(document.createTextNode(label));
    legend.appendChild(i);
  }
  Object.keys(PHASE).forEach(function (p) { swatch(PHASE[p], p + ' ok'); });
  Object.keys(OUTCOME).forEach(function (o) { swatch(OUTCOME[o], o); });

  // The model: a bar per (step, host) that has a time; where a host's cell
  // sits in its step; which hosts had a problem.
  var nh = H.length, ns = ST.length;
  var cellAt = new Int32Array(nh * ns).fill(-1);
  var hostBad = new Uint8Array(nh);
  var nbars = 0, j, k, c;
  // A host that was skipped in a step (never traced) has no bar there.
  function hasBar(j, k) {
    var c = C[j];
    if (c[k + 3] !== null) return true;
    return ST[j][2] !== null && s(c[k + 1]) !== 'skipped';
  }
  for (j = 0; j < ns; ++j) {
    c = C[j];
    for (k = 0; k < c.length; k += K) {
      cellAt[c[k] * ns + j] = k;
      var out = s(c[k + 1]);
      if (out !== 'ok' && out !== 'skipped') hostBad[c[k]] = 1;
      if (hasBar(j, k)) ++nbars;
    }
  }
  for (j = 0; j < D.lost.length; ++j) {
    var li = H.indexOf(D.lost[j]);
    if (li >= 0) hostBad[li] = 1;
  }
  F.forEach(function (f) {
    if (f[10] >= 0 || f[11] >= 0 || f[7] > 0 || f[8] > 0) hostBad[f[0]] = 1;
  });
  var bS = new Float64Array(nbars), bE = new Float64Array(nbars);
  var bStep = new Int32Array(nbars), bCell = new Int32Array(nbars);
  var laneBars = [];
  for (j = 0; j < nh; ++j) laneBars.push([]);
  var lo = Infinity, hi = -Infinity, b = 0;
  for (j = 0; j < ns; ++j) {
    c = C[j];
    for (k = 0; k < c.length; k += K) {
      if (!hasBar(j, k)) continue;
      var st = c[k + 3] !== null ? c[k + 3] : ST[j][2];
      var en = c[k + 4] > 0 ? st + c[k + 4] : (ST[j][3] !== null ? ST[j][3] : st);
      if (en < st) en = st;
      bS[b] = st; bE[b] = en; bStep[b] = j; bCell[b] = k;
      laneBars[c[k]].push(b);
      if (st < lo) lo = st;
      if (en > hi) hi = en;
      ++b;
    }
  }
  if (!isFinite(lo)) { lo = 0; hi = Math.max(D.dur, 1000); }
  if (hi - lo < 100) hi = lo + 100;

  function cellText(j, k) {
    var c = C[j], lines = [];
    var out = s(c[k + 1]);
    lines.push(ST[j][0] + ' (' + s(ST[j][1]) + ') on ' + H[c[k]]);
    var line = 'outcome: ' + out;
    if (c[k + 2] >= 0) line += ', exit code ' + c[k + 2];
    if (c[k + 9]) line += ', command timed out';
    lines.push(line);
    var st = c[k + 3] !== null ? c[k + 3] : ST[j][2];
    if (st !== null) {
      lines.push('start: +' + fmtDur(st) + '  (' + absTime(st) + ')');
      var dur = c[k + 4];
      lines.push('end: +' + fmtDur(st + dur) + '  (' + absTime(st + dur) +
                 ')  duration ' + fmtDur(dur));
    }
    if (c[k + 5] >= 0) lines.push('error: ' + cut(s(c[k + 5]), 600));
    if (c[k + 6] >= 0) lines.push('trace: ' + cut(s(c[k + 6]), 300));
    if (c[k + 7] >= 0) {
      var f = F[c[k + 7]];
      lines.push('file: ' + (f[3] || s(f[13]) || '(not collected)') +
                 (f[7] || f[8] ? '  (' + f[7] + ' events, ' + f[8] +
                  ' buffers lost)' : ''));
    }
    if (c[k + 8] >= 0) lines.push('log: ' + (F[c[k + 8]][3] || '-'));
    return lines.join('\n');
  }

  // Which hosts are shown (timeline lanes and table rows).
  var lanes = [];
  function filterHosts() {
    var q = $('host-filter').value.trim().toLowerCase();
    var bad = $('host-bad').checked;
    lanes = [];
    for (var h = 0; h < nh; ++h) {
      if (bad && !hostBad[h]) continue;
      if (q && H[h].toLowerCase().indexOf(q) < 0) continue;
      lanes.push(h);
    }
    $('host-count').textContent = lanes.length + ' of ' + nh + ' hosts';
    stats.dataset.lanes = lanes.length;
    timeline.resize();
    matrix.page = 0;
    matrix.render();
  }
)LT";

// The canvas timeline.
inline constexpr char kReportScript2[] = R"LT(  // The timeline: a canvas as tall as the visible part of the scroller;
  // the spacer below it gives the scroller the height of every lane, and
  // only the lanes in view are drawn.
  var timeline = (function () {
    var ROW = 18, BAR = 12, AX = 24, LW = 170, MAXH = 620;
    var scroller = $('tl-scroll'), canvas = $('tl-canvas');
    var spacer = $('tl-spacer'), tip = $('tooltip');
    var g = canvas.getContext('2d');
    var dpr = window.devicePixelRatio || 1;
    var w = 0, vh = 0, v0 = 0, v1 = 1, pending = false;
    function fit() {
      var pad = (hi - lo) * 0.02;
      v0 = lo - pad; v1 = hi + pad;
    }
    fit();
    function plotW() { return Math.max(10, w - LW - 8); }
    function xOf(t) { return LW + (t - v0) * plotW() / (v1 - v0); }
    function tOf(x) { return v0 + (x - LW) * (v1 - v0) / plotW(); }
    function resize() {
      w = scroller.clientWidth;
      var full = AX + lanes.length * ROW;
      vh = Math.max(AX + ROW, Math.min(full, MAXH));
      scroller.style.height = vh + 'px';
      canvas.style.width = w + 'px';
      canvas.style.height = vh + 'px';
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(vh * dpr);
      spacer.style.height = Math.max(0, full - vh) + 'px';
      draw();
    }
    function draw() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(paint);
    }
    function niceStep(span) {
      var raw = span / Math.max(1, plotW() / 110);
      var p = Math.pow(10, Math.floor(Math.log10(raw)));
      var m = raw / p;
      return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
    }
    // Tick labels: time since the run's start, no more digits than the
    // tick spacing needs.
    function axisLabel(t, step) {
      if (t === 0) return '0';
      var a = Math.abs(t), sign = t < 0 ? '-' : '+';
      if (a < 1000) return sign + Math.round(a) + ' ms';
      var digits = step >= 1000 ? 0 : step >= 100 ? 1 : step >= 10 ? 2 : 3;
      if (a < 60000) return sign + (a / 1000).toFixed(digits) + ' s';
      var sec = ((a % 60000) / 1000).toFixed(digits);
      var head = a < 3600000 ? Math.floor(a / 60000) + 'm'
          : Math.floor(a / 3600000) + 'h' +
            ('0' + Math.floor((a % 3600000) / 60000)).slice(-2) + 'm';
      return sign + head + (parseFloat(sec) < 10 ? '0' : '') + sec + 's';
    }
    function paint() {
      pending = false;
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, vh);
      var top = scroller.scrollTop;
      var first = Math.max(0, Math.floor(top / ROW));
      var last = Math.min(lanes.length, Math.ceil((top + vh - AX) / ROW) + 1);
      var drawn = 0;
      g.save();
      g.beginPath();
      g.rect(0, AX, w, vh - AX);
      g.clip();
      g.font = '12px system-ui, sans-serif';
      g.textBaseline = 'middle';
      // Step boundaries, faint.
      g.fillStyle = '#e4e7ec';
      for (var j = 0; j < ns; ++j) {
        if (ST[j][2] === null) continue;
        var sx = xOf(ST[j][2]);
        if (sx >= LW && sx <= w) g.fillRect(Math.round(sx), AX, 1, vh - AX);
      }
      for (var i = first; i < last; ++i) {
        var y = AX + i * ROW - top, h = lanes[i];
        if (i % 2) {
          g.fillStyle = 'rgba(0,0,0,0.035)';
          g.fillRect(0, y, w, ROW);
        }
        g.save();
        g.beginPath();
        g.rect(0, y, LW - 6, ROW);
        g.clip();
        g.fillStyle = hostBad[h] ? '#b00020' : '#222';
        g.fillText(H[h], 4, y + ROW / 2);
        g.restore();
        var list = laneBars[h];
        for (var q = 0; q < list.length; ++q) {
          var bi = list[q];
          var x0 = xOf(bS[bi]), x1 = xOf(bE[bi]);
          if (x1 < LW || x0 > w) continue;
          if (x0 < LW) x0 = LW;
          var bw = Math.max(1, x1 - x0);
          var cc = C[bStep[bi]], ck = bCell[bi];
          var outcome = s(cc[ck + 1]);
          g.fillStyle = colour(s(ST[bStep[bi]][1]), outcome);
          g.fillRect(x0, y + (ROW - BAR) / 2, bw, BAR);
          if (outcome !== 'ok' && bw > 3) {
            // The phase, as a thin strip under a bar of another colour.
            g.fillStyle = PHASE[s(ST[bStep[bi]][1])] || '#7f7f7f';
            g.fillRect(x0, y + (ROW + BAR) / 2 - 2, bw, 2);
          }
          ++drawn;
        }
      }
      g.restore();
      // The axis: time since the run's start.
      g.fillStyle = '#fff';
      g.fillRect(0, 0, w, AX);
      g.fillStyle = '#d0d4da';
      g.fillRect(0, AX - 1, w, 1);
      g.fillRect(LW - 1, 0, 1, vh);
      var step = niceStep(v1 - v0);
      g.fillStyle = '#555';
      g.textBaseline = 'middle';
      for (var n = Math.ceil(v0 / step); n * step <= v1; ++n) {
        var t = n * step, tx = xOf(t);
        if (tx < LW) continue;
        g.fillRect(Math.round(tx), AX - 6, 1, 6);
        g.fillText(axisLabel(t, step), tx + 3, AX / 2 - 2);
      }
      g.fillStyle = '#333';
      g.fillText(lanes.length + ' hosts', 4, AX / 2);
      stats.dataset.drawnBars = drawn;
      stats.dataset.drawnLanes = Math.max(0, last - first);
    }
    function barAt(x, y) {
      if (y < AX || x < LW) return -1;
      var i = Math.floor((y - AX + scroller.scrollTop) / ROW);
      if (i < 0 || i >= lanes.length) return -1;
      var t = tOf(x), tol = 3 * (v1 - v0) / plotW();
      var list = laneBars[lanes[i]], best = -1, bestD = Infinity;
      for (var q = 0; q < list.length; ++q) {
        var bi = list[q];
        var d = t < bS[bi] ? bS[bi] - t : t > bE[bi] ? t - bE[bi] : 0;
        if (d <= tol && d < bestD) { best = bi; bestD = d; }
      }
      return best;
    }
    function zoom(f, at) {
      if (at === undefined) at = (v0 + v1) / 2;
      var span = (v1 - v0) * f;
      if (span < 1) span = 1;
      v0 = at - (at - v0) * f;
      v1 = v0 + span;
      draw();
    }
    function pan(px) {
      var dt = px * (v1 - v0) / plotW();
      v0 += dt; v1 += dt;
      draw();
    }
    function local(ev) {
      var r = canvas.getBoundingClientRect();
      return {x: ev.clientX - r.left, y: ev.clientY - r.top};
    }
    var drag = null;
    canvas.addEventListener('wheel', function (ev) {
      var p = local(ev);
      if (ev.ctrlKey || ev.metaKey) {
        ev.preventDefault();
        zoom(Math.exp(ev.deltaY * 0.002), tOf(Math.max(LW, p.x)));
      } else if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
        ev.preventDefault();
        pan(ev.shiftKey ? ev.deltaY : ev.deltaX);
      }
    }, {passive: false});
    canvas.addEventListener('mousedown', function (ev) {
      drag = {x: ev.clientX, y: ev.clientY, top: scroller.scrollTop};
      tip.hidden = true;
    });
    window.addEventListener('mouseup', function () { drag = null; });
    window.addEventListener('mousemove', function (ev) {
      if (!drag) return;
      pan(drag.x - ev.clientX);
      drag.x = ev.clientX;
      scroller.scrollTop = drag.top - (ev.clientY - drag.y);
    });
    canvas.addEventListener('mousemove', function (ev) {
      if (drag) return;
      var p = local(ev), bi = barAt(p.x, p.y);
      if (bi < 0) { tip.hidden = true; canvas.style.cursor = ''; return; }
      canvas.style.cursor = 'pointer';
      tip.textContent = cellText(bStep[bi], bCell[bi]);
      tip.hidden = false;
      var tx = ev.clientX + 14, ty = ev.clientY + 14;
      if (tx + tip.offsetWidth > window.innerWidth - 4) {
        tx = Math.max(4, ev.clientX - tip.offsetWidth - 14);
      }
      if (ty + tip.offsetHeight > window.innerHeight - 4) {
        ty = Math.max(4, ev.clientY - tip.offsetHeight - 14);
      }
      tip.style.left = tx + 'px';
      tip.style.top = ty + 'px';
    });
    canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
    canvas.addEventListener('click', function (ev) {
      var p = local(ev), bi = barAt(p.x, p.y);
      if (bi < 0) return;
      var f = C[bStep[bi]][bCell[bi] + 7];
      if (f >= 0) files.show(f);
    });
    canvas.addEventListener('keydown', function (ev) {
      if (ev.key === '+' || ev.key === '=') zoom(0.5);
      else if (ev.key === '-') zoom(2);
      else if (ev.key === '0') { fit(); draw(); }
      else if (ev.key === 'ArrowLeft') pan(-plotW() / 8);
      else if (ev.key === 'ArrowRight') pan(plotW() / 8);
      else return;
      ev.preventDefault();
    });
    scroller.addEventListener('scroll', function () {
      tip.hidden = true;
      draw();
    });
    window.addEventListener('resize', resize);
    $('zoom-in').addEventListener('click', function () { zoom(0.5); });
    $('zoom-out').addEventListener('click', function () { zoom(2); });
    $('zoom-fit').addEventListener('click', function () { fit(); draw(); });
    return {resize: resize, paint: paint};
  })();
)LT";

// The steps x hosts table, the file list, start-up.
inline constexpr char kReportScript3[] = R"LT(  // Pages of rows, so the DOM stays small at any fleet size.
  function pager(box, state, total, size, what, render) {
    box.textContent = '';
    var pages = Math.max(1, Math.ceil(total / size));
    if (state.page >= pages) state.page = pages - 1;
    function btn(label, to, off) {
      var e = el('button', null, label);
      e.type = 'button';
      e.disabled = off;
      e.addEventListener('click', function () { state.page = to; render(); });
      box.appendChild(e);
    }
    btn('\u00ab', 0, state.page === 0);
    btn('\u2039', state.page - 1, state.page === 0);
    var from = total ? state.page * size + 1 : 0;
    box.appendChild(el('span', null, ' ' + what + ' ' + from + '\u2013' +
        Math.min(total, (state.page + 1) * size) + ' of ' + total + ' '));
    btn('\u203a', state.page + 1, state.page >= pages - 1);
    btn('\u00bb', pages - 1, state.page >= pages - 1);
  }

  var SYMBOL = {ok: '\u2713', failed: 'F', timed_out: 'T', unreachable: 'U',
    interrupted: 'I', skipped: '\u00b7'};
  // Steps x hosts: a row per host, a column per step.
  var matrix = {page: 0, size: 50};
  matrix.render = function () {
    var t = $('matrix');
    t.textContent = '';
    var head = el('thead'), hr = el('tr');
    hr.appendChild(el('th', 'host', 'host'));
    for (var j = 0; j < ns; ++j) {
      var th = el('th', 'step ph-' + s(ST[j][1]));
      th.appendChild(el('span', null, ST[j][0]));
      th.title = ST[j][0] + ' (' + s(ST[j][1]) + ')' +
          (ST[j][5] ? ', skipped' : ST[j][4] ? ', passed' : ', FAILED');
      hr.appendChild(th);
    }
    head.appendChild(hr);
    t.appendChild(head);
    var body = el('tbody'), rows = 0, cells = 0, links = 0;
    var end = Math.min(lanes.length, (matrix.page + 1) * matrix.size);
    for (var i = matrix.page * matrix.size; i < end; ++i) {
      var h = lanes[i], tr = el('tr');
      tr.appendChild(el('th', hostBad[h] ? 'host bad' : 'host', H[h]));
      for (j = 0; j < ns; ++j) {
        var k = cellAt[h * ns + j];
        if (k < 0) { tr.appendChild(el('td', 'c none')); continue; }
        var c = C[j], out = s(c[k + 1]);
        var td = el('td', 'c o-' + out);
        var sym = out === 'failed' && c[k + 2] >= 0 ? String(c[k + 2])
                                                     : (SYMBOL[out] || '?');
        if (c[k + 7] >= 0 && hrefOf(F[c[k + 7]])) {
          td.appendChild(fileLink(c[k + 7], sym));
          ++links;
        } else {
          td.textContent = sym;
        }
        td.title = cellText(j, k);
        tr.appendChild(td);
        ++cells;
      }
      body.appendChild(tr);
      ++rows;
    }
    t.appendChild(body);
    pager($('matrix-pager'), matrix, lanes.length, matrix.size, 'hosts',
          matrix.render);
    stats.dataset.matrixRows = rows;
    stats.dataset.matrixCells = cells;
    stats.dataset.matrixLinks = links;
  };

  // Every file of the run: trace files and step logs.
  var files = {page: 0, size: 100, list: []};
  function fileBad(f) {
    var st = s(f[9]);
    return f[10] >= 0 || f[11] >= 0 || f[7] > 0 || f[8] > 0 ||
        !(st === 'collected' || st === 'already_present' ||
          st === 'uploaded' || st === 'already_uploaded');
  }
  files.filter = function () {
    var q = $('file-filter').value.trim().toLowerCase();
    var bad = $('file-bad').checked, traces = $('file-traces').checked;
    files.list = [];
    for (var i = 0; i < F.length; ++i) {
      var f = F[i];
      if (traces && s(f[12]) === 'exec') continue;
      if (bad && !fileBad(f)) continue;
      if (q && (H[f[0]] + ' ' + (f[1] >= 0 ? ST[f[1]][0] : '') + ' ' +
                f[3]).toLowerCase().indexOf(q) < 0) {
        continue;
      }
      files.list.push(i);
    }
    files.page = 0;
    files.render();
  };
  files.render = function () {
    var t = $('files');
    t.textContent = '';
    var hr = el('tr');
    ['host', 'step', 'phase', 'file', 'kind', 'size', 'sha256',
     'lost (events / buffers)', 'status', 'problems'].forEach(function (n) {
      hr.appendChild(el('th', null, n));
    });
    var head = el('thead');
    head.appendChild(hr);
    t.appendChild(head);
    var body = el('tbody'), rows = 0, links = 0;
    var end = Math.min(files.list.length, (files.page + 1) * files.size);
    for (var i = files.page * files.size; i < end; ++i) {
      var fi = files.list[i], f = F[fi], tr = el('tr', fileBad(f) ? 'bad' : '');
      tr.id = 'file-' + fi;
      tr.appendChild(el('td', null, H[f[0]]));
      tr.appendChild(el('td', null, f[1] >= 0 ? ST[f[1]][0] : ''));
      tr.appendChild(el('td', null, s(f[2])));
      var td = el('td', 'path');
      if (f[3]) {
        td.appendChild(fileLink(fi, f[3]));
        if (hrefOf(f)) ++links;
      } else {
        td.textContent = s(f[13]) || '(not collected)';
      }
      tr.appendChild(td);
      tr.appendChild(el('td', null, s(f[12])));
      tr.appendChild(el('td', 'num', fmtBytes(f[5])));
      tr.appendChild(el('td', 'sha', f[6]));
      tr.appendChild(el('td', f[7] || f[8] ? 'num lost' : 'num',
                        f[7] + ' / ' + f[8]));
      tr.appendChild(el('td', null, s(f[9])));
      var p = [s(f[10]), s(f[11])].filter(function (x) { return x; });
      tr.appendChild(el('td', 'err', p.join('; ')));
      body.appendChild(tr);
      ++rows;
    }
    t.appendChild(body);
    pager($('files-pager'), files, files.list.length, files.size, 'files',
          files.render);
    stats.dataset.fileRows = rows;
    stats.dataset.fileLinks = links;
  };
  // Shows one file's row (a click on its bar).
  files.show = function (fi) {
    $('file-filter').value = '';
    $('file-bad').checked = false;
    $('file-traces').checked = false;
    files.filter();
    files.page = Math.floor(files.list.indexOf(fi) / files.size);
    files.render();
    var row = $('file-' + fi);
    if (row) {
      row.classList.add('picked');
      row.scrollIntoView({block: 'center'});
    }
  };

  $('host-filter').addEventListener('input', filterHosts);
  $('host-bad').addEventListener('change', filterHosts);
  $('file-filter').addEventListener('input', files.filter);
  $('file-bad').addEventListener('change', files.filter);
  $('file-traces').addEventListener('change', files.filter);
  $('interactive').hidden = false;
  stats.dataset.hosts = nh;
  stats.dataset.steps = ns;
  stats.dataset.bars = nbars;
  stats.dataset.files = F.length;
  filterHosts();
  files.filter();
  timeline.paint();
  stats.dataset.renderMs = Math.round(performance.now() - began);
  stats.dataset.ready = '1';
})();
)LT";

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_HTML_REPORT_ASSETS_H_
