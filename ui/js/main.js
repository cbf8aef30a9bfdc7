// Wires the page to the app: renders the pushed state and list, sends the
// user's actions as commands.
import { call, on } from "./api.js";
import { render, refreshTimes } from "./list.js";
import { clock } from "./time.js";

const $ = (id) => document.getElementById(id);

const view = {
  snapshot: null,
  orders: [],
  filter: "all",
  query: "",
  highlighted: null,
};

const CONNECTION = {
  starting: "Starting",
  checking: "Checking…",
  ok: "Up to date",
  retrying: "Retrying",
  offline: "Offline",
  rate_limited: "Rate limited",
  signed_out: "Signed out",
  needs_configuration: "Needs setup",
  restarting: "Restarting",
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
    const r = await call("install_update");
    if (r.kind === "up_to_date") $("banners").prepend(banner("No update is available after all."));
  } catch {
    // The snapshot that follows shows why (update_problem) and offers "Try again".
    button.disabled = false;
    button.textContent = "Try again";
  }
}

function renderBanners(s) {
  const list = [];
  if (s.error) list.push(banner(s.error, "bad"));
  if (!s.signed_in && s.signed_out_cause && s.signed_out_cause.kind === "ended") {
    list.push(banner(`You were signed out: ${s.signed_out_reason}`, "bad"));
  }
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
  if (s.paused_until) list.push(banner(`Notifications are paused until ${clock(s.paused_until)}.`, "warn"));
  if (s.signed_in && s.notifications_available === false) {
    list.push(banner("No notification service answered; new results are listed here and notified when it is back.", "warn"));
  }
  if (s.signed_in && s.events_feed === "refused") {
    list.push(banner("Fullscript refused the lab events feed; every check reads all orders (slower).", "warn"));
  } else if (s.signed_in && s.events_feed === "unavailable") {
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
  if (s.connection === "restarting" && s.last_error) list.push(banner(s.last_error, "warn"));
  if (s.update_installed) {
    list.push(
      banner(`Update ${s.update_installed} is installed. It takes effect when the app restarts.`, "", {
        id: "restart-update",
        label: "Restart now",
        run: () => call("restart_to_update"),
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
                run: () => call("download_update").catch((e) => $("banners").prepend(banner(String(e), "bad"))),
              }
            : null,
        ),
      );
    }
  }
  if (s.demo) list.push(banner("Demo: invented patients and results from the built-in simulator."));
  $("banners").replaceChildren(...list);
}

function renderHeader(s) {
  const st = s;
  $("clinic-name").textContent = s.clinic ? s.clinic.name : "Fullscript";
  const owner = s.resource_owner;
  $("practitioner").textContent = owner ? `Signed in as ${owner.type} ${owner.id.slice(0, 8)}` : "";
  const badge = $("conn-badge");
  badge.dataset.state = st.connection;
  badge.textContent = CONNECTION[st.connection] || st.connection;
  const detail = [];
  if ((st.connection === "retrying" || st.connection === "offline" || st.connection === "rate_limited") && st.retrying_since) {
    detail.push(`since ${clock(st.retrying_since)}`);
  }
  if (st.last_poll_at) detail.push(`last check ${clock(st.last_poll_at)}`);
  if (st.next_poll_at && s.watching) detail.push(`next ${clock(st.next_poll_at)}`);
  $("conn-detail").textContent = detail.join(" · ");
  $("conn-detail").title = st.last_error || "";
  $("unseen-count").textContent = s.unseen === 1 ? "1 new result" : `${s.unseen} new results`;
  $("check-now").disabled = !s.watching;
}

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
  if (document.activeElement !== env) env.value = s.environment;
  if (!$("client-id").value && s.client_id) $("client-id").value = s.client_id;
  $("secret-hint").textContent = s.secret_from_config ? "(already set in the configuration)" : "";
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
  if (signedIn) renderHeader(s);
  else renderSignIn(s);
}

function renderList() {
  render($("list"), view.orders, {
    filter: view.filter,
    query: view.query,
    highlighted: view.highlighted,
    signedIn: view.snapshot ? view.snapshot.signed_in : false,
    onOpen: openResults,
  });
}

async function loadOrders() {
  try {
    view.orders = await call("list_orders");
  } catch {
    view.orders = [];
  }
  renderList();
}

async function openResults(order) {
  view.highlighted = order.id;
  try {
    await call("open_results", { orderId: order.id });
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
}

function highlight(orderId) {
  view.highlighted = orderId;
  view.filter = "all";
  $("filter").value = "all";
  renderList();
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
  try {
    const started = await call("sign_in", {
      environment: $("environment").value,
      clientId: $("client-id").value,
      clientSecret: $("client-secret").value || null,
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

$("signin-cancel").addEventListener("click", () => call("cancel_sign_in"));

// ---------------------------------------------------------------- list

$("search").addEventListener("input", (e) => {
  view.query = e.target.value.trim();
  renderList();
});
$("filter").addEventListener("change", (e) => {
  view.filter = e.target.value;
  renderList();
});
$("mark-all-seen").addEventListener("click", () => call("mark_all_seen"));
$("check-now").addEventListener("click", async () => {
  $("conn-badge").textContent = CONNECTION.checking;
  try {
    await call("check_now");
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
});

// ---------------------------------------------------------------- settings

const dialog = $("settings");

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
    fillSettings(await call("get_settings"));
    dialog.showModal();
  } catch (e) {
    $("banners").prepend(banner(String(e), "bad"));
  }
});
$("settings-cancel").addEventListener("click", () => dialog.close());
$("check-update").addEventListener("click", async () => {
  $("update-note").textContent = "Checking…";
  try {
    const u = await call("check_for_update");
    $("update-note").textContent = u ? `Version ${u.version} is available.` : "This is the newest version.";
  } catch (e) {
    $("update-note").textContent = String(e);
  }
});
$("settings-save").addEventListener("click", async () => {
  try {
    await call("save_settings", {
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
      await call("pause_notifications", { preset });
      fillSettings(await call("get_settings"));
    } catch (e) {
      settingsError(e);
    }
  });
}
$("resume").addEventListener("click", async () => {
  await call("resume_notifications");
  fillSettings(await call("get_settings"));
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
    const r = await call("sign_out", { erase });
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

on("state-changed", applySnapshot);
on("orders-changed", loadOrders);
on("highlight", highlight);
on("show-new", () => {
  view.filter = "unseen";
  $("filter").value = "unseen";
  renderList();
});
on("sign-in-finished", (r) => {
  if (!r.ok) {
    $("signin-error").textContent = r.message;
    $("signin-error").hidden = false;
  }
});

setInterval(() => refreshTimes($("list")), 30_000);

async function init() {
  applySnapshot(await call("snapshot"));
  await loadOrders();
  const pending = await call("take_highlight");
  if (pending) highlight(pending);
}

init();
