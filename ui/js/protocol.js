// GENERATED from the Rust types in crates/protocol (and the core's wire types) by
// `FSN_BLESS=1 cargo test -p fsn-protocol generated`: do not edit by hand.
// The page's names for the agent's commands and events, the window's own
// commands, the connection states, and the shapes of what the page reads.

export const Command = Object.freeze({
  SNAPSHOT: "snapshot",
  LIST_ORDERS: "list_orders",
  LIST_PAGE: "list_page",
  OPEN_RESULTS: "open_results",
  MARK_SEEN: "mark_seen",
  MARK_ALL_SEEN: "mark_all_seen",
  UNDO_MARK_ALL_SEEN: "undo_mark_all_seen",
  CHECK_NOW: "check_now",
  GET_SETTINGS: "get_settings",
  SAVE_SETTINGS: "save_settings",
  PAUSE_NOTIFICATIONS: "pause_notifications",
  RESUME_NOTIFICATIONS: "resume_notifications",
  PAUSE_OR_RESUME: "pause_or_resume",
  SIGN_IN: "sign_in",
  CANCEL_SIGN_IN: "cancel_sign_in",
  SIGN_OUT: "sign_out",
  TAKE_VIEW: "take_view",
  CHECK_FOR_UPDATE: "check_for_update",
  OPEN_UPDATE_PACKAGE: "open_update_package",
  SEND_TEST_NOTIFICATION: "send_test_notification",
  SET_LAUNCH_AT_LOGIN: "set_launch_at_login",
  DISMISS_WELCOME: "dismiss_welcome",
  DISMISS_CATCH_UP: "dismiss_catch_up",
  SHOW_WINDOW: "show_window",
  WINDOW_CLOSED: "window_closed",
  FOCUS_OPEN_WINDOW: "focus_open_window",
  QUIT: "quit",
  SUBSCRIBE: "subscribe",
});

export const Event = Object.freeze({
  STATE_CHANGED: "state-changed",
  ORDERS_CHANGED: "orders-changed",
  HIGHLIGHT: "highlight",
  SHOW_NEW: "show-new",
  SIGN_IN_FINISHED: "sign-in-finished",
  SHOW: "show",
  QUIT: "quit",
  RESYNC: "resync",
  AGENT_GONE: "agent-gone",
  AGENT_BACK: "agent-back",
});

export const WindowCommand = Object.freeze({
  CALL: "call",
  INSTALL_UPDATE: "install_update",
  DOWNLOAD_UPDATE: "download_update",
  RESTART_TO_UPDATE: "restart_to_update",
});

export const Connection = Object.freeze({
  STARTING: "starting",
  CHECKING: "checking",
  OK: "ok",
  RETRYING: "retrying",
  OFFLINE: "offline",
  RATE_LIMITED: "rate_limited",
  SIGNED_OUT: "signed_out",
  NEEDS_CONFIGURATION: "needs_configuration",
  RESTARTING: "restarting",
});

export const EventsFeed = Object.freeze({
  AVAILABLE: "available",
  UNKNOWN: "unknown",
  UNAVAILABLE: "unavailable",
  REFUSED: "refused",
});

/**
 * "5 results since Fri 5:12 pm".
 * @typedef {Object} CatchUp
 * @property {number} results
 * @property {string} since
 */

/**
 * @typedef {Object} Clinic
 * @property {string} id
 * @property {string} name
 */

/**
 * The days and hours the practitioner wants to hear about results.
 * @typedef {Object} ClinicHours
 * @property {string} close
 * @property {Array<boolean>} days Monday first.
 * @property {string} open
 */

/**
 * The clinic-hours setting: the hours are kept when switched off, so switching them on again restores them.
 * @typedef {Object} ClinicHoursSetting
 * @property {string} close
 * @property {Array<boolean>} days Monday first.
 * @property {boolean} enabled
 * @property {string} open
 */

/**
 * @typedef {("starting"|"checking"|"ok"|"retrying"|"offline"|"rate_limited"|"signed_out"|"needs_configuration"|"restarting")} Connection
 */

