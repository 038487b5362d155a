// Live tail of the message browser: with ?tail=1 the records table carries data-tail (the
// JSON API's address for the records after those shown); new records are added on top
// every two seconds. Without JavaScript the page still works (reload it).
(function () {
  "use strict";
  var MAX_ROWS = 500;
  function cell(text, pre, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (pre) {
      var p = document.createElement("pre");
      p.className = "cell";
      p.textContent = text;
      td.appendChild(p);
    } else {
      td.textContent = text;
    }
    return td;
  }
  function time(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  function start(table) {
    var url = table.getAttribute("data-tail");
    var body = table.tBodies[0];
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (page) {
          busy = false;
          if (!page) return;
          var records = page.records || [];
          // The answer is oldest first: insert each on top so the newest ends up first.
          for (var i = 0; i < records.length; i++) {
            var r = records[i];
            var tr = document.createElement("tr");
            tr.className = "new";
            tr.appendChild(cell(String(r.partition), false, "num"));
            tr.appendChild(cell(String(r.offset), false, "num"));
            tr.appendChild(cell(time(r.timestamp_ms), false, "nowrap"));
            if (r.error) {
              tr.appendChild(cell(r.error, true));
            } else {
              tr.appendChild(cell(r.key === null ? "null" : r.key, true));
              tr.appendChild(cell(r.value === null ? "null" : r.value, true));
              tr.appendChild(cell((r.headers || []).map(function (h) {
                return h.key + ": " + (h.value === null ? "null" : h.value);
              }).join("\n"), true));
            }
            tr.appendChild(cell(""));
            body.insertBefore(tr, body.firstChild);
          }
          while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
          var count = document.getElementById("count");
          if (count && records.length) count.textContent = body.rows.length + " records · newest first · live";
          if (page.newer) url = url.replace(/cursor=[^&]*/, "cursor=" + page.newer);
        })
        .catch(function () { busy = false; });
    }, 2000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var t = document.querySelector("table[data-tail]");
    if (t) start(t);
  });
})();
