// Wires the page to the app: renders the pushed state and list, sends the
// user's actions as commands.
import { call, callWindow, on } from "./api.js";
import { Command, Connection, Event, EventsFeed, WindowCommand } from "./protocol.js";
import { render, refreshTimes, moveFocus, focusedOrderId, rowsById } from "./list.js";
import { ago, clock, dayTime } from "./time.js";

const $ = (id) => document.getElementById(id);

const view = {
  snapshot: null,
  // The rows the agent sent (grouped, filtered, searched) and each group's count.
  page: null,
  // Rows wanted per group, beyond the first 100 ("Show N more").
  rows: {},
  // Answers to list requests can arrive out of order: only the newest is drawn.
  listAsked: 0,
  filter: "all",
  query: "",
  highlighted: null,
  // "N results since …": rows whose newest result is after this.
  since: null,
  // What the screen reader was last told (announce changes only).
  announced: { connection: null, unseen: null, quiet: null },
  welcomeShown: false,
  // The background agent went away (this window restarts it): why, or null;
  // and once it is back, that it was restarted (kept until dismissed).
  agentGone: null,
  agentRestarted: false,
};

// What each connection state is called in the header (the states are the
// core's, from protocol.js; a state without a label shows as it is).
const CONNECTION = {
  [Connection.STARTING]: "Starting",
  [Connection.CHECKING]: "Checking…",
  [Connection.OK]: "Up to date",
  [Connection.RETRYING]: "Retrying",
  [Connection.OFFLINE]: "Offline",
  [Connection.RATE_LIMITED]: "Rate limited",
  [Connection.SIGNED_OUT]: "Signed out",
  [Connection.NEEDS_CONFIGURATION]: "Needs setup",
  [Connection.RESTARTING]: "Restarting",
};

const plural = (n, one, many) => (n === 1 ? one : many.replace("N", String(n)));

function banner(text, kind = "", action = null) {
  const div = document.createElement("div");
  div.className = "banner " + kind;
  div.textContent = text;
  if (action) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = action.id;
    b.textContent = action.label;
    b.addEventListener("click", action.run);
    div.append(" ", b);
  }
  return div;
}

async function installUpdate(ev) {
  const button = ev.target;
  button.disabled = true;
  button.textContent = "Installing…";
  try {
    const r = await callWindow(WindowCommand.INSTALL_UPDATE);
    if (r.kind === "up_to_date") $("banners").prepend(banner("No update is available after all."));
  } catch {
    // The snapshot that follows shows why (update_problem) and offers "Try again".
    button.disabled = false;
    button.textContent = "Try again";
  }
}

// The connection in words, with what the practitioner can do about it.
function connectionBanner(s) {
  if (!s.signed_in) return null;
  const reason = s.last_error ? ` (${s.last_error})` : "";
  const since = s.retrying_since ? ` since ${dayTime(s.retrying_since)}` : "";
  const retry = { id: "retry-now", label: "Retry now", run: checkNow };
  switch (s.connection) {
    case Connection.OFFLINE:
      return banner(`Offline${since}: Fullscript cannot be reached from this computer. New results will be found when the connection is back.`, "warn", retry);
    case Connection.RATE_LIMITED:
      return banner(`Fullscript asked the app to slow down${since}; it will check again shortly.`, "warn", retry);
    case Connection.RETRYING:
      return banner(`Checking for results is failing${since}${reason}. The app keeps trying.`, "warn", retry);
    default:
      return null;
  }
}

// Held alerts (paused, outside clinic hours) in words.
function quietBanner(s) {
  const q = s.quiet;
  if (!q) return null;
  const waiting = s.held_alerts > 0 ? ` ${plural(s.held_alerts, "1 result is", "N results are")} waiting.` : "";
  if (q.reason === "paused") {
    return banner(
      `Notifications are paused until ${dayTime(q.until)}. Results that arrive meanwhile are held and announced together when the pause ends.${waiting}`,
      "warn",
      { id: "resume-banner", label: "Resume", run: () => call(Command.RESUME_NOTIFICATIONS) },
    );
  }
  const until = q.until ? ` until ${dayTime(q.until)}` : "";
  return banner(`Outside clinic hours: results are held${until} and then announced together.${waiting}`);
}

