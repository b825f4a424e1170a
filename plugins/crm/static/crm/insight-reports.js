// CRM reports page: draws the charts from the JSON block the page renders (#crm-report-data).
// No inline script (the Content-Security-Policy forbids it); the figures are the same ones the
// tables on the page and /api/v1/crm/reports/<name> show.
(function () {
  "use strict";

  var COLORS = ["#0d6efd", "#20c997", "#ffc107", "#fd7e14", "#6f42c1", "#dc3545", "#0dcaf0", "#6c757d"];

  function money(text) { return Number(text || 0); }

  function pie(items, name) {
    return {
      color: COLORS,
      tooltip: { trigger: "item" },
      series: [{ type: "pie", name: name, radius: ["35%", "70%"],
                 data: items.map(function (i) { return { name: i.name || "—", value: i.count }; }) }]
    };
  }

  function options(key, data, labels) {
    if (key === "funnel") {
      var stages = data.funnel.stages;
      return {
        color: COLORS,
        tooltip: { trigger: "item", formatter: function (p) {
          var s = stages[p.dataIndex];
          return s.label + "<br>" + labels.reached + ": " + s.reached + (s.conversion ? " (" + s.conversion + "%)" : "");
        } },
        series: [{ type: "funnel", sort: "none", left: "10%", width: "80%", minSize: "10%", gap: 2,
                   label: { show: true, position: "inside" },
                   data: stages.map(function (s) { return { name: s.label, value: s.reached }; }) }]
      };
    }
    if (key === "leaderboard") {
      var board = data.leaderboard;
      return {
        color: COLORS,
        tooltip: { trigger: "axis" },
        legend: { type: "scroll", top: 0 },
        grid: { left: 8, right: 8, top: 32, bottom: 8, containLabel: true },
        xAxis: { type: "category", data: board.reps.map(function (r) { return r.name; }) },
        yAxis: { type: "value" },
        series: board.months.map(function (month) {
          return { type: "bar", stack: "won", name: month,
                   data: board.reps.map(function (r) { return money(r.by_month[month]); }) };
        })
      };
    }
    if (key.indexOf("customers.") === 0) {
      return pie(data.customers[key.split(".")[1]], labels.count);
    }
    var t = data.tickets;
    if (key === "tickets.volume") {
      return {
        color: COLORS,
        tooltip: { trigger: "axis" },
        grid: { left: 8, right: 8, top: 16, bottom: 8, containLabel: true },
        xAxis: { type: "category", data: t.volume.map(function (v) { return v.month; }) },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ type: "bar", name: labels.tickets, data: t.volume.map(function (v) { return v.count; }) }]
      };
    }
    if (key === "tickets.sla") {
      return pie([{ name: labels.met, count: t.sla.met }, { name: labels.breached, count: t.sla.breached },
                  { name: labels.pending, count: t.sla.pending }], labels.tickets);
    }
    if (key === "tickets.satisfaction") {
      var scores = ["1", "2", "3", "4", "5"];
      return {
        color: COLORS,
        tooltip: { trigger: "axis" },
        grid: { left: 8, right: 8, top: 16, bottom: 8, containLabel: true },
        xAxis: { type: "category", name: labels.score, data: scores },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ type: "bar", name: labels.count, data: scores.map(function (s) { return t.satisfaction.scores[s]; }) }]
      };
    }
    return null;
  }

  function draw() {
    var block = document.getElementById("crm-report-data");
    if (!block || !window.echarts) { return; }
    var payload = JSON.parse(block.textContent);
    var charts = [];
    document.querySelectorAll("[data-report-chart]").forEach(function (element) {
      var option = options(element.getAttribute("data-report-chart"), payload.data, payload.labels);
      if (!option) { return; }
      var chart = window.echarts.init(element);
      chart.setOption(option);
      charts.push(chart);
    });
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
