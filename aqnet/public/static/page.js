/* aqnet's public air-quality page (aqnet.public.page): reads the open-data API of this listener and draws the
   network's locations, coloured by their current index category, and a location's last 24 h, as plain SVG.
   Category names, colours and action levels come from the page's configuration block (indices.json via
   aqnet.public.scales), never from here. No library, nothing fetched from another origin except the map tiles
   of `public.tile_url` when the operator sets one. */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("aq-config").textContent);
  var W = cfg.words;
  var SVG = "http://www.w3.org/2000/svg";
  var NO_INDEX = {name: W.no_index, colour: "#9E9E9E", text: "#000000", action: null};
  var TILE = 256; // the XYZ tile scheme's tile size, px

  var state = {index: "iboca", locations: [], indices: {iboca: {}, us_aqi: {}}, selected: null};

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return values[k]; });
  }

  /* Every page of a list answer (meta.next), fetched on this origin. */
  function getAll(path) {
    var out = [];
    function step(url, n) {
      return fetch(url, {headers: {Accept: "application/json"}}).then(function (r) {
        if (!r.ok) throw new Error(url + ": HTTP " + r.status);
        return r.json();
      }).then(function (body) {
        out = out.concat(body.results);
        if (body.meta.next && n < 50) {
          var next = new URL(body.meta.next, location.href);
          return step(next.pathname + next.search, n + 1);
        }
        return out;
      });
    }
    return step(path, 0);
  }

  function category(value) {
    if (!value) return NO_INDEX;
    var cats = cfg.scales[state.index].categories;
    return cats[Math.min(Math.max(value.level, 1), cats.length) - 1];
  }

  function current(loc) { return state.indices[state.index][loc.id] || null; }

  function verification(value) {
    return value && value.verification && value.verification.code === 1 ? W.validated : W.provisional;
  }

  function indexText(value) {
    return Math.round(value.value) + (value.beyondIndex ? "+" : "");
  }

  function kindText(loc) { return loc.indicative ? W.indicative : W.station; }

  function summary(loc) {
    var value = current(loc), cat = category(value), parts = [loc.name + " (" + loc.id + ")", cat.name];
    if (value) {
      parts.push(cfg.scales[state.index].name + " " + indexText(value));
      parts.push(W.dominant + ": " + value.parameter.displayName);
      parts.push(verification(value));
    }
    parts.push(kindText(loc));
    return parts.join("; ");
  }

  function badge(cat) {
    var span = el("span", {"class": "badge"}, cat.name);
    span.style.backgroundColor = cat.colour;
    span.style.color = cat.text;
    return span;
  }

  /* ---------------------------------------------------------------- the map (Web Mercator, world pixels) */
  function project(lat, lon, z) {
    var size = TILE * Math.pow(2, z), s = Math.sin(lat * Math.PI / 180);
    return [(lon + 180) / 360 * size, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * size];
  }

  /* The map: a box of the locations' extent (Web Mercator world pixels at a zoom where it spans about 600 px),
     the ground and any tiles as an SVG filling the box, and each location an HTML link placed over it by
     percentage, so markers keep their size (and their touch target) at any width. */
  function drawMap() {
    var box = document.getElementById("map");
    var placed = state.locations.filter(function (l) { return l.coordinates; });
    box.textContent = "";
    if (!placed.length) { box.appendChild(el("p", {"class": "status"}, W.no_index)); return; }
    var lats = placed.map(function (l) { return l.coordinates.latitude; });
    var lons = placed.map(function (l) { return l.coordinates.longitude; });
    var north = Math.max.apply(null, lats), south = Math.min.apply(null, lats);
    var west = Math.min.apply(null, lons), east = Math.max.apply(null, lons);
    var a0 = project(north, west, 0), b0 = project(south, east, 0);
    var span0 = Math.max(b0[0] - a0[0], b0[1] - a0[1], 1e-9);
    var z = Math.max(1, Math.min(17, Math.floor(Math.log(600 / span0) / Math.LN2)));
    var a = project(north, west, z), b = project(south, east, z);
    // every location inside; the box no narrower than 1:1.2 nor flatter than 1:0.45
    var pad = 30, width = Math.max(b[0] - a[0], 320, (b[1] - a[1]) / 1.2) + 2 * pad;
    var height = Math.max(b[1] - a[1] + 2 * pad, 0.45 * width);
    var x0 = (a[0] + b[0]) / 2 - width / 2, y0 = (a[1] + b[1]) / 2 - height / 2;
    var canvas = el("div", {"class": placed.length > 30 ? "map-canvas crowded" : "map-canvas"});
    canvas.style.aspectRatio = width.toFixed(1) + " / " + height.toFixed(1);
    var ground = svg("svg", {viewBox: [x0, y0, width, height].join(" "), "class": "map-ground-svg",
                             "aria-hidden": "true", focusable: "false", preserveAspectRatio: "none"});
    ground.appendChild(svg("rect", {x: x0, y: y0, width: width, height: height, "class": "map-ground"}));
    if (cfg.tileUrl) {
      var n = Math.pow(2, z);
      for (var tx = Math.floor(x0 / TILE); tx <= Math.floor((x0 + width) / TILE); tx++) {
        for (var ty = Math.floor(y0 / TILE); ty <= Math.floor((y0 + height) / TILE); ty++) {
          if (ty < 0 || ty >= n) continue;
          var href = cfg.tileUrl.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty)
            .replace("{s}", "a");
          ground.appendChild(svg("image", {href: href, x: tx * TILE, y: ty * TILE, width: TILE, height: TILE,
                                           "class": "tile"}));
        }
      }
    }
    canvas.appendChild(ground);
    var marks = el("ul", {"class": "marks", "aria-label": W.map});
    // the least urgent first, so the worst categories are drawn on top
    placed.slice().sort(function (p, q) {
      return ((current(p) || {level: 0}).level - (current(q) || {level: 0}).level);
    }).forEach(function (loc) {
      var at = project(loc.coordinates.latitude, loc.coordinates.longitude, z), cat = category(current(loc));
      var link = el("a", {href: "#loc-" + loc.id, "class": "marker", title: summary(loc),
                          "data-location": loc.id, "data-category": cat.name,
                          "data-indicative": loc.indicative ? "true" : "false"});
      if (state.selected === loc.id) link.setAttribute("aria-current", "true");
      link.style.left = (100 * (at[0] - x0) / width).toFixed(3) + "%";
      link.style.top = (100 * (at[1] - y0) / height).toFixed(3) + "%";
      var shape = svg("svg", {width: 24, height: 24, viewBox: "0 0 24 24", "aria-hidden": "true",
                              focusable: "false"});
      if (loc.indicative) {
        shape.appendChild(svg("rect", {x: 4, y: 4, width: 16, height: 16, fill: cat.colour, stroke: "#111111",
                                       "stroke-width": 2, "stroke-dasharray": "3 2"}));
      } else {
        shape.appendChild(svg("circle", {cx: 12, cy: 12, r: 9, fill: cat.colour, stroke: "#111111",
                                         "stroke-width": 2}));
      }
      link.appendChild(shape);
      link.appendChild(el("span", {"class": "code"}, loc.id));
      link.appendChild(el("span", {"class": "visually-hidden"}, " " + summary(loc)));
      link.addEventListener("click", choose);
      marks.appendChild(el("li")).appendChild(link);
    });
    canvas.appendChild(marks);
    box.appendChild(canvas);
  }

  /* ---------------------------------------------------------------- the list below the map */
  function drawList() {
    var list = document.getElementById("location-list");
    list.textContent = "";
    state.locations.slice().sort(function (p, q) { return p.name.localeCompare(q.name); }).forEach(function (loc) {
      var value = current(loc), cat = category(value);
      var link = el("a", {href: "#loc-" + loc.id, "data-location": loc.id, "class": "location"});
      if (state.selected === loc.id) link.setAttribute("aria-current", "true");
      link.appendChild(badge(cat));
      link.appendChild(el("span", {"class": "name"}, loc.name));
      var facts = [];
      if (value) {
        facts.push(cfg.scales[state.index].name + " " + indexText(value));
        facts.push(value.parameter.displayName);
        facts.push(verification(value));
      }
      link.appendChild(el("span", {"class": "facts"}, facts.join(" · ")));
      if (loc.indicative) link.appendChild(el("span", {"class": "tag indicative"}, W.indicative_short));
      link.addEventListener("click", choose);
      list.appendChild(el("li")).appendChild(link);
    });
  }

  /* ---------------------------------------------------------------- a location's last 24 hours */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10)), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function hourLabel(value) {
    var local = value.period.datetimeTo.local; // ISO 8601 with the network's offset
    return local.slice(11, 16);
  }

  function chart(loc, parameter, hours, width) {
    var figure = el("figure", {"class": "chart"});
    var title = format(W.chart_of, {parameter: parameter.displayName, name: loc.name});
    var unitText = hours.length ? hours[0].unit : parameter.units;
    var values = hours.map(function (h) { return h.value; }).filter(function (v) { return v !== null; });
    var top = niceMax(Math.max.apply(null, values.concat([0])) * 1.05);
    var w = Math.max(300, Math.round(width || 600)), h = 240, l = 48, r = 24, t = 12, b = 30;
    var n = Math.max(hours.length, 1);
    var root = svg("svg", {viewBox: "0 0 " + w + " " + h, role: "img", "aria-labelledby": "chart-title chart-desc",
                           "class": "chart-svg"});
    root.appendChild(svg("title", {id: "chart-title"}, title));
    var last = hours.length ? hours[hours.length - 1] : null;
    root.appendChild(svg("desc", {id: "chart-desc"}, values.length ? (unitText + ": min " +
      Math.min.apply(null, values).toFixed(1) + ", max " + Math.max.apply(null, values).toFixed(1) +
      (last && last.value !== null ? ", " + W.hour.toLowerCase() + " " + hourLabel(last) + ": " +
        last.value.toFixed(1) : "")) : W.no_hours));
    function xOf(i) { return l + (w - l - r) * (n === 1 ? 0.5 : i / (n - 1)); }
    function yOf(v) { return t + (h - t - b) * (1 - v / top); }
    for (var k = 0; k <= 4; k++) {
      var v = top * k / 4, y = yOf(v);
      root.appendChild(svg("line", {x1: l, x2: w - r, y1: y, y2: y, "class": "grid"}));
      root.appendChild(svg("text", {x: l - 6, y: y + 4, "text-anchor": "end", "class": "axis"},
                           String(Math.round(v * 10) / 10)));
    }
    var path = "", pen = false; // a gap (an hour with no value) lifts the pen
    hours.forEach(function (hour, i) {
      if (i % 6 === 5 || i === hours.length - 1) {
        root.appendChild(svg("text", {x: xOf(i), y: h - 10, "text-anchor": "middle", "class": "axis"},
                             hourLabel(hour)));
      }
      if (hour.value === null) { pen = false; return; }
      path += (pen ? "L" : "M") + xOf(i).toFixed(1) + "," + yOf(hour.value).toFixed(1) + " ";
      pen = true;
    });
    if (path) root.appendChild(svg("path", {d: path.trim(), "class": "line"}));
    hours.forEach(function (hour, i) {
      if (hour.value === null) return;
      var valid = hour.validity && hour.validity.code > 0;
      root.appendChild(svg("circle", {cx: xOf(i), cy: yOf(hour.value), r: 4,
                                      "class": valid ? "point" : "point not-valid"}));
    });
    figure.appendChild(root);
    figure.appendChild(el("figcaption", {}, title + " (" + unitText + ")"));
    // the same values as a table: the chart's text alternative
    var details = el("details"), table = el("table");
    details.appendChild(el("summary", {}, W.table + " (" + hours.length + ")"));
    var head = table.appendChild(el("thead")).appendChild(el("tr"));
    [W.hour, W.value + " (" + unitText + ")", W.valid, W.validated].forEach(function (c) {
      head.appendChild(el("th", {scope: "col"}, c));
    });
    var body = table.appendChild(el("tbody"));
    hours.forEach(function (hour) {
      var row = body.appendChild(el("tr"));
      row.appendChild(el("td", {}, hour.period.datetimeTo.local.slice(0, 16).replace("T", " ")));
      row.appendChild(el("td", {}, hour.value === null ? "–" : hour.value.toFixed(1)));
      row.appendChild(el("td", {}, hour.validity && hour.validity.code > 0 ? W.valid : W.not_valid));
      row.appendChild(el("td", {}, verification(hour)));
    });
    details.appendChild(table);
    figure.appendChild(details);
    return figure;
  }

  function drawDetail(focus) {
    var loc = state.locations.filter(function (l) { return l.id === state.selected; })[0];
    var section = document.getElementById("detail"), bodyBox = document.getElementById("detail-body");
    if (!loc) return;
    document.getElementById("detail-heading").textContent = loc.name;
    document.getElementById("detail-hint").textContent = W.last24;
    bodyBox.textContent = "";
    var value = current(loc), cat = category(value), facts = el("dl", {"class": "facts-list"});
    function fact(term, desc) {
      facts.appendChild(el("dt", {}, term));
      var d = facts.appendChild(el("dd"));
      if (typeof desc === "string") d.textContent = desc; else d.appendChild(desc);
    }
    fact(W.category, badge(cat));
    fact(W.kind, kindText(loc));
    if (value) {
      fact(cfg.scales[state.index].name, indexText(value));
      if (cat.action) fact(W.action, cat.action);
      fact(W.dominant, value.parameter.displayName);
      fact(W.updated, value.datetime.local.slice(0, 16).replace("T", " "));
      fact(W.status, verification(value));
    }
    bodyBox.appendChild(facts);
    var parameter = value ? value.parameter : (loc.sensors[0] || {}).parameter;
    var holder = bodyBox.appendChild(el("div", {"class": "chart-holder"}, W.loading));
    if (focus) section.focus();
    if (!parameter) { holder.textContent = W.no_hours; return; }
    var chosen = state.selected;
    getAll(cfg.api + "/locations/" + encodeURIComponent(loc.id) + "/parameters/" +
           encodeURIComponent(parameter.id) + "/hours?limit=" + cfg.limit).then(function (hours) {
      if (state.selected !== chosen) return;
      holder.textContent = "";
      holder.appendChild(hours.length ? chart(loc, parameter, hours, holder.clientWidth) : el("p", {}, W.no_hours));
    }).catch(function () { holder.textContent = W.failed; });
  }

  function choose(event) {
    event.preventDefault();
    var id = event.currentTarget.getAttribute("data-location");
    state.selected = id;
    history.replaceState(null, "", "#loc-" + id);
    drawMap();
    drawList();
    drawDetail(true);
  }

  function drawAll() {
    drawMap();
    drawList();
    drawDetail(false);
    Array.prototype.forEach.call(document.querySelectorAll(".legend"), function (legend) {
      legend.hidden = legend.getAttribute("data-index") !== state.index;
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("input[name=index]"), function (radio) {
      radio.addEventListener("change", function () { state.index = radio.value; drawAll(); });
      if (radio.checked) state.index = radio.value;
    });
    window.addEventListener("hashchange", function () {
      var wanted = location.hash.slice(5);
      if (location.hash.indexOf("#loc-") === 0 && wanted !== state.selected &&
          state.locations.some(function (l) { return l.id === wanted; })) {
        state.selected = wanted;
        drawMap();
        drawList();
        drawDetail(true);
      }
    });
    Promise.all([getAll(cfg.api + "/locations?limit=" + cfg.limit),
                 getAll(cfg.api + "/indices/latest?limit=" + cfg.limit)])
      .then(function (got) {
        state.locations = got[0].filter(function (l) { return l.lifecycle !== "retired"; });
        got[1].forEach(function (v) {
          if (state.indices[v.index]) state.indices[v.index][v.locationsId] = v;
        });
        var wanted = location.hash.indexOf("#loc-") === 0 ? location.hash.slice(5) : null;
        if (wanted && state.locations.some(function (l) { return l.id === wanted; })) state.selected = wanted;
        drawAll();
        document.body.setAttribute("data-ready", "true");
      })
      .catch(function () {
        document.getElementById("map").textContent = "";
        document.getElementById("map").appendChild(el("p", {"class": "status", role: "alert"}, W.failed));
        document.body.setAttribute("data-ready", "failed");
      });
  }

  start();
}());