function catchUpBanner(s) {
  const c = s.catch_up;
  if (!c) return null;
  const div = banner(`${plural(c.results, "1 result", "N results")} since ${dayTime(c.since)}.`, "", {
    id: "catch-up-show",
    label: "Show",
    run: () => {
      view.since = c.since;
      view.filter = "since";
      $("filter").value = "since";
      renderList();
    },
  });
  const close = document.createElement("button");
  close.type = "button";
  close.id = "catch-up-dismiss";
  close.textContent = "Dismiss";
  close.addEventListener("click", () => call(Command.DISMISS_CATCH_UP));
  div.append(" ", close);
  return div;
}

function renderBanners(s) {
  const list = [];
  if (view.agentGone) list.push(banner(view.agentGone, "bad"));
  else if (view.agentRestarted) {
    list.push(
      banner("The app's background part stopped unexpectedly and was started again; results are being checked as before.", "warn", {
        id: "agent-restarted-dismiss",
        label: "Dismiss",
        run: () => {
          view.agentRestarted = false;
          renderBanners(view.snapshot);
        },
      }),
    );
  }
  if (!s) {
    $("banners").replaceChildren(...list);
    return;
  }
  if (s.error) list.push(banner(s.error, "bad"));
  if (!s.signed_in && s.signed_out_cause && s.signed_out_cause.kind === "ended") {
    list.push(
      banner(`You were signed out: ${s.signed_out_reason}`, "bad", {
        id: "sign-in-again",
        label: "Sign in again",
        run: () => $("signin-form").requestSubmit(),
      }),
    );
  }
  const conn = connectionBanner(s);
  if (conn) list.push(conn);
  const quiet = quietBanner(s);
  if (quiet) list.push(quiet);
  const catchUp = s.signed_in ? catchUpBanner(s) : null;
  if (catchUp) list.push(catchUp);
  if (s.needs_configuration) {
    list.push(banner(`Fullscript refused this app's registration; your sign-in is kept. ${s.needs_configuration}`, "bad"));
  }
  if (s.signed_in && s.token_storage_fallback) {
    list.push(
      banner(
        "Your Fullscript sign-in is kept in a file only your user can read (the system keychain could not keep it)." +
          (s.token_storage_note ? ` (${s.token_storage_note})` : ""),
        "warn",
      ),
    );
  }
  if (s.signed_in && s.notifications_available === false) {
    const hung = (s.notifications_error || "").includes("did not answer");
    list.push(
      banner(
        hung
          ? "The desktop's notification service is not answering; checks go on, new results are listed here and notified when it answers again."
          : "No notification service answered; new results are listed here and notified when it is back.",
        "warn",
      ),
    );
  }
  if (s.signed_in && s.events_feed === EventsFeed.REFUSED) {
    list.push(banner("Fullscript refused the lab events feed; every check reads all orders (slower).", "warn"));
  } else if (s.signed_in && s.events_feed === EventsFeed.UNAVAILABLE) {
    list.push(banner("Fullscript's lab events feed did not answer at the last check; all orders were read instead.", "warn"));
  }
  if (s.signed_in && s.skipped_records > 0) {
    const n = Object.keys(s.unreadable_orders || {}).length || s.skipped_records;
    list.push(banner(plural(n, "1 order could not be read; it is kept as it was.", "N orders could not be read; they are kept as they were."), "warn"));
  }
  const unknown = Object.entries(s.unknown_states || {});
  if (s.signed_in && unknown.length) {
    const n = unknown.reduce((a, [, c]) => a + c, 0);
    list.push(
      banner(
        `${plural(n, "1 order is", "N orders are")} in an unrecognised state: ${unknown.map(([k]) => k).join(", ")}. They are listed but do not notify; an update of the app may be needed.`,
        "warn",
      ),
    );
  }
  if (s.local_history_rebuilt) {
    list.push(
      banner(
        "The local history was damaged and has been rebuilt. Results that arrived meanwhile are listed as new, not announced one by one.",
        "warn",
      ),
    );
  }
  if (s.connection === Connection.RESTARTING && s.last_error) list.push(banner(s.last_error, "warn"));
  if (s.update_installed) {
    list.push(
      banner(`Update ${s.update_installed} is installed. It takes effect when the app restarts.`, "", {
        id: "restart-update",
        label: "Restart now",
        run: () => callWindow(WindowCommand.RESTART_TO_UPDATE),
      }),
    );
  } else if (s.update_available) {
    list.push(
      banner(`Update available: ${s.update_available.version}`, "", {
        id: "install-update",
        label: s.update_problem ? "Try again" : "Install",
        run: installUpdate,
      }),
    );
    if (s.update_problem) {
      list.push(
        banner(
          s.update_problem,
          "bad",
          s.offer_update_download
            ? {
                id: "download-update",
                label: "Download",
                run: () => callWindow(WindowCommand.DOWNLOAD_UPDATE).catch((e) => $("banners").prepend(banner(String(e), "bad"))),
              }
            : null,
        ),
      );
    }
  }
  if (s.demo) list.push(banner("Demo: invented patients and results from the built-in simulator."));
  $("banners").replaceChildren(...list);
}

