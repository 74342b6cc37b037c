/* didban explorer: draws the uPlot charts from the JSON each page embeds. The pages work
   without it: every chart has a table or an inline SVG beside it. */
(function () {
  "use strict";
  // The axes speak the page's language: Persian digits and the Solar Hijri day in Farsi,
  // days in UTC (the pages' days) whatever the reader's time zone.
  var fa = document.documentElement.lang === "fa";
  var locale = fa ? "fa-IR" : "en-GB";
  var dayFormat = new Intl.DateTimeFormat(locale, {day: "numeric", month: "short", timeZone: "UTC"});
  var numberFormat = new Intl.NumberFormat(locale);
  var percent = fa ? "٪" : "%";
  function draw(el) {
    var data = JSON.parse(document.getElementById(el.dataset.series).textContent);
    if (!window.uPlot || !data.days.length) return;
    el.textContent = "";
    var width = Math.max(280, Math.min(el.parentElement.clientWidth, 1100));
    var opts = {
      width: width, height: 180, legend: {show: false},
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: {x: {time: true}, share: {range: [0, 1]}},
      series: [{}, {label: el.dataset.labelVolume, stroke: "#08519c", width: 2},
               {label: el.dataset.labelBlocked, stroke: "#b3261e", width: 2, scale: "share"}],
      axes: [{values: function (u, v) { return v.map(function (t) { return dayFormat.format(new Date(t * 1e3)); }); }},
             {size: 70, values: function (u, v) { return v.map(function (x) { return numberFormat.format(x); }); }},
             {scale: "share", side: 1, size: 50, grid: {show: false},
              values: function (u, v) { return v.map(function (x) { return numberFormat.format(Math.round(x * 100)) + percent; }); }}]
    };
    el.chart = new uPlot(opts, [data.days, data.measurements, data.blocked_share], el);
  }
  function all(root) {
    (root || document).querySelectorAll("[data-series]").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () { all(); });
  document.addEventListener("htmx:after:swap", function () { all(); });
})();
