// The A/B test page: draws each variant's rate (a bar) and its always-valid interval (a floating bar
// from its low to its high end) with Chart.js, from the numbers the page carries as JSON in the
// chart section's data-chart attribute. No inline script (CSP).
(function () {
  "use strict";
  var section = document.getElementById("experiment-chart");
  if (!section || !section.dataset.chart || typeof Chart === "undefined") return;
  var variants = JSON.parse(section.dataset.chart).variants;

  function percent(share) {
    return share === null ? null : Math.round(share * 1000) / 10;
  }

  var chart = new Chart(section.querySelector("canvas"), {
    type: "bar",
    data: {
      labels: variants.map(function (variant) { return variant.label; }),
      datasets: [
        {
          label: "Rate %",
          data: variants.map(function (variant) { return percent(variant.rate); }),
          backgroundColor: "#4c8bf5",
        },
        {
          label: "95% interval %",
          data: variants.map(function (variant) { return [percent(variant.low), percent(variant.high)]; }),
          backgroundColor: "rgba(46, 157, 91, 0.35)",
          borderColor: "#2e9d5b",
          borderWidth: 1,
          barPercentage: 0.3,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      scales: { y: { beginAtZero: true, max: 100, title: { display: true, text: "%" } } },
    },
  });
  document.body.dataset.experimentChart = String(chart.data.labels.length);
})();
