// The explorer: filters, sorts and shows the questions of #explorer-data (built by
// compress_recover/aggregate/explorer.py). Hand-written, no library: about 170 lines against a
// DataTables bundle of several hundred KB whose column filters cannot express "lost by this
// compression, won back by that method". Every text from a task goes through textContent.
(function () {
  "use strict";
  var source = document.getElementById("explorer-data");
  if (!source) return;
  var data = JSON.parse(source.textContent);
  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  var sortKey = null, sortDir = 1, open = {};

  function option(select, value, label) {
    var o = el("option", label); o.value = value; select.appendChild(o);
  }
  function view() {
    var key = $("ex-view").value;
    return data.views.filter(function (v) { return v.key === key; })[0];
  }
  function fillStatuses() {
    var s = $("ex-status"), v = view(), keep = s.value;
    s.textContent = "";
    option(s, "", "any status");
    ["kept", "lost", "gained", "never known"].forEach(function (k) { option(s, "status:" + k, k); });
    // a levels view (v.won_text set) lists levels where a model view lists remedies
    v.recoveries.forEach(function (r) { option(s, "won:" + r, (v.won_text || "lost, won back by ") + r); });
    option(s, "several", v.several_text || "lost, won back by several");
    v.recoveries.forEach(function (r) { option(s, "broken:" + r, (v.broken_text || "newly broken by ") + r); });
    if (Array.prototype.some.call(s.options, function (o) { return o.value === keep; })) s.value = keep;
  }
  // "answered from the prior": the answer with the subject equals the content-free one (r[5]).
  function fillPriors() {
    var s = $("ex-prior"), v = view(), keep = s.value;
    s.textContent = "";
    option(s, "", "any");
    v.columns.forEach(function (c) { option(s, "fp:" + c, "by " + data.columns[c]); });
    v.columns.forEach(function (c) { option(s, "not:" + c, "not by " + data.columns[c]); });
    if (Array.prototype.some.call(s.options, function (o) { return o.value === keep; })) s.value = keep;
  }
  function matches(q, v) {
    if (q.s !== $("ex-split").value || q.m !== v.model || !q.st[v.key]) return false;
    var task = $("ex-task").value;
    if (task && q.t !== task) return false;
    var st = q.st[v.key], f = $("ex-status").value;
    if (f.indexOf("status:") === 0 && st[0] !== f.slice(7)) return false;
    if (f.indexOf("won:") === 0 && st[1].indexOf(f.slice(4)) < 0) return false;
    if (f === "several" && st[1].length < 2) return false;
    if (f.indexOf("broken:") === 0 && st[2].indexOf(f.slice(7)) < 0) return false;
    var p = $("ex-prior").value;
    if (p) {
      var not = p.indexOf("not:") === 0, pr = q.r[p.slice(not ? 4 : 3)];
      if (!pr || pr[5] === null || pr[5] === undefined || (pr[5] === 1) === not) return false;
    }
    var text = $("ex-search").value.trim().toLowerCase();
    if (text) {
      var hay = [q.t, q.q, q.a].concat(v.columns.map(function (c) { return q.r[c] ? q.r[c][0] : ""; }));
      if (hay.join("\n").toLowerCase().indexOf(text) < 0) return false;
    }
    return true;
  }
  function value(q, key, v) {
    if (key === "task") return q.t;
    if (key === "question") return q.q;
    if (key === "answer") return q.a;
    if (key === "status") return q.st[v.key][0];
    if (key === "popularity") return q.pct === null ? -1 : q.pct;
    var r = q.r[key];
    return r ? r[2] : -1;
  }
  function detail(q, v, width) {
    var tr = el("tr", null, "ex-detail"), td = el("td");
    td.colSpan = width;
    var t = el("table"), head = el("tr");
    head.appendChild(el("th", "choice"));
    v.columns.forEach(function (c) { head.appendChild(el("th", data.columns[c] + ": P(choice)")); });
    t.appendChild(head);
    q.c.forEach(function (choice, i) {
      var row = el("tr", null, choice === q.a ? "ex-right" : "");
      row.appendChild(el("td", choice + (choice === q.a ? " (right)" : "")));
      v.columns.forEach(function (c) {
        var r = q.r[c];
        row.appendChild(el("td", r ? r[3][i].toFixed(3) + (r[0] === choice ? " ← chosen" : "") +
                                 (r[4] === choice ? " (content-free choice)" : "") : "n/a"));
      });
      t.appendChild(row);
    });
    td.appendChild(el("p", "Popularity: " + (q.pop === null ? "none" : q.pop.toLocaleString() +
      " (percentile " + q.pct.toFixed(2) + " within " + q.t + ")") + "; measure: " + q.pm + "."));
    td.appendChild(t);
    td.appendChild(el("p", "KL divergence from the base model over the choices (nats): " +
      v.columns.slice(1).map(function (c) {
        var r = q.r[c];
        return data.columns[c] + ": " + (r && r[6] !== null && r[6] !== undefined ? r[6].toFixed(4) : "n/a");
      }).join("; ") + "."));
    if (data.prior) {
      td.appendChild(el("p", "Content-free choice (the subject masked): " + v.columns.map(function (c) {
        var r = q.r[c];
        return data.columns[c] + ": " + (r && r[4] !== null && r[4] !== undefined ?
          r[4] + (r[5] ? " (answered from the prior)" : " (answer differs)") : "n/a");
      }).join("; ") + "."));
    }
    tr.appendChild(td);
    return tr;
  }
  function render() {
    var v = view(), body = $("ex-body"), head = $("ex-head");
    var cols = [["task", "task"], ["question", "question"], ["answer", "right answer"],
                ["popularity", "popularity (percentile)"], ["status", "status"]];
    v.columns.forEach(function (c) { cols.push([c, data.columns[c]]); });
    head.textContent = "";
    var hr = el("tr");
    cols.forEach(function (c) {
      var th = el("th", c[1] + (sortKey === c[0] ? (sortDir > 0 ? " ▲" : " ▼") : ""));
      th.dataset.key = c[0];
      th.addEventListener("click", function () {
        sortDir = sortKey === c[0] ? -sortDir : 1; sortKey = c[0]; render();
      });
      hr.appendChild(th);
    });
    head.appendChild(hr);
    var rows = data.questions.filter(function (q) { return matches(q, v); });
    if (sortKey) {
      rows.sort(function (a, b) {
        var x = value(a, sortKey, v), y = value(b, sortKey, v);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
      });
    }
    var total = data.questions.filter(function (q) {
      return q.s === $("ex-split").value && q.m === v.model && q.st[v.key];
    }).length;
    $("ex-count").textContent = rows.length + " of " + total + " " + $("ex-split").value + " questions";
    body.textContent = "";
    rows.forEach(function (q) {
      var id = q.m + "/" + q.t + "/" + q.id, tr = el("tr", null, "ex-row");
      tr.dataset.id = id;
      tr.appendChild(el("td", q.t));
      tr.appendChild(el("td", q.q, "ex-q"));
      tr.appendChild(el("td", q.a));
      tr.appendChild(el("td", q.pct === null ? "none" : q.pct.toFixed(2)));
      tr.appendChild(el("td", q.st[v.key][0]));
      v.columns.forEach(function (c) {
        var r = q.r[c];
        // r[6]: KL(base || this model) over the choices, the distance beside the flip (none for the base)
        var kl = r && r[6] !== null && r[6] !== undefined && c !== v.columns[0] ? "; KL " + r[6].toFixed(2) : "";
        tr.appendChild(el("td", r ? (r[1] ? "✓ " : "✗ ") + r[0] + " (" + r[2].toFixed(2) + kl + ")" : "n/a",
                          r ? (r[1] ? "ex-ok" : "ex-bad") : ""));
      });
      tr.addEventListener("click", function () { open[id] = !open[id]; render(); });
      body.appendChild(tr);
      if (open[id]) body.appendChild(detail(q, v, cols.length));
    });
  }
  data.views.forEach(function (v) { option($("ex-view"), v.key, v.model + " / " + v.compression); });
  data.tasks.forEach(function (t) { option($("ex-task"), t, t); });
  ["ex-view", "ex-split", "ex-task", "ex-status", "ex-prior"].forEach(function (id) {
    $(id).addEventListener("change", function () {
      if (id === "ex-view") { fillStatuses(); fillPriors(); }
      render();
    });
  });
  if (!data.prior) $("ex-prior-label").style.display = "none";
  $("ex-search").addEventListener("input", render);
  if (data.views.length) { fillStatuses(); fillPriors(); render(); }
})();
// A link to a table inside a closed <details> opens it.
(function () {
  function reveal() {
    var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    for (var e = target; e; e = e.parentElement) if (e.tagName === "DETAILS") e.open = true;
    if (target) target.scrollIntoView();
  }
  window.addEventListener("hashchange", reveal);
  reveal();
})();