// "Checked 1 min ago" (exact times in the tooltip).
function renderChecked(s) {
  const el = $("conn-detail");
  const checked = s.last_poll_at ? `Checked ${ago(s.last_poll_at)}` : "";
  // With a relay: "Live" while results are pushed, else how often it checks.
  el.textContent = s.watch_mode ? [s.watch_mode, checked].filter(Boolean).join(" · ") : checked;
  const exact = [];
  if (s.push) exact.push(`Push: ${s.push}`);
  if (s.last_poll_at) exact.push(`Last check ${clock(s.last_poll_at)}`);
  if (s.next_poll_at && s.watching) exact.push(`next ${clock(s.next_poll_at)}`);
  el.title = exact.join(", ");
}

function renderHeader(s) {
  $("clinic-name").textContent = s.clinic ? s.clinic.name : "Fullscript";
  $("practitioner").textContent = s.owner_name || "";
  const badge = $("conn-badge");
  badge.dataset.state = s.connection;
  badge.textContent = CONNECTION[s.connection] || s.connection;
  renderChecked(s);
  $("unseen-count").textContent = s.unseen === 1 ? "1 new result" : `${s.unseen} new results`;
  $("check-now").disabled = !s.watching;
}

// Screen readers hear what changed: the connection, new results, a pause
// or clinic hours starting or ending. Never the time of every check.
function announce(s) {
  const said = view.announced;
  const parts = [];
  if (said.connection !== null && s.connection !== said.connection && s.connection !== Connection.CHECKING) {
    parts.push(`Connection: ${CONNECTION[s.connection] || s.connection}.`);
  }
  if (said.unseen !== null && s.unseen > said.unseen) {
    parts.push(plural(s.unseen - said.unseen, "1 new result.", "N new results."));
  }
  const quiet = s.quiet ? s.quiet.reason : "none";
  if (said.quiet !== null && quiet !== said.quiet) {
    parts.push(quiet === "none" ? "Notifications are on." : quiet === "paused" ? "Notifications paused." : "Outside clinic hours.");
  }
  if (s.connection !== Connection.CHECKING) said.connection = s.connection;
  said.unseen = s.unseen;
  said.quiet = quiet;
  if (parts.length) $("announcer").textContent = parts.join(" ");
}

function renderWelcome(s) {
  const w = $("welcome");
  if (!s.welcome) {
    w.hidden = true;
    return;
  }
  $("welcome-text").textContent = s.welcome;
  if (w.hidden && !view.welcomeShown) {
    view.welcomeShown = true;
    // "Start when I log in" is on unless the practitioner unticks it.
    call(Command.SET_LAUNCH_AT_LOGIN, { on: $("welcome-autostart").checked }).catch(() => {});
  }
  w.hidden = false;
}

// The first screen: one country choice and one button when the clinic's
// registration is known; its raw fields under Advanced.
let advancedTouched = false;

function renderSignIn(s) {
  const env = $("environment");
  if (env.options.length === 0) {
    for (const e of s.environments) {
      const o = document.createElement("option");
      o.value = e;
      o.textContent = e;
      env.append(o);
    }
  }
  if (!advancedTouched) {
    env.value = s.environment;
    if (s.client_id) $("client-id").value = s.client_id;
  }
  const regionKnown = s.region === "us" || s.region === "ca";
  $("region-choice").hidden = !regionKnown;
  if (regionKnown && !document.querySelector("input[name=region]:checked")) {
    $(`region-${s.region}`).checked = true;
  }
  $("sandbox-note").hidden = !s.sandbox;
  // Nothing known (or no secret): the fields are needed, so Advanced opens.
  const ready = !!s.configured;
  $("registration-note").hidden = ready;
  if (!advancedTouched) showAdvanced(!ready);
  $("secret-hint").textContent = s.secret_from_config ? "(already set by your clinic)" : "";
  // With the clinic's relay the secret stays on the relay: nothing to ask.
  $("secret-field").hidden = !!s.secret_kept_by_relay;
  $("signin-form").hidden = s.signing_in;
  $("signin-waiting").hidden = !s.signing_in;
}

