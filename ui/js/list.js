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

function matches(order, filter, query) {
  if (filter !== "all" && groupOf(order) !== filter && !(filter !== "unseen" && order.group === filter)) {
    return false;
  }
  if (!query) return true;
  const hay = [order.patient_name || "", order.title || "", (order.test_names || []).join(" "), order.lab_name || ""]
    .join(" ")
    .toLowerCase();
  return hay.includes(query.toLowerCase());
}

function row(order, highlighted, onOpen) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
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
  li.append(b);
  return li;
}

// A group shows its most recent rows first and the rest on request: a clinic's
// history can hold thousands of orders, and every row costs the page memory.
const ROWS_PER_GROUP = 100;
const expanded = new Set();

export function render(container, orders, opts) {
  const { filter, query, highlighted, onOpen, signedIn } = opts;
  container.replaceChildren();
  container.setAttribute("aria-busy", "false");
  const shown = orders.filter((o) => matches(o, filter, query));
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
    for (const o of visible) ul.append(row(o, highlighted, onOpen));
    section.append(h, ul);
    if (visible.length < items.length) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "show-more";
      more.textContent = `Show ${items.length - visible.length} more`;
      more.addEventListener("click", () => {
        expanded.add(key);
        render(container, orders, opts);
        const next = container.querySelector(`section[data-group="${key}"] li:nth-child(${visible.length + 1}) button`);
        if (next) next.focus();
      });
      section.append(more);
    }
    container.append(section);
  }
}

// Relative times age without new data.
export function refreshTimes(container) {
  for (const el of container.querySelectorAll(".when[data-changed-at]")) {
    el.textContent = "changed " + ago(el.dataset.changedAt);
  }
}