/**
 * What the agent tells its subscribers (the window; the command line waiting for a sign-in). The page receives each under its name (`state-changed`) with the payload.
 * @typedef {({event: "state-changed", payload: Snapshot}|{event: "orders-changed"}|{event: "highlight", payload: {order_id: string}}|{event: "show-new"}|{event: "sign-in-finished", payload: {message: string, ok: boolean}}|{event: "show"}|{event: "quit"}|{event: "resync"})} Event
 */

/**
 * What the lab-order events feed did at the last check.
 * @typedef {("available"|"unknown"|"unavailable"|"refused")} EventsFeed
 */

/**
 * @typedef {string} LabState
 */

/**
 * One group of the answer.
 * @typedef {Object} ListGroup
 * @property {string} key
 * @property {Array<OrderRow>} rows The newest of them, at most what was asked for.
 * @property {number} total Orders in the group (matching the filter and search).
 */

/**
 * The answer: the groups that have orders, and how many orders the list holds in all (to tell "no orders yet" from "none match").
 * @typedef {Object} ListPage
 * @property {Array<ListGroup>} groups
 * @property {number} orders_total
 */

/**
 * What the window wants to draw.
 * @typedef {Object} ListQuery
 * @property {string|null} [filter] `all` (default), `since`, or a group's key.
 * @property {string|null} [highlighted] An order that must be among the rows sent (a clicked notification's).
 * @property {string|null} [query] Search text (patient, test, lab), case-insensitive.
 * @property {Object<string, number>} [rows] Rows wanted per group (default [`ROWS_PER_GROUP`]), by group key.
 * @property {string|null} [since] With `filter = since`: orders whose newest result is at or after this.
 */

/**
 * How much a notification says (they appear on lock screens and in notification centres, where anyone passing by can read them).
 * @typedef {("full"|"test"|"generic")} NotificationDetail
 */

/**
 * Which result states raise a notification.
 * @typedef {Object} NotifyStates
 * @property {boolean} partial_results
 * @property {boolean} results_amended
 * @property {boolean} results_ready
 */

/**
 * A row of the status list.
 * @typedef {Object} OrderRow
 * @property {string} changed_at
 * @property {string} group
 * @property {string} id
 * @property {string|null} [lab_name]
 * @property {string|null} [last_result_at] When its newest result alert was recorded (for "N results since …").
 * @property {string|null} [patient_name]
 * @property {number} results_count
 * @property {LabState} state
 * @property {string} state_label
 * @property {Array<string>} test_names
 * @property {string} title
 * @property {boolean} unseen
 */

/**
 * Why alerts are held now.
 * @typedef {({reason: "paused", until: string}|{reason: "outside_hours", until?: string|null})} Quiet
 */

/**
 * The local database was found damaged at start and replaced by an empty one.
 * @typedef {Object} Rebuilt
 * @property {string} at When it was rebuilt.
 * @property {string} kept_as The damaged file, kept beside the new one.
 * @property {string|null} [last_written] When the damaged file was last written: results that changed after this are listed as unseen.
 */

/**
 * Where the clinic's Fullscript account lives, in the words the first screen uses ("United States" / "Canada").
 * @typedef {"us"|"ca"} Region
 */

/**
 * A command to the agent. On the wire: `{"id": 7, "cmd": "mark_seen", "args": {"order_id": "…"}}` (the id is the transport's).
 * @typedef {({cmd: "snapshot"}|{cmd: "list_orders"}|{args: {query?: (ListQuery|null)}, cmd: "list_page"}|{args: {order_id: string}, cmd: "open_results"}|{args: {order_id: string}, cmd: "mark_seen"}|{cmd: "mark_all_seen"}|{cmd: "undo_mark_all_seen"}|{cmd: "check_now"}|{cmd: "get_settings"}|{args: {settings: Settings}, cmd: "save_settings"}|{args: {preset: string}, cmd: "pause_notifications"}|{cmd: "resume_notifications"}|{cmd: "pause_or_resume"}|{args: {client_id?: string|null, client_secret?: string|null, environment?: string|null, region?: (Region|null)}, cmd: "sign_in"}|{cmd: "cancel_sign_in"}|{args: {erase?: boolean}, cmd: "sign_out"}|{cmd: "take_view"}|{cmd: "check_for_update"}|{args: {url: string}, cmd: "open_update_package"}|{cmd: "send_test_notification"}|{args: {on: boolean}, cmd: "set_launch_at_login"}|{cmd: "dismiss_welcome"}|{cmd: "dismiss_catch_up"}|{cmd: "show_window"}|{cmd: "window_closed"}|{cmd: "focus_open_window"}|{cmd: "quit"}|{args: {window?: boolean}, cmd: "subscribe"})} Request
 */