function applySnapshot(s) {
  view.snapshot = s;
  $("loading").hidden = true;
  const signedIn = s.signed_in;
  $("topbar").hidden = !signedIn;
  $("main").hidden = !signedIn;
  $("signin").hidden = signedIn;
  renderBanners(s);
  if (signedIn) {
    renderHeader(s);
    renderWelcome(s);
    announce(s);
  } else renderSignIn(s);
}

function draw() {
  render($("list"), view.page, {
    highlighted: view.highlighted,
    signedIn: view.snapshot ? view.snapshot.signed_in : false,
    onOpen: openResults,
    onReviewed: markReviewed,
    onMore: async (group, total) => {
      view.rows[group] = total;
      await renderList();
    },
  });
  $("filter").querySelector("option[value=since]").hidden = !view.since;
}

// Ask the agent for what the list shows now, and draw it.
async function renderList() {
  const asked = ++view.listAsked;
  let page;
  try {
    page = await call(Command.LIST_PAGE, {
      query: {
        filter: view.filter,
        query: view.query || null,
        since: view.since,
        rows: view.rows,
        highlighted: view.highlighted,
      },
    });
  } catch {
    page = null;
  }
  if (asked !== view.listAsked) return;
  view.page = page;
  draw();
}

async function loadOrders() {
  await renderList();
}

async function markReviewed(order) {
  try {
    await call(Command.MARK_SEEN, { order_id: order.id });
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
}

async function checkNow() {
  $("conn-badge").textContent = CONNECTION[Connection.CHECKING];
  try {
    await call(Command.CHECK_NOW);
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
}

async function openResults(order) {
  view.highlighted = order.id;
  try {
    await call(Command.OPEN_RESULTS, { order_id: order.id });
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
}

async function highlight(orderId) {
  view.highlighted = orderId;
  view.filter = "all";
  $("filter").value = "all";
  await renderList();
  const el = document.querySelector(`[data-order-id="${CSS.escape(orderId)}"]`);
  if (el) {
    el.scrollIntoView({ block: "center" });
    el.focus();
  }
}

// ---------------------------------------------------------------- sign in

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = $("signin-error");
  err.hidden = true;
  $("signin-button").disabled = true;
  const region = document.querySelector("input[name=region]:checked");
  try {
    const started = await call(Command.SIGN_IN, {
      region: region && !$("region-choice").hidden ? region.value : null,
      environment: advancedTouched ? $("environment").value : null,
      client_id: advancedTouched ? $("client-id").value : null,
      client_secret: $("client-secret").value || null,
    });
    $("authorize-url").value = started.authorize_url;
    $("client-secret").value = "";
  } catch (e) {
    err.textContent = String(e);
    err.hidden = false;
  } finally {
    $("signin-button").disabled = false;
  }
});

$("signin-cancel").addEventListener("click", () => call(Command.CANCEL_SIGN_IN));
for (const id of ["environment", "client-id"]) {
  $(id).addEventListener("input", () => {
    advancedTouched = true;
  });
}
function showAdvanced(open) {
  $("advanced").hidden = !open;
  $("advanced-toggle").setAttribute("aria-expanded", String(open));
}
// Opened or closed by the practitioner: left as they chose.
$("advanced-toggle").addEventListener("click", () => {
  advancedTouched = true;
  showAdvanced($("advanced").hidden);
});

// ---------------------------------------------------------------- welcome

$("welcome-autostart").addEventListener("change", (e) => {
  call(Command.SET_LAUNCH_AT_LOGIN, { on: e.target.checked }).catch((err) => {
    $("welcome-test-note").textContent = String(err);
  });
});
async function testNotification(note) {
  note.textContent = "Sending…";
  try {
    const hint = await call(Command.SEND_TEST_NOTIFICATION);
    note.textContent = `Sent. ${hint}`;
  } catch (e) {
    note.textContent = String(e);
  }
}
$("welcome-test").addEventListener("click", () => testNotification($("welcome-test-note")));
$("welcome-done").addEventListener("click", () => call(Command.DISMISS_WELCOME));

// ---------------------------------------------------------------- list

$("search").addEventListener("input", (e) => {
  view.query = e.target.value.trim();
  renderList();
});
$("search").addEventListener("keydown", (e) => {
  if (e.key === "Escape" && $("search").value) {
    e.preventDefault();
    $("search").value = "";
    view.query = "";
    renderList();
  }
});
$("filter").addEventListener("change", (e) => {
  view.filter = e.target.value;
  renderList();
});

// Keyboard: arrows move between orders (one Tab stop for the list), Enter
// opens, r marks reviewed, / searches.
$("list").addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  const moves = { ArrowDown: 1, ArrowUp: -1, Home: "first", End: "last" };
  if (e.key in moves) {
    e.preventDefault();
    moveFocus($("list"), moves[e.key]);
  } else if (e.key === "r" || e.key === "R") {
    const id = focusedOrderId($("list"));
    const order = id && rowsById(view.page).get(id);
    if (order) {
      e.preventDefault();
      markReviewed(order);
    }
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.altKey || e.ctrlKey || e.metaKey) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) return;
  if ($("main").hidden || $("settings").open) return;
  e.preventDefault();
  $("search").focus();
});

