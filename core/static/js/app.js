// Yiti OA portal behaviour. No inline scripts anywhere (the Content-Security-Policy forbids them):
// pages declare what they need with data- attributes and this file wires it up.
(function () {
  "use strict";

  // <form data-confirm="Really?"> asks before submitting.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // <div data-chart-bar='{"labels": [...], "values": [...]}'> becomes an ECharts bar chart.
  function drawCharts(root) {
    if (!window.echarts) { return; }
    root.querySelectorAll("[data-chart-bar]").forEach(function (element) {
      if (element.dataset.drawn) { return; }
      element.dataset.drawn = "1";
      var data = JSON.parse(element.getAttribute("data-chart-bar"));
      var chart = window.echarts.init(element);
      chart.setOption({
        grid: { left: 8, right: 8, top: 16, bottom: 8, containLabel: true },
        tooltip: { trigger: "axis" },
        xAxis: { type: "category", data: data.labels, axisLabel: { interval: 0, rotate: data.labels.length > 5 ? 30 : 0 } },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ type: "bar", name: element.getAttribute("data-series-name") || "", data: data.values, itemStyle: { color: "#0d6efd" } }]
      });
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  // The header's search box: "/" focuses it; arrow keys walk the suggestions; Escape closes them.
  function searchHits() {
    return Array.prototype.slice.call(document.querySelectorAll("#search-suggest [data-search-hit]"));
  }
  document.addEventListener("keydown", function (event) {
    var box = document.querySelector("[data-global-search]");
    if (!box) { return; }
    var tag = (event.target.tagName || "").toLowerCase();
    var typing = tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable;
    if (event.key === "/" && !typing) {
      event.preventDefault();
      box.focus();
      return;
    }
    var hits = searchHits();
    var index = hits.indexOf(document.activeElement);
    if (event.key === "ArrowDown" && (event.target === box || index >= 0) && hits.length) {
      event.preventDefault();
      hits[Math.min(index + 1, hits.length - 1)].focus();
    } else if (event.key === "ArrowUp" && index >= 0) {
      event.preventDefault();
      if (index === 0) { box.focus(); } else { hits[index - 1].focus(); }
    } else if (event.key === "Escape" && (event.target === box || index >= 0)) {
      document.getElementById("search-suggest").innerHTML = "";
      box.focus();
    }
  });
  document.addEventListener("click", function (event) {
    var suggest = document.getElementById("search-suggest");
    if (suggest && !event.target.closest(".global-search")) { suggest.innerHTML = ""; }
  });

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.target); });
})();
