/* The comparison report's behaviour, inline in the page (nothing is fetched):
   tables sort by any column (click or Enter on a heading; numbers by the value the cell
   carries in data-key, text by its words), the columns table is searchable (the distribution
   cards follow it), and the charts are drawn with the Plotly bundle embedded once above. */
(function () {
  "use strict";
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  function key(cell) {
    var v = parseFloat(cell.getAttribute("data-key"));
    return isNaN(v) ? -Infinity : v;
  }

  each(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    each(heads, function (th, col) {
      th.tabIndex = 0;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        each(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-sort") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col], r;
          if (numeric) {
            var u = key(x), v = key(y);
            r = u < v ? -1 : (u > v ? 1 : 0);
          } else {
            r = x.textContent.trim().localeCompare(y.textContent.trim(), undefined,
                                                    {numeric: true});
          }
          return ascending ? r : -r;
        });
        each(rows, function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });

  var search = document.getElementById("search");
  var table = document.getElementById("columns");
  if (search && table) {
    var count = document.getElementById("search-count");
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase(), shown = {}, n = 0;
      var rows = table.tBodies[0].rows;
      each(rows, function (row) {
        var hit = !q || row.textContent.toLowerCase().indexOf(q) >= 0;
        row.hidden = !hit;
        if (hit) { n += 1; shown[row.getAttribute("data-name")] = true; }
      });
      each(document.querySelectorAll(".card[data-column]"), function (card) {
        card.hidden = !shown[card.getAttribute("data-column")];
      });
      if (count) { count.textContent = n + " of " + rows.length + " columns"; }
    });
  }

  var figures = document.getElementById("figures");
  if (figures && window.Plotly) {
    var all = JSON.parse(figures.textContent), pending = [];
    var config = {responsive: true, displaylogo: false,
                  modeBarButtonsToRemove: ["select2d", "lasso2d"]};
    each(document.querySelectorAll("[data-figure]"), function (el) {
      var f = all[el.getAttribute("data-figure")];
      if (f) { pending.push(window.Plotly.newPlot(el, f.data, f.layout, config)); }
    });
    Promise.all(pending).then(function () { document.body.setAttribute("data-charts", "ready"); });
  } else {
    document.body.setAttribute("data-charts", "none");
  }
})();
