// The status list: grouped by what needs attention. The agent groups,
// filters and searches; the page draws the rows it was sent (the newest
// of each group) and each group's count.
import { ago } from "./time.js";

const GROUPS = {
  unseen: "New results",
  results_ready: "Results ready",
  partial_results: "Partial results",
  results_amended: "Amended",
  in_progress: "In progress",
  other: "Other",
};

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

// A group shows its most recent rows first and the rest on request
// (`onMore(group, total)`): a clinic's history can hold thousands of
// orders, and every row costs the page memory.
export function render(container, page, opts) {
  const { highlighted, onOpen, onReviewed, onMore, signedIn } = opts;
  const focused = focusedOrderId(container);
  container.replaceChildren();
  container.setAttribute("aria-busy", "false");
  const groups = (page && page.groups) || [];
  if (groups.length === 0) {
    const p = document.createElement("p");
    p.className = "empty muted";
    p.textContent = !signedIn
      ? "Sign in to see your clinic's lab orders."
      : !page || page.orders_total === 0
        ? "No lab orders yet. New orders appear here as soon as Fullscript lists them."
        : "No lab orders match.";
    container.append(p);
    return;
  }
  for (const g of groups) {
    const section = document.createElement("section");
    section.className = "group";
    section.dataset.group = g.key;
    const h = document.createElement("h2");
    h.textContent = `${GROUPS[g.key] || g.key} (${g.total})`;
    const ul = document.createElement("ul");
    for (const o of g.rows) ul.append(row(o, highlighted, onOpen, onReviewed));
    section.append(h, ul);
    if (g.rows.length < g.total) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "show-more";
      more.textContent = `Show ${g.total - g.rows.length} more`;
      const shown = g.rows.length;
      more.addEventListener("click", async () => {
        await onMore(g.key, g.total);
        const next = container.querySelector(`section[data-group="${g.key}"] li:nth-child(${shown + 1}) button.order`);
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

/** The rows a page carries, by order id. */
export function rowsById(page) {
  const map = new Map();
  for (const g of (page && page.groups) || []) for (const o of g.rows) map.set(o.id, o);
  return map;
}

// Relative times age without new data.
export function refreshTimes(container) {
  for (const el of container.querySelectorAll(".when[data-changed-at]")) {
    el.textContent = "changed " + ago(el.dataset.changedAt);
  }
}