/**
 * @typedef {Object} ResourceOwner
 * @property {string} id
 * @property {string} type
 */

/**
 * The settings the page edits.
 * @typedef {Object} Settings
 * @property {(ClinicHoursSetting|null)} [clinic_hours] Days and hours; outside them alerts are held for a digest (absent: unchanged).
 * @property {boolean} launch_at_login
 * @property {(NotificationDetail|null)} [notification_detail] `full`, `test` or `generic`; when absent, `show_patient_names` decides.
 * @property {NotifyStates} notify_states
 * @property {string|null} [paused_until]
 * @property {number} poll_interval_secs
 * @property {boolean} [show_patient_names] `notification_detail == full` (older pages send only this).
 * @property {boolean} sound
 */

/**
 * The answer to [`Request::SignIn`].
 * @typedef {Object} SignInStarted
 * @property {string} authorize_url Shown for copying, in case the browser did not open.
 */

/**
 * The answer to [`Request::SignOut`].
 * @typedef {Object} SignedOut
 * @property {boolean} erased
 * @property {string|null} [local_error]
 * @property {number} queued Revocations that failed, retried at the next start.
 * @property {Array<string>} revoke_errors
 * @property {boolean} [was_signed_in] There was a sign-in to end.
 */

/**
 * Why nobody is signed in (shown to the practitioner, kept in the database).
 * @typedef {({kind: "user"}|{kind: "ended", reason: string})} SignedOutCause
 */

