// The status list: grouped by what needs attention, filtered and searched
// on the page (one clinic's orders: small enough to hold, not always to draw).
import { ago } from "./time.js";

const GROUPS = [
  ["unseen", "New results"],
  ["results_ready", "Results ready"],
  ["partial_results", "Partial results"],
  ["results_amended", "Amended"],
  ["in_progress", "In progress"],
  ["other", "Other"],
];

export function groupOf(order) {
  return order.unseen ? "unseen" : order.group;
}

function matches(order, filter, query, since) {
  if (filter === "since") {
    if (!since || !order.last_result_at || order.last_result_at < since) return false;
  } else if (filter !== "all" && groupOf(order) !== filter && !(filter !== "unseen" && order.group === filter)) {
    return false;
  }
  if (!query) return true;
  const hay = [order.patient_name || "", order.title || "", (order.test_names || []).join(" "), order.lab_name || ""]
    .join(" ")
    .toLowerCase();
  return hay.includes(query.toLowerCase());
}

function row(order, highlighted, onOpen, onReviewed) {
  const li = document.createElement("li");
  li.className = "row-item";
  const b = document.createElement("button");
  b.type = "button";
  b.tabIndex = -1;
  b.className = "order" + (order.unseen ? " unseen" : "") + (order.id === highlighted ? " highlighted" : "");
  b.dataset.orderId = order.id;
  b.dataset.state = order.state;
  const tests = order.test_names && order.test_names.length ? order.test_names.join(", ") : "";
  const what = [order.title, tests && tests !== order.title ? tests : "", order.lab_name].filter(Boolean).join(" · ");
  const parts = [
    ["dot", ""],
    ["patient", order.patient_name || "Unnamed patient"],
    ["tests", what],
    ["badge", order.state_label === "Other" ? order.state : order.state_label],
    ["when", "changed " + ago(order.changed_at)],
  ];
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    if (cls === "dot") span.setAttribute("aria-hidden", "true");
    if (cls === "badge") span.dataset.group = order.group;
    if (cls === "when") span.dataset.changedAt = order.changed_at;
    b.append(span);
  }
  b.setAttribute(
    "aria-label",
    `${order.unseen ? "New: " : ""}${order.patient_name || "Unnamed patient"}, ${what}, ${order.state_label}. Open results.`,
  );
  b.addEventListener("click", () => onOpen(order));
  b.addEventListener("focus", () => setCurrent(b));
  li.append(b);
  if (order.unseen) {
    // Reviewed without opening the browser (also the `r` key on a row).
    const r = document.createElement("button");
    r.type = "button";
    r.tabIndex = -1;
    r.className = "reviewed";
    r.dataset.reviewFor = order.id;
    r.textContent = "Mark reviewed";
    r.setAttribute("aria-label", `Mark reviewed: ${order.patient_name || "Unnamed patient"}`);
    r.addEventListener("click", () => onReviewed(order));
    li.append(r);
  }
  return li;
}

// One Tab stop for the whole list (roving tabindex): the current row.
function setCurrent(button) {
  const list = button.closest(".list");
  if (!list) return;
  for (const b of list.querySelectorAll("button.order[tabindex='0']")) b.tabIndex = -1;
  button.tabIndex = 0;
}

/** Move the focus to the next/previous row (`1`, `-1`, "first", "last"). */
export function moveFocus(container, step) {
  const rows = [...container.querySelectorAll("button.order")];
  if (rows.length === 0) return;
  const at = rows.indexOf(document.activeElement);
  let next;
  if (step === "first") next = 0;
  else if (step === "last") next = rows.length - 1;
  else next = at < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, at + step));
  rows[next].focus();
}

/** The order of the focused row, if a row has the focus. */
export function focusedOrderId(container) {
  const el = document.activeElement;
  return el && container.contains(el) && el.classList.contains("order") ? el.dataset.orderId : null;
}

// A group shows its most recent rows first and the rest on request: a clinic's
// history can hold thousands of orders, and every row costs the page memory.
const ROWS_PER_GROUP = 100;
const expanded = new Set();

export function render(container, orders, opts) {
  const { filter, query, since, highlighted, onOpen, onReviewed, signedIn } = opts;
  const focused = focusedOrderId(container);
  container.replaceChildren();
  container.setAttribute("aria-busy", "false");
  const shown = orders.filter((o) => matches(o, filter, query, since));
  if (shown.length === 0) {
    const p = document.createElement("p");
    p.className = "empty muted";
    p.textContent = !signedIn
      ? "Sign in to see your clinic's lab orders."
      : orders.length === 0
        ? "No lab orders yet. New orders appear here as soon as Fullscript lists them."
        : "No lab orders match.";
    container.append(p);
    return;
  }
  for (const [key, title] of GROUPS) {
    const items = shown.filter((o) => groupOf(o) === key);
    if (items.length === 0) continue;
    const section = document.createElement("section");
    section.className = "group";
    section.dataset.group = key;
    const h = document.createElement("h2");
    h.textContent = `${title} (${items.length})`;
    const ul = document.createElement("ul");
    const all = expanded.has(key) || items.findIndex((o) => o.id === highlighted) >= ROWS_PER_GROUP;
    const visible = all ? items : items.slice(0, ROWS_PER_GROUP);
    for (const o of visible) ul.append(row(o, highlighted, onOpen, onReviewed));
    section.append(h, ul);
    if (visible.length < items.length) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "show-more";
      more.textContent = `Show ${items.length - visible.length} more`;
      more.addEventListener("click", () => {
        expanded.add(key);
        render(container, orders, opts);
        const next = container.querySelector(`section[data-group="${key}"] li:nth-child(${visible.length + 1}) button.order`);
        if (next) next.focus();
      });
      section.append(more);
    }
    container.append(section);
  }
  // The Tab stop: the row that had the focus, else the highlighted one, else the first.
  const pick =
    (focused && container.querySelector(`button.order[data-order-id="${CSS.escape(focused)}"]`)) ||
    (highlighted && container.querySelector(`button.order[data-order-id="${CSS.escape(highlighted)}"]`)) ||
    container.querySelector("button.order");
  if (pick) {
    pick.tabIndex = 0;
    if (focused) pick.focus();
  }
}

// Relative times age without new data.
export function refreshTimes(container) {
  for (const el of container.querySelectorAll(".when[data-changed-at]")) {
    el.textContent = "changed " + ago(el.dataset.changedAt);
  }
}