// "Mark all seen" asks nothing; Undo stays offered for 10 seconds.
let undoTimer = null;
$("mark-all-seen").addEventListener("click", async () => {
  let n = 0;
  try {
    n = await call(Command.MARK_ALL_SEEN);
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
    return;
  }
  document.getElementById("undo-banner")?.remove();
  if (n === 0) return;
  const b = banner(plural(n, "1 result marked seen.", "N results marked seen."), "", {
    id: "undo-mark-all",
    label: "Undo",
    run: async () => {
      clearTimeout(undoTimer);
      b.remove();
      await call(Command.UNDO_MARK_ALL_SEEN);
    },
  });
  b.id = "undo-banner";
  $("main").prepend(b);
  clearTimeout(undoTimer);
  undoTimer = setTimeout(() => b.remove(), 10_000);
});
$("check-now").addEventListener("click", checkNow);

// ---------------------------------------------------------------- settings

const dialog = $("settings");
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
$("settings-test").addEventListener("click", () => testNotification($("settings-test-note")));

function fillSettings(s) {
  $("poll-interval").value = String(s.poll_interval_secs);
  if ($("poll-interval").value !== String(s.poll_interval_secs)) {
    const o = document.createElement("option");
    o.value = String(s.poll_interval_secs);
    o.textContent = `${s.poll_interval_secs} seconds`;
    $("poll-interval").append(o);
    $("poll-interval").value = o.value;
  }
  $("notify-partial").checked = s.notify_states.partial_results;
  $("notify-ready").checked = s.notify_states.results_ready;
  $("notify-amended").checked = s.notify_states.results_amended;
  $("notification-detail").value = s.notification_detail || (s.show_patient_names ? "full" : "test");
  $("sound").checked = s.sound;
  $("launch-at-login").checked = s.launch_at_login;
  const h = s.clinic_hours;
  $("hours-enabled").checked = !!(h && h.enabled);
  DAYS.forEach((d, i) => {
    $(`day-${d}`).checked = h ? h.days[i] : i < 5;
  });
  $("hours-open").value = h ? h.open : "08:00";
  $("hours-close").value = h ? h.close : "18:00";
  $("pause-state").textContent = s.paused_until ? `Paused until ${clock(s.paused_until)}.` : "Notifications are on.";
  $("resume").disabled = !s.paused_until;
  const snap = view.snapshot;
  $("storage-note").textContent = snap
    ? `Sign-in kept in: ${snap.token_storage === "keychain" ? "the system keychain" : "a private file"}.`
    : "";
}

function settingsError(e) {
  const el = $("settings-error");
  el.textContent = e ? String(e) : "";
  el.hidden = !e;
}

