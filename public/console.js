// Progressive enhancement only: every page works without this script.
// Lag charts (<img class="chart" data-refresh="SECONDS">) are replaced by the same SVG inlined
// into the page, so that hovering a point shows its time and value (browsers never show the
// <title> tooltips of an SVG seen through <img>), and reloaded every few seconds. Where the
// chart cannot be fetched or read, the <img> stays and only its source is reloaded.
(function () {
  "use strict";

  function stamped(base) {
    return base + (base.indexOf("?") >= 0 ? "&" : "?") + "t=" + Date.now();
  }

  function reloadImage(img, base, every) {
    setInterval(function () {
      if (document.hidden) return;
      var next = new Image();
      next.onload = function () { img.src = next.src; };
      next.src = stamped(base);
    }, every * 1000);
  }

  // The answer as an <svg> element of this document, or null if it is not a chart (an
  // expired session answers with the log-in page, for instance).
  function parseChart(text) {
    var doc = new DOMParser().parseFromString(text, "image/svg+xml");
    var svg = doc.documentElement;
    if (!svg || svg.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
      return null;
    }
    // The chart's own <style> serves it as an image; inlined, style/console.css styles it
    // (and the page's Content-Security-Policy would refuse the element anyway).
    var styles = svg.getElementsByTagName("style");
    while (styles.length) styles[0].parentNode.removeChild(styles[0]);
    return document.importNode(svg, true);
  }

  function inline(img) {
    var every = parseInt(img.getAttribute("data-refresh"), 10) || 5;
    var base = img.getAttribute("src").replace(/([?&])t=\d+/, "").replace(/[?&]$/, "");
    var label = img.getAttribute("alt");
    var shown = img;
    var busy = false;
    function load() {
      return fetch(stamped(base), { credentials: "same-origin", cache: "no-store" })
        .then(function (res) {
          if (!res.ok) throw new Error("chart answered " + res.status);
          return res.text();
        })
        .then(function (text) {
          var svg = parseChart(text);
          if (!svg) throw new Error("not a chart");
          svg.setAttribute("class", "chart lag-chart");
          if (label) svg.setAttribute("aria-label", label);
          shown.parentNode.replaceChild(svg, shown);
          shown = svg;
        });
    }
    function tick() {
      // A chart being read (pointer on it) stays still; one request at a time.
      if (busy || document.hidden || shown.matches(":hover")) return;
      busy = true;
      load().catch(function () {}).then(function () { busy = false; });
    }
    load().then(
      function () { setInterval(tick, every * 1000); },
      function () { reloadImage(img, base, every); }
    );
  }

  document.addEventListener("DOMContentLoaded", function () {
    var charts = document.querySelectorAll("img.chart[data-refresh]");
    var canInline = typeof window.fetch === "function" && typeof window.DOMParser === "function";
    for (var i = 0; i < charts.length; i++) {
      if (canInline) {
        inline(charts[i]);
      } else {
        var img = charts[i];
        reloadImage(img, img.getAttribute("src"), parseInt(img.getAttribute("data-refresh"), 10) || 5);
      }
    }
  });
})();

// Copy buttons (<button data-copy="ID" hidden>): shown only here, they copy the text of
// the element with that id (a new secret, a client snippet).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      (function (b) {
        var target = document.getElementById(b.getAttribute("data-copy"));
        if (!target || !navigator.clipboard) return;
        b.hidden = false;
        b.addEventListener("click", function () {
          navigator.clipboard.writeText(target.textContent).then(function () {
            b.textContent = "Copied";
            setTimeout(function () { b.textContent = "Copy"; }, 1500);
          });
        });
      })(buttons[i]);
    }
  });
})();
