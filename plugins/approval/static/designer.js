// The flow designer: edits a flow definition (form fields and steps) held in memory, renders it as
// ordinary form controls and posts it as one JSON field. Every control carries data-path (the path
// the server's validation uses, e.g. "nodes[1].branches[0].rule.all[0].op") so an error the server
// sends back is shown next to the control it is about. No build step, no inline script (CSP).
(function () {
  "use strict";

  var SOURCES = ["manager", "dept_head", "role", "users", "form_field", "initiator_choice"];
  var MODES = ["sequential", "all", "any", "ratio"];
  var EMPTY = ["skip", "approve", "admin"];
  var ACTIONS = ["remind", "escalate", "approve", "reject"];
  var REJECTS = ["end", "initiator", "node"];
  var OPS = ["=", "!=", ">", ">=", "<", "<=", "between", "in", "not_in", "contains"];

  var root, state, errors, choices, L, fieldTypes, counter = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === undefined || value === null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else if (name === "value") node.value = value;
      else if (name === "checked") node.checked = !!value;
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function uid() { counter += 1; return "d" + counter; }

  function rerender() { renderFields(); renderNodes(); }

  // A labelled control bound to obj[prop]; kind: text, number, select, checkbox, textarea, multiselect.
  function control(label, obj, prop, path, kind, options, extra) {
    var id = uid(), input, wrap;
    extra = extra || {};
    var current = obj[prop];
    if (kind === "select" || kind === "multiselect") {
      input = el("select", {id: id, class: "form-select form-select-sm", "data-path": path, multiple: kind === "multiselect"});
      if (kind === "select" && extra.blank) input.appendChild(el("option", {value: "", text: "—"}));
      options.forEach(function (o) {
        var value = typeof o === "object" ? String(o.value) : o;
        var selected = kind === "multiselect" ? (current || []).map(String).indexOf(value) >= 0 : String(current) === value;
        input.appendChild(el("option", {value: value, text: typeof o === "object" ? o.text : (L[extra.prefix + o] || o), selected: selected}));
      });
      input.addEventListener("change", function () {
        if (kind === "multiselect") {
          obj[prop] = Array.prototype.filter.call(input.options, function (o) { return o.selected; })
            .map(function (o) { return extra.numbers ? Number(o.value) : o.value; });
        } else {
          obj[prop] = extra.numbers && input.value !== "" ? Number(input.value) : input.value;
        }
        if (extra.rerender) rerender();
      });
    } else if (kind === "checkbox") {
      input = el("input", {type: "checkbox", id: id, class: "form-check-input", "data-path": path, checked: current});
      input.addEventListener("change", function () { obj[prop] = input.checked; if (extra.rerender) rerender(); });
      return el("div", {class: "form-check " + (extra.col || "col-12")}, [input, el("label", {class: "form-check-label", for: id, text: label})]);
    } else if (kind === "textarea") {
      input = el("textarea", {id: id, class: "form-control form-control-sm", rows: 3, "data-path": path,
                              value: extra.lines ? (current || []).join("\n") : current || ""});
      input.addEventListener("input", function () {
        obj[prop] = extra.lines ? input.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean) : input.value;
      });
    } else {
      input = el("input", {id: id, class: "form-control form-control-sm", "data-path": path,
                           type: kind === "number" ? "number" : "text", step: extra.step, min: extra.min,
                           value: current === undefined || current === null ? "" : current});
      input.addEventListener("input", function () {
        obj[prop] = kind === "number" ? (input.value === "" ? undefined : Number(input.value)) : input.value;
        if (extra.live) extra.live();
      });
    }
    wrap = el("div", {class: extra.col || "col-md-3"}, [el("label", {class: "form-label small mb-0", for: id, text: label}), input]);
    return wrap;
  }

  function toolbar(list, index, path) {
    function move(delta) {
      var target = index + delta;
      if (target < 0 || target >= list.length) return;
      var item = list.splice(index, 1)[0];
      list.splice(target, 0, item);
      rerender();
    }
    return el("div", {class: "btn-group btn-group-sm ms-auto"}, [
      el("button", {type: "button", class: "btn btn-outline-secondary", text: "↑", title: L.up, "aria-label": L.up + " " + path, onclick: function () { move(-1); }}),
      el("button", {type: "button", class: "btn btn-outline-secondary", text: "↓", title: L.down, "aria-label": L.down + " " + path, onclick: function () { move(1); }}),
      el("button", {type: "button", class: "btn btn-outline-danger", text: "×", title: L.remove, "aria-label": L.remove + " " + path,
                    onclick: function () { list.splice(index, 1); rerender(); }})
    ]);
  }

  // Form fields ----------------------------------------------------------------------------------

  function fieldEditor(list, index, path, nested) {
    var field = list[index];
    var types = fieldTypes.filter(function (t) { return !nested || t !== "table"; });
    var title = (field.label || L.field) + (field.key ? " · " + field.key : "");
    var body = el("div", {class: "row g-2"}, [
      control(L.label, field, "label", path + ".label", "text"),
      control(L.label_en, field, "label_en", path + ".label_en", "text"),
      control(L.key, field, "key", path + ".key", "text"),
      control(L.type, field, "type", path + ".type", "select", types, {prefix: "type_", rerender: true}),
      control(L.required, field, "required", path + ".required", "checkbox", null, {col: "col-md-3 pt-4"})
    ]);
    if (field.type === "select") body.appendChild(control(L.options, field, "options", path + ".options", "textarea", null, {lines: true, col: "col-md-6"}));
    if (field.type === "table") {
      field.columns = field.columns || [];
      var columns = el("div", {class: "col-12 ps-4 border-start"}, [el("div", {class: "small fw-semibold", text: L.columns, "data-path": path + ".columns"})]);
      field.columns.forEach(function (_c, i) { columns.appendChild(fieldEditor(field.columns, i, path + ".columns[" + i + "]", true)); });
      columns.appendChild(el("button", {type: "button", class: "btn btn-sm btn-outline-secondary", text: L.add_column,
        onclick: function () { field.columns.push({key: "", label: "", type: "text"}); rerender(); }}));
      body.appendChild(columns);
    }
    return el("fieldset", {class: "card card-body mb-2 py-2", "data-path": path, "aria-label": title}, [
      el("div", {class: "d-flex align-items-center mb-1"}, [el("legend", {class: "h6 mb-0 fs-6", text: title}), toolbar(list, index, path)]),
      body
    ]);
  }

  function renderFields() {
    var box = document.getElementById("designer-fields");
    box.textContent = "";
    state.form.forEach(function (_f, i) { box.appendChild(fieldEditor(state.form, i, "form[" + i + "]", false)); });
    markErrors(box);
  }

  // Steps ----------------------------------------------------------------------------------------

  function formKeys(filter) {
    return state.form.filter(function (f) { return f.key && (!filter || filter(f)); })
      .map(function (f) { return {value: f.key, text: (f.label || f.key) + " (" + f.key + ")"}; });
  }

  function sourceEditor(label, holder, prop, path) {
    var spec = holder[prop] = holder[prop] || {source: "manager", level: 1};
    var row = el("div", {class: "row g-2 col-12"}, [
      control(label, spec, "source", path + ".source", "select", SOURCES, {prefix: "source_", rerender: true})
    ]);
    if (spec.source === "users") {
      spec.users = spec.users || [];
      row.appendChild(control(L.people, spec, "users", path + ".users", "multiselect",
        choices.users.map(function (u) { return {value: u.id, text: u.name}; }), {numbers: true, col: "col-md-4"}));
    } else if (spec.source === "role") {
      row.appendChild(control(L.role, spec, "role", path + ".role", "select",
        choices.roles.map(function (r) { return {value: r.key, text: r.name + " (" + r.key + ")"}; }), {blank: true}));
    } else if (spec.source === "manager" || spec.source === "dept_head") {
      if (spec.level === undefined) spec.level = 1;
      row.appendChild(control(L.level, spec, "level", path + ".level", "number", null, {min: 1, col: "col-md-2"}));
    } else if (spec.source === "form_field") {
      row.appendChild(control(L.form_field, spec, "field", path + ".field", "select",
        formKeys(function (f) { return f.type === "user"; }), {blank: true}));
    }
    ["users", "role", "level", "field"].forEach(function (k) {
      var keep = {users: "users", role: "role", level: "manager dept_head", field: "form_field"}[k];
      if (keep.split(" ").indexOf(spec.source) < 0) delete spec[k];
    });
    return row;
  }

  function ccEditor(node, path) {
    node.cc = node.cc || [];
    var box = el("div", {class: "col-12", "data-path": path + ".cc"}, [el("div", {class: "small fw-semibold", text: L.cc_list})]);
    node.cc.forEach(function (_s, i) {
      var line = el("div", {class: "d-flex align-items-end gap-2"}, [sourceEditor(L.cc_list + " " + (i + 1), node.cc, i, path + ".cc[" + i + "]"),
        el("button", {type: "button", class: "btn btn-sm btn-outline-danger", text: "×", "aria-label": L.remove,
                      onclick: function () { node.cc.splice(i, 1); rerender(); }})]);
      box.appendChild(line);
    });
    box.appendChild(el("button", {type: "button", class: "btn btn-sm btn-outline-secondary mt-1", text: L.add_cc_source,
      onclick: function () { node.cc.push({source: "role", role: ""}); rerender(); }}));
    return box;
  }

  function approvalBody(node, path) {
    var body = el("div", {class: "row g-2"});
    body.appendChild(sourceEditor(L.approvers, node, "approvers", path + ".approvers"));
    body.appendChild(control(L.mode, node, "mode", path + ".mode", "select", MODES, {prefix: "mode_", rerender: true}));
    if (node.mode === "ratio") body.appendChild(control(L.ratio, node, "ratio", path + ".ratio", "number", null, {step: "0.01", col: "col-md-2"}));
    else delete node.ratio;
    body.appendChild(control(L.empty, node, "empty", path + ".empty", "select", EMPTY, {prefix: "empty_"}));
    if (node.dedupe === undefined) node.dedupe = true;
    body.appendChild(control(L.dedupe, node, "dedupe", path + ".dedupe", "checkbox", null, {col: "col-md-3 pt-4"}));
    var limit = node.time_limit || {};
    var hours = {hours: limit.hours};
    body.appendChild(control(L.time_limit, hours, "hours", path + ".time_limit.hours", "number", null, {min: 1, live: function () {
      if (hours.hours === undefined) { delete node.time_limit; } else { node.time_limit = node.time_limit || {action: "remind"}; node.time_limit.hours = hours.hours; }
    }}));
    if (node.time_limit) {
      body.appendChild(control(L.time_action, node.time_limit, "action", path + ".time_limit.action", "select", ACTIONS, {prefix: "action_", rerender: true}));
      if (node.time_limit.action === "escalate") body.appendChild(sourceEditor(L.escalate_to, node.time_limit, "escalate_to", path + ".time_limit.escalate_to"));
      else delete node.time_limit.escalate_to;
    }
    node.reject = node.reject || {policy: "end"};
    body.appendChild(control(L.reject, node.reject, "policy", path + ".reject.policy", "select", REJECTS, {prefix: "reject_", rerender: true}));
    if (node.reject.policy === "node") body.appendChild(control(L.reject_node_key, node.reject, "node", "nodes." + node.key + ".reject.node", "text"));
    else delete node.reject.node;
    body.appendChild(ccEditor(node, path));
    return body;
  }

  function ruleRows(branch) {
    // The editor's own shape: {all|any: [{field, op, value}]}; anything else is edited as JSON.
    var rule = branch.rule || {all: []};
    if (rule.field) rule = branch.rule = {all: [rule]};
    var join = rule.all ? "all" : rule.any ? "any" : null;
    if (!join) return null;
    var simple = rule[join].every(function (r) { return r && typeof r === "object" && "field" in r; });
    return simple ? {join: join, rows: rule[join]} : null;
  }

  function valueText(value) {
    if (Array.isArray(value)) return value.join(", ");
    return value === undefined || value === null ? "" : String(value);
  }

  function parseValue(op, text) {
    function one(s) { s = s.trim(); return /^-?\d{1,15}$/.test(s) ? Number(s) : s; }
    if (op === "between" || op === "in" || op === "not_in") return text.split(/[,，]/).map(one).filter(function (v) { return v !== ""; });
    return one(text);
  }

  function ruleEditor(branch, path) {
    var box = el("div", {class: "col-12", "data-path": path + ".rule"}, [el("div", {class: "small fw-semibold", text: L.conditions})]);
    var parsed = ruleRows(branch);
    if (!parsed) {
      var id = uid();
      var area = el("textarea", {id: id, class: "form-control form-control-sm font-monospace", rows: 3, "data-path": path + ".rule",
                                 value: JSON.stringify(branch.rule)});
      area.addEventListener("input", function () {
        try { branch.rule = JSON.parse(area.value); area.classList.remove("is-invalid"); }
        catch (e) { area.classList.add("is-invalid"); }
      });
      box.appendChild(el("label", {class: "form-label small", for: id, text: L.rule_json}));
      box.appendChild(area);
      return box;
    }
    var holder = {join: parsed.join};
    box.appendChild(el("div", {class: "row g-2"}, [control(L.conditions, holder, "join", path + ".rule", "select",
      [{value: "all", text: L.match_all}, {value: "any", text: L.match_any}], {col: "col-md-4"})]));
    box.lastChild.querySelector("select").addEventListener("change", function () {
      var rows = branch.rule[parsed.join];
      branch.rule = {}; branch.rule[holder.join] = rows; rerender();
    });
    var fieldsOffered = formKeys().concat([
      {value: "initiator.department_id", text: L.initiator_department},
      {value: "department.code", text: L.department_code},
      {value: "initiator.roles", text: L.initiator_roles}]);
    parsed.rows.forEach(function (row, i) {
      var rpath = path + ".rule." + parsed.join + "[" + i + "]";
      var text = {value: valueText(row.value)};
      var valueCtl = control(L.rule_value, text, "value", rpath + ".value", "text", null, {live: function () { row.value = parseValue(row.op, text.value); }});
      var opCtl = control(L.rule_op, row, "op", rpath + ".op", "select", OPS.map(function (o) { return {value: o, text: L["op_" + o] || o}; }), {col: "col-md-2"});
      opCtl.querySelector("select").addEventListener("change", function () { row.value = parseValue(row.op, text.value); });
      box.appendChild(el("div", {class: "row g-2 align-items-end"}, [
        control(L.rule_field, row, "field", rpath + ".field", "select", fieldsOffered, {blank: true, col: "col-md-4"}),
        opCtl, valueCtl,
        el("div", {class: "col-auto"}, [el("button", {type: "button", class: "btn btn-sm btn-outline-danger", text: "×", "aria-label": L.remove,
          onclick: function () { parsed.rows.splice(i, 1); rerender(); }})])
      ]));
    });
    box.appendChild(el("button", {type: "button", class: "btn btn-sm btn-outline-secondary mt-1", text: L.add_rule,
      onclick: function () { parsed.rows.push({field: formKeys()[0] ? formKeys()[0].value : "", op: ">", value: 0}); rerender(); }}));
    return box;
  }

  function conditionBody(node, path) {
    node.branches = node.branches || [];
    var body = el("div", {"data-path": path + ".branches"});
    node.branches.forEach(function (branch, b) {
      var bpath = path + ".branches[" + b + "]";
      var inner = el("div", {class: "row g-2"}, [
        control(L.name, branch, "name", bpath + ".name", "text"),
        branch.default ? null : control(L.priority, branch, "priority", bpath + ".priority", "number", null, {col: "col-md-2"}),
        control(L["default"], branch, "default", bpath + ".default", "checkbox", null, {col: "col-md-4 pt-4", rerender: true})
      ]);
      if (!branch.default) { if (branch.priority === undefined) branch.priority = b + 1; inner.appendChild(ruleEditor(branch, bpath)); }
      else { delete branch.rule; delete branch.priority; }
      branch.nodes = branch.nodes || [];
      var steps = el("div", {class: "col-12 ps-3 border-start"}, [el("div", {class: "small fw-semibold", text: L.branch_nodes})]);
      steps.appendChild(nodeList(branch.nodes, bpath + ".nodes"));
      inner.appendChild(steps);
      body.appendChild(el("fieldset", {class: "card card-body bg-light mb-2 py-2", "data-path": bpath}, [
        el("div", {class: "d-flex align-items-center"}, [el("legend", {class: "h6 fs-6 mb-0", text: L.branch + " " + (b + 1) + (branch.name ? " · " + branch.name : "")}),
          toolbar(node.branches, b, bpath)]), inner]));
    });
    body.appendChild(el("button", {type: "button", class: "btn btn-sm btn-outline-secondary", text: L.add_branch,
      onclick: function () { node.branches.push({name: "", priority: node.branches.length + 1, rule: {all: []}, nodes: []}); rerender(); }}));
    return body;
  }

  function nodeEditor(list, index, path) {
    var node = list[index];
    var title = L[node.type] + (node.name ? " · " + node.name : "") + (node.key ? " (" + node.key + ")" : "");
    var head = el("div", {class: "row g-2"}, [
      control(L.name, node, "name", path + ".name", "text"),
      control(L.key, node, "key", path + ".key", "text")
    ]);
    var body = node.type === "approval" ? approvalBody(node, path)
      : node.type === "cc" ? el("div", {class: "row g-2"}, [ccEditor(node, path)]) : conditionBody(node, path);
    return el("fieldset", {class: "card card-body mb-2 py-2", "data-path": path, "aria-label": title}, [
      el("div", {class: "d-flex align-items-center mb-1"}, [el("legend", {class: "h6 fs-6 mb-0", text: title}), toolbar(list, index, path)]),
      head, body
    ]);
  }

  function freshKey(prefix) {
    var used = {};
    (function walk(nodes) {
      nodes.forEach(function (n) { used[n.key] = true; (n.branches || []).forEach(function (b) { walk(b.nodes || []); }); });
    })(state.nodes);
    for (var i = 1; ; i++) { if (!used[prefix + i]) return prefix + i; }
  }

  function nodeList(list, path) {
    var box = el("div", {"data-path": path});
    list.forEach(function (_n, i) { box.appendChild(nodeEditor(list, i, path + "[" + i + "]")); });
    var add = function (type) {
      return el("button", {type: "button", class: "btn btn-sm btn-outline-primary", text: L["add_" + type], onclick: function () {
        var key = freshKey(type === "approval" ? "step" : type);
        if (type === "approval") list.push({key: key, type: "approval", name: "", approvers: {source: "manager", level: 1}, mode: "sequential", empty: "skip"});
        else if (type === "cc") list.push({key: key, type: "cc", name: "", cc: [{source: "role", role: ""}]});
        else list.push({key: key, type: "condition", name: "", branches: [
          {name: "", priority: 1, rule: {all: [{field: formKeys()[0] ? formKeys()[0].value : "", op: ">", value: 0}]}, nodes: []},
          {name: "", "default": true, nodes: []}]});
        rerender();
      }});
    };
    box.appendChild(el("div", {class: "d-flex gap-2 mb-2"}, [add("approval"), add("cc"), add("condition")]));
    return box;
  }

  function renderNodes() {
    var box = document.getElementById("designer-nodes");
    box.textContent = "";
    box.appendChild(nodeList(state.nodes, "nodes"));
    markErrors(box);
  }

  // Errors: each server error path goes to the control with the longest matching data-path.
  function markErrors(scope) {
    Object.keys(errors).forEach(function (path) {
      var best = null, bestLength = -1;
      root.querySelectorAll("[data-path]").forEach(function (node) {
        var p = node.getAttribute("data-path");
        if ((path === p || path.indexOf(p + ".") === 0 || path.indexOf(p + "[") === 0) && p.length > bestLength) { best = node; bestLength = p.length; }
      });
      if (!best || !scope.contains(best)) return;
      var messages = errors[path];
      var text = (Array.isArray(messages) ? messages : [messages]).map(function (m) { return typeof m === "string" ? m : JSON.stringify(m); }).join(" ");
      if (/^(INPUT|SELECT|TEXTAREA)$/.test(best.tagName)) best.classList.add("is-invalid");
      var holder = /^(INPUT|SELECT|TEXTAREA)$/.test(best.tagName) ? best.parentNode : best;
      holder.appendChild(el("div", {class: "invalid-feedback d-block", text: text}));
    });
  }

  function init() {
    root = document.getElementById("designer");
    if (!root) return;
    state = JSON.parse(root.getAttribute("data-definition"));
    errors = JSON.parse(root.getAttribute("data-errors") || "{}");
    choices = JSON.parse(root.getAttribute("data-choices"));
    L = JSON.parse(root.getAttribute("data-labels"));
    fieldTypes = JSON.parse(root.getAttribute("data-field-types"));
    state.form = state.form || [];
    state.nodes = state.nodes || [];
    state.settings = state.settings || {};
    var basics = [["flow-key", "key"], ["flow-name", "name"], ["flow-description", "description"]];
    basics.forEach(function (pair) {
      var input = document.getElementById(pair[0]);
      input.value = state[pair[1]] || "";
      input.addEventListener("input", function () { state[pair[1]] = input.value; });
    });
    var withdraw = document.getElementById("flow-withdraw");
    withdraw.checked = !!state.settings.allow_withdraw;
    withdraw.addEventListener("change", function () { state.settings.allow_withdraw = withdraw.checked; });
    document.getElementById("add-field").addEventListener("click", function () {
      var n = state.form.length + 1;
      while (state.form.some(function (f) { return f.key === "field" + n; })) n++;
      state.form.push({key: "field" + n, label: "", type: "text", required: false});
      rerender();
    });
    document.getElementById("designer-form").addEventListener("submit", function () {
      var out = {key: state.key || "", name: state.name || "", description: state.description || "",
                 form: state.form, nodes: state.nodes, settings: state.settings};
      if (state.subject_type) out.subject_type = state.subject_type;
      out.form.forEach(function clean(f) {
        if (f.type !== "select") delete f.options;
        if (f.type !== "table") delete f.columns; else f.columns.forEach(clean);
        if (!f.label_en) delete f.label_en;
      });
      document.getElementById("definition").value = JSON.stringify(out);
    });
    basics.forEach(function (pair) { markErrors(document.getElementById(pair[0]).parentNode); });
    rerender();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