/**
 * What the page's header and banners show: the core's status report plus what only the agent knows.
 * @typedef {Object} Snapshot
 * @property {string|null} [access_token_expires_at]
 * @property {number} [alerts_pending]
 * @property {(CatchUp|null)} [catch_up] Results that arrived since the app last watched (after a start, a wake from sleep or the end of a pause).
 * @property {string|null} [client_id]
 * @property {(Clinic|null)} [clinic]
 * @property {(ClinicHours|null)} [clinic_hours] The clinic hours in force (when set).
 * @property {string} [config_file]
 * @property {boolean} [configured]
 * @property {Connection} [connection]
 * @property {number} [cycles]
 * @property {string} [data_dir]
 * @property {boolean} demo
 * @property {string} [environment]
 * @property {Array<string>} environments
 * @property {string|null} [error] A problem to show (a bad config file, a keychain failure, …).
 * @property {boolean|null} [events_available] `None` until the events feed has been tried (kept for older readers; `events_feed` says more).
 * @property {EventsFeed} [events_feed]
 * @property {string|null} [events_feed_error]
 * @property {number} [held_alerts] Alerts held for the digest at the next opening or the end of the pause.
 * @property {string|null} [last_error]
 * @property {string|null} [last_poll_at] The last cycle that completed.
 * @property {(Rebuilt|null)} [local_history_rebuilt] The local database was damaged and rebuilt (results found meanwhile are listed as unseen, not announced one by one).
 * @property {string|null} [needs_configuration] Fullscript refused the app's registration; the sign-in is kept.
 * @property {string|null} [next_poll_at]
 * @property {boolean} [notifications_available]
 * @property {string|null} [notifications_error]
 * @property {Object<string, number>} [orders_by_state]
 * @property {number} [orders_total] Lab orders on the list.
 * @property {string|null} [owner_name] The signed-in practitioner's name (or email), for the header.
 * @property {string|null} [paused_until]
 * @property {string|null} [push] Results pushed by the relay (absent without one, or for a Canadian clinic, where Fullscript sends no lab webhooks).
 * @property {number} [push_unreadable] Pushed events the app could not read (counted, never dropped silently).
 * @property {(Quiet|null)} [quiet] Why result alerts are held now (paused, outside clinic hours), and until when.
 * @property {(Region|null)} [region] The country of the configured environment (`us`, `ca`; none for custom).
 * @property {boolean} registration_preset The registration came from the computer's defaults file (or this build): the first screen is one button.
 * @property {(ResourceOwner|null)} [resource_owner]
 * @property {number} [restarts] Times the watcher stopped unexpectedly and was restarted.
 * @property {string|null} [retrying_since] Since when requests have been failing (cleared by a good cycle).
 * @property {boolean} sandbox The configured environment is a sandbox (said on the first screen).
 * @property {boolean} secret_from_config The secret came from the environment or the file: the page need not ask.
 * @property {boolean} secret_kept_by_relay A relay keeps the registration's secret: the page never asks for one.
 * @property {boolean} [signed_in]
 * @property {(SignedOutCause|null)} [signed_out_cause]
 * @property {string|null} [signed_out_reason]
 * @property {boolean} signing_in
 * @property {number} [skipped_records] Records Fullscript sent that could not be read: orders (kept as they were, listed as unreadable) and events. Never silently dropped.
 * @property {(SweepMode|null)} [sweep] How the order list was last read while pushed (absent without push).
 * @property {string|null} [sweep_note] Why the sorted read is not used, when it is not.
 * @property {string} [token_storage]
 * @property {boolean} [token_storage_fallback] No keychain could keep the secrets, so the private file is in use.
 * @property {string|null} [token_storage_note]
 * @property {Object<string, number>} [unknown_states] Orders in a state this version does not know (state → how many): listed, never alerting, and said, so a renamed result state cannot silently stop alerts.
 * @property {Object<string, string>} [unreadable_orders] The orders among them (id → what was wrong).
 * @property {number} [unseen]
 * @property {(UpdateInfo|null)} [update_available] A newer version found by the daily look at the update feed.
 * @property {string|null} [update_checked_at]
 * @property {string|null} [update_error] Why the last look at the update feed failed, if it did.
 * @property {string|null} [watch_mode] With a relay: how results reach this computer, in the window's words ("Live" while pushed, else "Checking every minute"); absent without one (the header is as it always was).
 * @property {boolean} watching
 * @property {string|null} [welcome] After a sign-in, until dismissed: what happened, in words.
 */

/**
 * How the order list is read while results are pushed.
 * @typedef {("incremental"|"full")} SweepMode
 */

/**
 * A newer version than this one, as the feed describes it.
 * @typedef {Object} UpdateInfo
 * @property {string|null} [download_url] This platform's package, for the practitioner to download and install by hand when the app cannot install it itself.
 * @property {string|null} [notes]
 * @property {string|null} [pub_date]
 * @property {string} version
 */

/**
 * What the window shows when it opens because of a notification click.
 * @typedef {({kind: "order", order_id: string}|{kind: "new_results"})} View
 */

/**
 * What the window itself tells the page (it is not the agent's).
 * @typedef {({event: "agent-gone", payload: {message: string}}|{event: "agent-back"})} WindowEvent
 */

