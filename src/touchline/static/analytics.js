// The analytics page: reads the filters, asks /analytics/data, draws each chart with Chart.js and
// writes its numbers in the table beside it; the CSV links follow the filters. No inline script (CSP).
(function () {
  "use strict";
  var form = document.getElementById("analytics-filters");
  if (!form || typeof Chart === "undefined") return;
  var status = document.getElementById("analytics-status");
  var charts = {};
  var RATES = ["open_rate", "human_open_rate", "click_rate", "human_click_rate", "reply_rate"];

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (value) params.append(key, value);
    });
    return params.toString();
  }

  function label(group) {
    return group.label || group.group || "(none)";
  }

  function datasets(name, groups) {
    function series(title, key, color) {
      return {
        label: title,
        data: groups.map(function (group) { return group[key]; }),
        backgroundColor: color,
        borderColor: color,
      };
    }
    if (name === "funnel") {
      return [
        series("Sent", "sent", "#9aa5b1"),
        { label: "Opened", data: groups.map(function (g) { return g.counts.opened; }), backgroundColor: "#4c8bf5" },
        { label: "Clicked", data: groups.map(function (g) { return g.counts.clicked; }), backgroundColor: "#f5a623" },
        { label: "Replied", data: groups.map(function (g) { return g.counts.replied; }), backgroundColor: "#2e9d5b" },
      ];
    }
    if (name === "over_time") {
      return [
        series("Open %", "open_rate", "#4c8bf5"),
        series("Human click %", "human_click_rate", "#f5a623"),
        series("Reply %", "reply_rate", "#2e9d5b"),
      ];
    }
    return [series("Click %", "click_rate", "#f5a623"), series("Reply %", "reply_rate", "#2e9d5b")];
  }

  function fillTable(section, groups) {
    var body = section.querySelector("tbody");
    body.replaceChildren();
    groups.forEach(function (group) {
      var row = document.createElement("tr");
      [label(group), group.sent].concat(RATES.map(function (key) {
        return group[key] === null ? "–" : group[key].toFixed(1);
      })).forEach(function (text) {
        var cell = document.createElement("td");
        cell.textContent = String(text);
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
  }

  function draw(name, groups) {
    var section = document.getElementById("chart-" + name);
    fillTable(section, groups);
    section.querySelector(".csv-link").href = form.dataset.csvUrl + name + ".csv?" + query();
    var config = {
      type: name === "over_time" ? "line" : "bar",
      data: { labels: groups.map(label), datasets: datasets(name, groups) },
      options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
    };
    if (charts[name]) charts[name].destroy();
    charts[name] = new Chart(section.querySelector("canvas"), config);
  }

  function load() {
    status.textContent = "Loading…";
    fetch(form.dataset.dataUrl + "?" + query(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("the figures could not be loaded (" + response.status + ")");
        return response.json();
      })
      .then(function (data) {
        ["templates", "over_time", "funnel"].forEach(function (name) { draw(name, data[name]); });
        status.textContent = "Updated";
        document.body.dataset.analyticsLoaded = String(Number(document.body.dataset.analyticsLoaded || 0) + 1);
      })
      .catch(function (error) { status.textContent = error.message; });
  }

  form.addEventListener("change", load);
  form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
  load();
})();