$("open-settings").addEventListener("click", async () => {
  settingsError(null);
  try {
    fillSettings(await call(Command.GET_SETTINGS));
    dialog.showModal();
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
});
$("settings-cancel").addEventListener("click", () => dialog.close());
$("check-update").addEventListener("click", async () => {
  $("update-note").textContent = "Checking…";
  try {
    const u = await call(Command.CHECK_FOR_UPDATE);
    $("update-note").textContent = u ? `Version ${u.version} is available.` : "This is the newest version.";
  } catch (e) {
    $("update-note").textContent = String(e);
  }
});
$("settings-save").addEventListener("click", async () => {
  try {
    await call(Command.SAVE_SETTINGS, {
      settings: {
        poll_interval_secs: Number($("poll-interval").value),
        notify_states: {
          partial_results: $("notify-partial").checked,
          results_ready: $("notify-ready").checked,
          results_amended: $("notify-amended").checked,
        },
        notification_detail: $("notification-detail").value,
        sound: $("sound").checked,
        launch_at_login: $("launch-at-login").checked,
        clinic_hours: {
          enabled: $("hours-enabled").checked,
          days: DAYS.map((d) => $(`day-${d}`).checked),
          open: $("hours-open").value || "08:00",
          close: $("hours-close").value || "18:00",
        },
      },
    });
    dialog.close();
  } catch (e) {
    settingsError(e);
  }
});
for (const [id, preset] of [
  ["pause-1h", "1h"],
  ["pause-tomorrow", "tomorrow"],
]) {
  $(id).addEventListener("click", async () => {
    try {
      await call(Command.PAUSE_NOTIFICATIONS, { preset });
      fillSettings(await call(Command.GET_SETTINGS));
    } catch (e) {
      settingsError(e);
    }
  });
}
$("resume").addEventListener("click", async () => {
  await call(Command.RESUME_NOTIFICATIONS);
  fillSettings(await call(Command.GET_SETTINGS));
});
// Sign-out asks first, and offers to erase what this computer keeps.
$("sign-out").addEventListener("click", () => {
  $("sign-out-confirm").hidden = false;
  $("sign-out-yes").focus();
});
$("sign-out-no").addEventListener("click", () => {
  $("sign-out-confirm").hidden = true;
});
async function signOut(erase) {
  try {
    const r = await call(Command.SIGN_OUT, { erase });
    $("sign-out-confirm").hidden = true;
    dialog.close();
    if (r.revoke_errors.length) {
      $("banners").prepend(
        banner("Signed out here; Fullscript could not be told yet (the app will try again): " + r.revoke_errors.join("; "), "warn"),
      );
    }
    if (r.erased) $("banners").prepend(banner("Signed out; the lab orders, alerts and logs kept on this computer were erased."));
  } catch (e) {
    settingsError(e);
  }
}
$("sign-out-yes").addEventListener("click", () => signOut(false));
$("sign-out-erase").addEventListener("click", () => signOut(true));

// ---------------------------------------------------------------- live updates

on(Event.STATE_CHANGED, applySnapshot);
on(Event.ORDERS_CHANGED, loadOrders);
on(Event.HIGHLIGHT, (h) => highlight(h.order_id));
function showNew() {
  view.filter = "unseen";
  $("filter").value = "unseen";
  renderList();
}
on(Event.SHOW_NEW, showNew);
// The background agent (watching, notifications) runs apart from this
// window; if it goes away this window starts it again and reads everything.
on(Event.AGENT_GONE, (gone) => {
  view.agentGone = gone.message;
  renderBanners(view.snapshot);
});
// Events were missed (the page fell behind): read everything again.
on(Event.RESYNC, () => init());
on(Event.AGENT_BACK, () => {
  view.agentGone = null;
  view.agentRestarted = true;
  init();
});
on(Event.SIGN_IN_FINISHED, (r) => {
  if (!r.ok) {
    $("signin-error").textContent = r.message;
    $("signin-error").hidden = false;
  }
});

setInterval(() => {
  refreshTimes($("list"));
  if (view.snapshot && view.snapshot.signed_in) renderChecked(view.snapshot);
}, 30_000);

async function init() {
  applySnapshot(await call(Command.SNAPSHOT));
  await loadOrders();
  // Opened by a notification click: that order, or the new results.
  const pending = await call(Command.TAKE_VIEW);
  if (pending && pending.kind === "order") highlight(pending.order_id);
  else if (pending && pending.kind === "new_results") showNew();
}

init();
