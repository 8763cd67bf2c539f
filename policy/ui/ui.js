// The spend page's charts, drawn with the vendored uPlot from the figures the page
// embeds as JSON (<script type="application/json" id="charts">, which never runs). The
// tables beside each chart hold the same figures and read without JavaScript.
"use strict";
(function () {
  var source = document.getElementById("charts");
  if (!source || typeof uPlot === "undefined") return;
  var charts;
  try { charts = JSON.parse(source.textContent); } catch (e) { return; }
  var palette = ["#2f6fdf", "#e8710a", "#1e8e3e", "#d93025", "#9334e6", "#12b5cb",
                 "#f9ab00", "#5f6368", "#e52592", "#7cb342"];
  function day(text) { return Date.parse(text + "T00:00:00Z") / 1000; }
  function usd(micros) { return micros == null ? "" : "$" + (micros / 1e6).toFixed(2); }
  charts.forEach(function (chart) {
    var el = document.getElementById(chart.id);
    if (!el || !chart.days.length || !chart.series.length) return;
    var money = chart.unit === "usd_micros";
    var format = money ? usd : function (v) { return v == null ? "" : String(v); };
    var data = [chart.days.map(day)];
    var series = [{}];
    chart.series.forEach(function (s, i) {
      data.push(s.values);
      var colour = s.colour || palette[i % palette.length];
      series.push({ label: s.label, stroke: colour, width: 2, dash: s.dash,
                    fill: chart.fill ? colour + "22" : undefined,
                    points: { show: chart.days.length < 3 },
                    value: function (u, v) { return format(v); } });
    });
    var width = Math.max(300, el.clientWidth || 520);
    new uPlot({
      width: width, height: 220, series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 1)]; } } },
      axes: [{}, { size: 70, values: function (u, ticks) { return ticks.map(format); } }],
      legend: { live: true },
    }, data, el);
  });
})();
