// Progressive enhancement only: every page works without this script.
// Lag charts (<img class="chart" data-refresh="SECONDS">) reload every few seconds.
(function () {
  "use strict";
  function refresh(img) {
    var every = parseInt(img.getAttribute("data-refresh"), 10) || 5;
    var base = img.getAttribute("src").replace(/([?&])t=\d+/, "").replace(/[?&]$/, "");
    setInterval(function () {
      if (document.hidden) return;
      var sep = base.indexOf("?") >= 0 ? "&" : "?";
      var next = new Image();
      next.onload = function () { img.src = next.src; };
      next.src = base + sep + "t=" + Date.now();
    }, every * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var charts = document.querySelectorAll("img.chart[data-refresh]");
    for (var i = 0; i < charts.length; i++) refresh(charts[i]);
  });
})();