/**
 * The window's snapshot: the agent's, and the update installed (or not) by this window (the updater plugin lives in the window's process).
 * @typedef {Object} WindowSnapshot
 * @property {string|null} [access_token_expires_at]
 * @property {number} [alerts_pending]
 * @property {(CatchUp|null)} [catch_up] Results that arrived since the app last watched (after a start, a wake from sleep or the end of a pause).
 * @property {string|null} [client_id]
 * @property {(Clinic|null)} [clinic]
 * @property {(ClinicHours|null)} [clinic_hours] The clinic hours in force (when set).
 * @property {string} [config_file]
 * @property {boolean} [configured]
 * @property {Connection} [connection]
 * @property {number} [cycles]
 * @property {string} [data_dir]
 * @property {boolean} demo
 * @property {string} [environment]
 * @property {Array<string>} environments
 * @property {string|null} [error] A problem to show (a bad config file, a keychain failure, …).
 * @property {boolean|null} [events_available] `None` until the events feed has been tried (kept for older readers; `events_feed` says more).
 * @property {EventsFeed} [events_feed]
 * @property {string|null} [events_feed_error]
 * @property {number} [held_alerts] Alerts held for the digest at the next opening or the end of the pause.
 * @property {string|null} [last_error]
 * @property {string|null} [last_poll_at] The last cycle that completed.
 * @property {(Rebuilt|null)} [local_history_rebuilt] The local database was damaged and rebuilt (results found meanwhile are listed as unseen, not announced one by one).
 * @property {string|null} [needs_configuration] Fullscript refused the app's registration; the sign-in is kept.
 * @property {string|null} [next_poll_at]
 * @property {boolean} [notifications_available]
 * @property {string|null} [notifications_error]
 * @property {boolean} offer_update_download The package can be downloaded and installed by hand.
 * @property {Object<string, number>} [orders_by_state]
 * @property {number} [orders_total] Lab orders on the list.
 * @property {string|null} [owner_name] The signed-in practitioner's name (or email), for the header.
 * @property {string|null} [paused_until]
 * @property {string|null} [push] Results pushed by the relay (absent without one, or for a Canadian clinic, where Fullscript sends no lab webhooks).
 * @property {number} [push_unreadable] Pushed events the app could not read (counted, never dropped silently).
 * @property {(Quiet|null)} [quiet] Why result alerts are held now (paused, outside clinic hours), and until when.
 * @property {(Region|null)} [region] The country of the configured environment (`us`, `ca`; none for custom).
 * @property {boolean} registration_preset The registration came from the computer's defaults file (or this build): the first screen is one button.
 * @property {(ResourceOwner|null)} [resource_owner]
 * @property {number} [restarts] Times the watcher stopped unexpectedly and was restarted.
 * @property {string|null} [retrying_since] Since when requests have been failing (cleared by a good cycle).
 * @property {boolean} sandbox The configured environment is a sandbox (said on the first screen).
 * @property {boolean} secret_from_config The secret came from the environment or the file: the page need not ask.
 * @property {boolean} secret_kept_by_relay A relay keeps the registration's secret: the page never asks for one.
 * @property {boolean} [signed_in]
 * @property {(SignedOutCause|null)} [signed_out_cause]
 * @property {string|null} [signed_out_reason]
 * @property {boolean} signing_in
 * @property {number} [skipped_records] Records Fullscript sent that could not be read: orders (kept as they were, listed as unreadable) and events. Never silently dropped.
 * @property {(SweepMode|null)} [sweep] How the order list was last read while pushed (absent without push).
 * @property {string|null} [sweep_note] Why the sorted read is not used, when it is not.
 * @property {string} [token_storage]
 * @property {boolean} [token_storage_fallback] No keychain could keep the secrets, so the private file is in use.
 * @property {string|null} [token_storage_note]
 * @property {Object<string, number>} [unknown_states] Orders in a state this version does not know (state → how many): listed, never alerting, and said, so a renamed result state cannot silently stop alerts.
 * @property {Object<string, string>} [unreadable_orders] The orders among them (id → what was wrong).
 * @property {number} [unseen]
 * @property {(UpdateInfo|null)} [update_available] A newer version found by the daily look at the update feed.
 * @property {string|null} [update_checked_at]
 * @property {string|null} [update_error] Why the last look at the update feed failed, if it did.
 * @property {string|null} [update_installed] The version installed in this run (it takes effect at the next start).
 * @property {string|null} [update_problem] Why the update was not installed.
 * @property {string|null} [watch_mode] With a relay: how results reach this computer, in the window's words ("Live" while pushed, else "Checking every minute"); absent without one (the header is as it always was).
 * @property {boolean} watching
 * @property {string|null} [welcome] After a sign-in, until dismissed: what happened, in words.
 */

