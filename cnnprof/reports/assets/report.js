/* cnnprof report: draws the figures and keeps the selection panel in step with the timeline.
 * Data comes from the JSON block #cnnprof-data. Every piece of text from the run (function and file
 * names, phase names) goes into the DOM through textContent, never innerHTML, and into plotly labels
 * through ptext() (plotly reads a few tags in its labels). Nothing here fetches anything. */
(function () {
  'use strict';

  var DATA = JSON.parse(document.getElementById('cnnprof-data').textContent);
  var CONFIG = {
    displaylogo: false, responsive: true, scrollZoom: false, showTips: false,
    modeBarButtonsToRemove: ['lasso2d', 'autoScale2d', 'toggleSpikelines'],
  };
  var api = window.cnnprof = { data: DATA, ready: false, range: null, updates: 0, errors: [] };

  // -- DOM helpers (text only) -------------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function ptext(s) { return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'); }
  function ms(us) {
    var v = us / 1000;
    if (v >= 100000) return (v / 1000).toFixed(1) + ' s';
    if (v >= 1000) return (v / 1000).toFixed(3) + ' s';
    if (v >= 10) return v.toFixed(1) + ' ms';
    return v.toFixed(3) + ' ms';
  }
  function pct(x) { return (100 * x).toFixed(1) + ' %'; }
  function table(headers, rows, numeric) {
    var t = el('table', 'data small');
    var tr = el('tr');
    headers.forEach(function (h) { tr.appendChild(el('th', null, h)); });
    t.appendChild(el('thead')).appendChild(tr);
    var body = t.appendChild(el('tbody'));
    rows.forEach(function (r) {
      var row = body.appendChild(el('tr'));
      r.forEach(function (c, i) { row.appendChild(el('td', numeric && numeric[i] ? 'num' : null, c)); });
    });
    return t;
  }

  // Arrays packed by timeline.py's pack(): base64 of little-endian numbers, maybe delta-coded.
  var KINDS = { u1: Uint8Array, u2: Uint16Array, u4: Uint32Array, i4: Int32Array, f4: Float32Array, f8: Float64Array };
  function unpack(x) {
    if (!x || Array.isArray(x) || !x.b64) return x;
    var bin = atob(x.b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var arr = new KINDS[x.p](bytes.buffer);
    if (!x.d) return arr;
    var out = new Float64Array(arr.length), acc = 0;
    for (var j = 0; j < arr.length; j++) { acc += arr[j]; out[j] = acc; }
    return out;
  }
  function unpackAll(obj, keys) { keys.forEach(function (k) { if (obj && obj[k]) obj[k] = unpack(obj[k]); }); }
  (function decode(T) {
    if (!T) return;
    var P = T.phases || {};
    if (P.edges_us) P.edges_us = unpack(P.edges_us);
    Object.keys(P.labels || {}).forEach(function (k) {
      var L = P.labels[k];
      unpackAll(L, ['s', 'd', 'c', 'n']);
      if (L.d) { var m = 0; for (var i = 0; i < L.d.length; i++) if (L.d[i] > m) m = L.d[i]; L.maxd = m; }
    });
    Object.keys(T.power || {}).forEach(function (k) { unpackAll(T.power[k], ['x', 'e']); });
    [T.stacks, T.procs].forEach(function (S) {
      if (!S) return;
      unpackAll(S.tree, ['parent', 'func', 'first']);
      unpackAll(S.rows, ['count', 'n', 'w']);
      if (S.flame) unpackAll(S.flame, ['s', 'd', 'z', 'f']);
    });
  })(DATA.timeline);

  // -- sortable tables ---------------------------------------------------------------------------
  function sortable(t) {
    var ths = t.querySelectorAll('thead th[data-sort]');
    Array.prototype.forEach.call(ths, function (th, col) {
      th.title = 'sort';
      th.addEventListener('click', function () {
        var desc = th.getAttribute('data-dir') !== 'desc';
        Array.prototype.forEach.call(ths, function (o) { o.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', desc ? 'desc' : 'asc');
        var body = t.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (ra, rb) {
          var a = ra.cells[col], b = rb.cells[col];
          var va = a && a.hasAttribute('data-v') ? parseFloat(a.getAttribute('data-v')) : null;
          var vb = b && b.hasAttribute('data-v') ? parseFloat(b.getAttribute('data-v')) : null;
          var r;
          if (va !== null || vb !== null) r = (va === null ? -Infinity : va) - (vb === null ? -Infinity : vb);
          else r = (a ? a.textContent : '').localeCompare(b ? b.textContent : '');
          return desc ? -r : r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.data'), sortable);

  // -- energy: traces/energy.py integrates; the page reads its cumulative joules at a range's ends
  function lowerBound(arr, x) {
    var lo = 0, hi = arr.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (arr[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function interp(xs, ys, x) {
    var j = lowerBound(xs, x);
    if (j <= 0) return ys[0];
    if (j >= xs.length) return ys[ys.length - 1];
    var f = (x - xs[j - 1]) / ((xs[j] - xs[j - 1]) || 1);
    return ys[j - 1] + f * (ys[j] - ys[j - 1]);
  }
  api.energy = function (a_s, b_s) {
    var out = {}, power = (DATA.timeline && DATA.timeline.power) || {};
    Object.keys(power).forEach(function (k) {
      var s = power[k];
      out[k] = b_s > a_s && s.x.length ? interp(s.x, s.e, b_s * 1e6) - interp(s.x, s.e, a_s * 1e6) : 0;
    });
    return out;
  };

  // -- figures -----------------------------------------------------------------------------------
  function plot(id, fig) {
    var div = document.getElementById(id);
    if (!div) return Promise.resolve(null);
    return Plotly.newPlot(div, fig.data, fig.layout, CONFIG);
  }
  var pending = [];
  Object.keys(DATA.figures || {}).forEach(function (id) {
    if (id !== 'timeline') pending.push(plot(id, DATA.figures[id]));
  });
  if (DATA.figures && DATA.figures.timeline && DATA.timeline) pending.push(setupTimeline(DATA.figures.timeline, DATA.timeline));
  Promise.all(pending).then(function () { api.ready = true; }, function (err) {
    api.errors.push(String(err)); api.ready = true; throw err;
  });

  // -- the timeline ------------------------------------------------------------------------------
  function setupTimeline(fig, T) {
    var div = document.getElementById('timeline');
    var st = T.stacks, tEnd = T.t_end_s;
    var flame = null;
    if (st) {
      var f = st.flame;
      flame = { start: f.s, dur: f.d, depth: f.z, func: f.f, draw: f.draw };
    }
    // The call tree's source: the main process's samples, or (a run with child processes) every
    // process's, each under a root of its own; `pick` is 'all' or the index of one process.
    var trees = { main: st ? treeSource(st) : null, all: T.procs ? treeSource(T.procs) : null };
    var pick = 'all';
    if (trees.all) processPicker(T.procs.procs);
    api.setProcess = setProcess;
    if (flame && T.flame_trace !== null && T.flame_trace !== undefined) {
      Object.assign(fig.data[T.flame_trace], flameTrace(0, tEnd * 1e6));
    }
    if (st) flameLegend(st.cats);

    return Plotly.newPlot(div, fig.data, fig.layout, CONFIG).then(function (gd) {
      var timer = null;
      function schedule(a, b) {
        clearTimeout(timer);
        timer = setTimeout(function () { update(a, b); }, 40);
      }
      gd.on('plotly_relayout', function (ev) {
        var r = rangeOf(ev);
        if (r) schedule(r[0], r[1]);
      });
      gd.on('plotly_selected', function (ev) {
        // Box select: the range is keyed by the subplot's x axis (x, x2, ...).
        var key = ev && ev.range && Object.keys(ev.range).filter(function (k) { return /^x\d*$/.test(k); })[0];
        if (key) schedule(ev.range[key][0], ev.range[key][1]);
      });
      api.setRange = function (a, b) { return Plotly.relayout(gd, { 'xaxis.range': [a, b] }); };
      api.update = update;
      update(0, tEnd);
      return gd;
    });

    function rangeOf(ev) {
      if (!ev) return null;
      var a = null, b = null, keys = Object.keys(ev);
      for (var k = 0; k < keys.length; k++) {
        var key = keys[k], m;
        if ((m = /^xaxis\d*\.range\[(0|1)\]$/.exec(key))) { if (m[1] === '0') a = +ev[key]; else b = +ev[key]; }
        else if (/^xaxis\d*\.range$/.test(key) && ev[key] && ev[key].length === 2) { a = +ev[key][0]; b = +ev[key][1]; }
        else if (/^xaxis\d*\.autorange$/.test(key) && ev[key]) { a = 0; b = tEnd; }
      }
      if (a === null && b === null) return null;
      var cur = (div.layout && div.layout.xaxis && div.layout.xaxis.range) || [0, tEnd];
      return [a === null ? +cur[0] : a, b === null ? +cur[1] : b];
    }

    function update(a, b) {
      a = Math.max(0, Math.min(a, b)); b = Math.min(tEnd, Math.max(a, b));
      if (!(b > a)) { b = a + 1e-6; }
      api.range = [a, b];
      api.updates += 1;
      var title = document.getElementById('sel-title');
      title.textContent = 'Selected range: ' + a.toFixed(3) + ' s to ' + b.toFixed(3) + ' s (' +
        ms((b - a) * 1e6) + (a <= 0 && b >= tEnd ? ', the whole run' : '') + ')';
      renderPhases(a * 1e6, b * 1e6);
      renderEnergy(a, b);
      renderStacks(a * 1e6, b * 1e6);
      var traces = [];
      if (flame && T.flame_trace !== null && T.flame_trace !== undefined) traces.push([T.flame_trace, flameTrace(a * 1e6, b * 1e6)]);
      detailTraces(a * 1e6, b * 1e6).forEach(function (d) { traces.push(d); });
      if (traces.length) {
        var upd = { base: [], x: [], y: [], hovertext: [], text: [], 'marker.color': [] };
        traces.forEach(function (p) {
          var tr = p[1];
          upd.base.push(tr.base); upd.x.push(tr.x); upd.y.push(tr.y); upd.hovertext.push(tr.hovertext);
          upd.text.push(tr.text || []);
          upd['marker.color'].push(tr.marker.color);
        });
        var layoutUpd = {};
        if (flame && T.flame_trace !== null && T.flame_trace !== undefined) {
          // Fit the flame lane's depth axis to the bars drawn for this range.
          var depth = 0;
          traces[0][1].y.forEach(function (z) { if (z > depth) depth = z; });
          var ax = (div.data[T.flame_trace].yaxis || 'y').replace('y', 'yaxis');
          layoutUpd[ax + '.range'] = [Math.max(depth, 8) + 0.5, -0.5];
        }
        Plotly.update(div, upd, layoutUpd, traces.map(function (p) { return p[0]; }));
      }
    }

    // Batch and step spans one by one, for a range narrow enough (long runs draw shares of time).
    function detailTraces(a, b) {
      var D = T.phases && T.phases.detail;
      if (!D) return [];
      var labels = T.phases.labels, out = [], rows = { batch: [], step: [], sync: [] }, total = 0;
      Object.keys(labels).forEach(function (lab) {
        var L = labels[lab];
        if (!L.s) return;
        var row = lab.indexOf('sync:') === 0 ? 'sync' : (lab.indexOf('batch:') === 0 || lab === 'single') ? 'batch' : 'step';
        if (D.rows[row] === undefined) return;
        for (var i = lowerBound(L.s, a - L.maxd); i < L.s.length && L.s[i] <= b; i++) {
          if (L.s[i] + L.d[i] >= a) { rows[row].push([lab, L.s[i], L.d[i]]); total += 1; }
        }
      });
      var show = total <= D.max;
      Object.keys(D.rows).forEach(function (row) {
        var idx = div.data.findIndex(function (t) { return t.uid === 'detail-' + row; });
        if (idx < 0) return;
        var tr = { base: [], x: [], y: [], hovertext: [], marker: { color: [] } };
        if (show) rows[row].forEach(function (r) {
          tr.base.push(r[1] / 1e6); tr.x.push(r[2] / 1e6); tr.y.push(D.rows[row]);
          tr.marker.color.push(D.colors[r[0]] || D.colors[r[0].split(':')[0]] || '#999');
          tr.hovertext.push('<b>' + ptext(r[0]) + '</b><br>' + ms(r[2]) + ' at ' + (r[1] / 1e6).toFixed(3) + ' s');
        });
        out.push([idx, tr]);
      });
      return out;
    }

    function flameTrace(a, b) {
      var n = flame.dur.length, minW = (b - a) / 1600, cand = [];
      for (var i = 0; i < n; i++) {
        var s = flame.start[i];
        if (s > b) break;
        if (s + flame.dur[i] >= a && flame.dur[i] >= minW) cand.push(i);
      }
      if (cand.length > flame.draw) {
        cand.sort(function (x, y) { return flame.dur[y] - flame.dur[x]; });
        cand = cand.slice(0, flame.draw);
      }
      var funcs = st.funcs, cats = st.cats;
      var tr = { base: [], x: [], y: [], hovertext: [], text: [], marker: { color: [], line: { width: 0 } } };
      cand.forEach(function (i) {
        var fn = flame.func[i];
        tr.text.push(ptext(funcs.name[fn]));
        // Clipped to the range, so that a bar's label starts where the bar comes into view.
        var s0 = Math.max(flame.start[i], a), s1 = Math.min(flame.start[i] + flame.dur[i], b);
        tr.base.push(s0 / 1e6);
        tr.x.push(Math.max(s1 - s0, 0) / 1e6);
        tr.y.push(flame.depth[i]);
        tr.marker.color.push(cats[funcs.cat[fn]][1]);
        tr.hovertext.push('<b>' + ptext(funcs.name[fn]) + '</b><br>' + ptext(funcs.where[fn]) + '<br>' +
          ms(flame.dur[i]) + ' from ' + (flame.start[i] / 1e6).toFixed(3) + ' s');
      });
      return tr;
    }

    function treeSource(S) {
      var parent = S.tree.parent, kids = [], roots = [], rootOf = new Int32Array(parent.length);
      for (var i = 0; i < parent.length; i++) kids.push([]);
      // Parents come before their children: a node's root is its parent's.
      for (var node = 0; node < parent.length; node++) {
        if (parent[node] >= 0) { kids[parent[node]].push(node); rootOf[node] = rootOf[parent[node]]; }
        else { roots.push(node); rootOf[node] = node; }
      }
      // Row offsets per time bucket (rows are sorted by bucket).
      var counts = S.rows.count, offsets = new Float64Array(counts.length + 1);
      for (var b = 0; b < counts.length; b++) offsets[b + 1] = offsets[b] + counts[b];
      S.rows.offsets = offsets;
      return { S: S, children: kids, roots: roots, rootOf: rootOf };
    }

    function processPicker(procs) {
      var tree = document.getElementById('sel-tree');
      if (!tree) return;
      var box = el('p', 'small');
      box.appendChild(document.createTextNode('Process: '));
      var select = box.appendChild(el('select'));
      select.id = 'sel-proc';
      select.appendChild(el('option', null, 'all processes (main and children)')).value = 'all';
      procs.forEach(function (p, i) { select.appendChild(el('option', null, p[0])).value = String(i); });
      select.addEventListener('change', function () { setProcess(select.value); });
      tree.parentNode.insertBefore(box, tree);
      api.processes = procs.map(function (p) { return p[0]; });
    }
    function setProcess(value) {
      pick = value === 'all' ? 'all' : +value;
      var select = document.getElementById('sel-proc');
      if (select) select.value = String(value);
      if (api.range) renderStacks(api.range[0] * 1e6, api.range[1] * 1e6);
    }

    function flameLegend(cats) {
      var box = document.getElementById('flame-legend');
      if (!box) return;
      clear(box).appendChild(el('span', 'muted', 'Flame chart colours: '));
      cats.forEach(function (c) {
        var item = box.appendChild(el('span', 'legend-item'));
        var sw = item.appendChild(el('span', 'swatch'));
        sw.style.backgroundColor = c[1];
        item.appendChild(document.createTextNode(c[0]));
      });
    }

    // Phases and spans inside [a, b] (microseconds).
    function renderPhases(a, b) {
      var box = clear(document.getElementById('sel-phases'));
      var P = T.phases || { top: [], labels: {} }, width = b - a, byKind = {}, order = [];
      (P.top || []).forEach(function (p) {
        var ov = Math.min(p[3], b) - Math.max(p[2], a);
        if (ov <= 0) return;
        if (!byKind[p[0]]) { byKind[p[0]] = { n: 0, us: 0, names: [] }; order.push(p[0]); }
        var k = byKind[p[0]];
        k.n += 1; k.us += ov;
        if (k.names.length < 3) k.names.push(p[1]);
      });
      var rows = order.map(function (kind) {
        var k = byKind[kind];
        return [kind.replace('_', ' '), k.n > 3 ? k.n + ' (' + k.names.join(', ') + ', ...)' : k.names.join(', '),
                ms(k.us), pct(k.us / width)];
      });
      var labels = P.labels || {}, edges = P.edges_us;
      Object.keys(labels).forEach(function (lab) {
        var L = labels[lab], us = 0, count = 0;
        if (L.s) {
          // Every span counts, a sub-microsecond one (duration 0 here) included.
          for (var i = lowerBound(L.s, a - L.maxd); i < L.s.length && L.s[i] <= b; i++) {
            var ov = Math.min(L.s[i] + L.d[i], b) - Math.max(L.s[i], a);
            if (ov > 0) us += ov;
            if (L.s[i] >= a) count += 1;
          }
        } else if (edges) {
          us = interp(edges, L.c, b) - interp(edges, L.c, a);
          count = Math.round(interp(edges, L.n, b) - interp(edges, L.n, a));
        }
        if (us > 0 || count > 0) {
          rows.push([lab.replace(':', ': '), count.toLocaleString() + ' spans started in range', ms(us), pct(us / width)]);
        }
      });
      if (!rows.length) { box.appendChild(el('p', 'muted', 'No recorded phase in this range.')); return; }
      box.appendChild(table(['phase', 'which', 'time in range', 'share'], rows, [false, false, true, true]));
    }

    function renderEnergy(a, b) {
      var box = clear(document.getElementById('sel-energy'));
      var e = api.energy(a, b), keys = Object.keys(e);
      if (!keys.length) {
        box.appendChild(el('p', 'muted', 'No power readings in this run (see "What is missing").'));
        return;
      }
      var rows = keys.map(function (k) {
        return [k, e[k].toFixed(e[k] < 10 ? 3 : 1) + ' J', (e[k] / (b - a)).toFixed(2) + ' W'];
      });
      box.appendChild(table(['power series', 'energy', 'mean power'], rows, [false, true, true]));
      box.appendChild(el('p', 'muted small', 'A package total (combined) includes its parts: do not add them up.'));
    }

    // Call tree and function table of the samples in [a, b] (microseconds).
    function renderStacks(a, b) {
      var treeBox = clear(document.getElementById('sel-tree'));
      var funcBox = clear(document.getElementById('sel-funcs'));
      var src = trees.all || trees.main;
      if (!src) {
        treeBox.appendChild(el('p', 'muted', 'No stack samples in this run (see "What is missing").'));
        return;
      }
      var S = src.S, only = pick === 'all' || !trees.all ? -1 : T.procs.procs[pick][1];
      var roots = only < 0 ? src.roots : [only];
      var R = S.rows, bw = R.bucket_us, nNodes = S.tree.parent.length, nb = R.count.length;
      var self = new Float64Array(nNodes), total, i;
      var b0 = Math.max(0, Math.floor(a / bw)), b1 = Math.min(nb - 1, Math.floor(b / bw));
      for (var bk = b0; bk <= b1; bk++) {
        var t0 = bk * bw, ov = Math.min(t0 + bw, b) - Math.max(t0, a);
        if (ov <= 0) continue;
        var frac = Math.min(1, ov / bw);
        for (i = R.offsets[bk]; i < R.offsets[bk + 1]; i++) {
          if (only < 0 || src.rootOf[R.n[i]] === only) self[R.n[i]] += R.w[i] * frac;
        }
      }
      total = Float64Array.from(self);
      api.lastSelf = self;
      var parent = S.tree.parent;
      for (i = nNodes - 1; i >= 0; i--) if (parent[i] >= 0) total[parent[i]] += total[i];
      var sum = 0;
      roots.forEach(function (r) { sum += total[r]; });
      api.treeTotalUs = sum;
      if (sum <= 0) {
        treeBox.appendChild(el('p', 'muted', 'No stack samples in this range.'));
        funcBox.appendChild(el('p', 'muted', 'No stack samples in this range.'));
        return;
      }
      treeBox.appendChild(el('p', 'muted small', ms(sum) + ' sampled in the range. Each row: share of the range, total, self, function, where. Click to open.'));
      var budget = { n: 700 };
      var ul = treeBox.appendChild(el('ul', 'tree-root'));
      roots.slice().sort(function (x, y) { return total[y] - total[x]; }).forEach(function (r) {
        treeNode(src, ul, r, total, self, sum, budget, 0);
      });

      // Bottom-up: self and total per function.
      var fn = S.tree.func, first = S.tree.first, F = S.funcs.name.length;
      var fself = new Float64Array(F), ftotal = new Float64Array(F);
      for (i = 0; i < nNodes; i++) { fself[fn[i]] += self[i]; if (first[i]) ftotal[fn[i]] += total[i]; }
      var idx = [];
      for (i = 0; i < F; i++) if (fself[i] > 0) idx.push(i);
      idx.sort(function (x, y) { return fself[y] - fself[x] || ftotal[y] - ftotal[x]; });
      var rows = idx.slice(0, 30).map(function (f) {
        return [S.funcs.name[f], S.funcs.where[f], ms(fself[f]), pct(fself[f] / sum), ms(ftotal[f]), pct(ftotal[f] / sum)];
      });
      var t = table(['function', 'where', 'self', 'self %', 'total', 'total %'], rows, [false, false, true, true, true, true]);
      t.classList.add('funcs');
      funcBox.appendChild(t);
    }

    function treeNode(src, parentEl, node, total, self, sum, budget, depth) {
      if (budget.n <= 0) return;
      budget.n -= 1;
      var S = src.S;
      var li = parentEl.appendChild(el('li'));
      var kids = src.children[node].filter(function (c) { return total[c] > 0; });
      kids.sort(function (x, y) { return total[y] - total[x]; });
      var share = total[node] / sum;
      var fn = S.tree.func[node];
      var row = el('span', 'tree-row');
      var bar = row.appendChild(el('span', 'tree-bar'));
      bar.appendChild(el('span', 'tree-fill')).style.width = Math.max(0.5, 100 * share).toFixed(1) + '%';
      row.appendChild(el('span', 'tree-pct', pct(share)));
      row.appendChild(el('span', 'tree-ms', ms(total[node])));
      row.appendChild(el('span', 'tree-ms self', ms(self[node])));
      row.appendChild(el('span', 'tree-fn', S.funcs.name[fn]));
      row.appendChild(el('span', 'tree-where', S.funcs.where[fn]));
      var shown = kids.filter(function (c) { return total[c] / sum >= 0.002; });
      if (!shown.length) { li.className = 'leaf'; li.appendChild(row); return; }
      var det = li.appendChild(el('details'));
      det.appendChild(el('summary')).appendChild(row);
      var build = function () {
        if (det.getAttribute('data-built')) return;
        det.setAttribute('data-built', '1');
        var ul = det.appendChild(el('ul'));
        shown.forEach(function (c) { treeNode(src, ul, c, total, self, sum, budget, depth + 1); });
        var hidden = kids.length - shown.length;
        if (hidden > 0) ul.appendChild(el('li', 'muted small', hidden + ' smaller callee(s) left out'));
      };
      if (share >= 0.2 && depth < 120) { det.open = true; build(); }
      else det.addEventListener('toggle', function () { if (det.open) { budget.n = Math.max(budget.n, 200); build(); } });
    }
  }
})();
