//! What crosses between the app's processes, defined once: the commands
//! ([`Request`]), the events ([`Event`]) and the views the page reads
//! ([`Snapshot`], [`Settings`], the list's rows from the core).
//!
//! A command is a `Request` variant plus a controller method: the agent's
//! `dispatch` matches every variant (a missing one does not compile), the
//! window forwards a `Request` from the page as it is, and the page's names
//! and JSDoc types (`ui/js/protocol.js`) are generated from these types.

use fsn_core::config::{NotificationDetail, NotifyStates, Region};
use fsn_core::schedule::ClinicHoursSetting;
use fsn_core::StatusReport;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A command to the agent. On the wire: `{"id": 7, "cmd": "mark_seen",
/// "args": {"order_id": "…"}}` (the id is the transport's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case")]
pub enum Request {
    /// The header, banners and status ([`Snapshot`]).
    Snapshot,
    /// Every order at once (small lists, scripts; a long history is refused).
    ListOrders,
    /// The rows the list draws and each group's count.
    ListPage {
        #[serde(default)]
        query: Option<fsn_core::list::ListQuery>,
    },
    /// Open this order's results in the browser (answers the URL opened).
    OpenResults {
        order_id: String,
    },
    MarkSeen {
        order_id: String,
    },
    MarkAllSeen,
    UndoMarkAllSeen,
    CheckNow,
    GetSettings,
    SaveSettings {
        settings: Settings,
    },
    /// `1h`, `4h`, `tomorrow`, … (answers until when).
    PauseNotifications {
        preset: String,
    },
    ResumeNotifications,
    /// The tray's one item.
    PauseOrResume,
    /// Start the sign-in in the browser; what is not given is what the
    /// configuration (or the clinic's defaults) already says.
    SignIn {
        #[serde(default)]
        region: Option<Region>,
        #[serde(default)]
        environment: Option<String>,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        client_secret: Option<String>,
    },
    CancelSignIn,
    SignOut {
        /// Also delete the lab-order history from this computer.
        #[serde(default)]
        erase: bool,
    },
    /// What a window opened by a notification click shows first ([`View`]).
    TakeView,
    CheckForUpdate,
    /// Open the package the updater could not install (on the feed's host only).
    OpenUpdatePackage {
        url: String,
    },
    SendTestNotification,
    SetLaunchAtLogin {
        on: bool,
    },
    DismissWelcome,
    DismissCatchUp,
    /// Show the window (the app was started again, the tray asked).
    ShowWindow,
    /// The window is closing (the first time, the agent says it keeps watching).
    WindowClosed,
    /// One window: bring the open one forward (answers whether there was one).
    FocusOpenWindow,
    /// The app quits (the tray, a restart into an update).
    Quit,
    /// Events from now on; `window` tells the agent a window listens.
    /// Handled by the transport itself.
    Subscribe {
        #[serde(default)]
        window: bool,
    },
}

impl Request {
    /// The command's name on the wire (`mark_seen`).
    pub fn name(&self) -> String {
        #[derive(Deserialize)]
        struct Tag {
            cmd: String,
        }
        serde_json::to_value(self)
            .and_then(serde_json::from_value::<Tag>)
            .map(|t| t.cmd)
            .unwrap_or_default()
    }

    /// May the page send it (through the window)? Not what is about the
    /// connection or the app's processes: subscribing, quitting, the
    /// one-window handshake, the window's own closing.
    pub fn page_may_send(&self) -> bool {
        match self {
            Request::Subscribe { .. }
            | Request::Quit
            | Request::FocusOpenWindow
            | Request::WindowClosed
            | Request::ShowWindow => false,
            Request::Snapshot
            | Request::ListOrders
            | Request::ListPage { .. }
            | Request::OpenResults { .. }
            | Request::MarkSeen { .. }
            | Request::MarkAllSeen
            | Request::UndoMarkAllSeen
            | Request::CheckNow
            | Request::GetSettings
            | Request::SaveSettings { .. }
            | Request::PauseNotifications { .. }
            | Request::ResumeNotifications
            | Request::PauseOrResume
            | Request::SignIn { .. }
            | Request::CancelSignIn
            | Request::SignOut { .. }
            | Request::TakeView
            | Request::CheckForUpdate
            | Request::OpenUpdatePackage { .. }
            | Request::SendTestNotification
            | Request::SetLaunchAtLogin { .. }
            | Request::DismissWelcome
            | Request::DismissCatchUp => true,
        }
    }

    /// Read a command from its wire parts. A command without arguments may
    /// come with `args` absent, `null` or `{}`; anything unreadable is a
    /// clear sentence for the caller (an unknown command, a missing field).
    pub fn from_wire(cmd: &str, args: serde_json::Value) -> Result<Request, String> {
        let empty = match &args {
            serde_json::Value::Null => true,
            serde_json::Value::Object(m) => m.is_empty(),
            _ => false,
        };
        // No arguments: `{}` for a command whose arguments all have
        // defaults, nothing at all for one that takes none.
        let args = if empty { serde_json::json!({}) } else { args };
        match serde_json::from_value::<Request>(serde_json::json!({ "cmd": cmd, "args": args })) {
            Ok(r) => Ok(r),
            Err(e) => {
                if empty {
                    if let Ok(r) = serde_json::from_value(serde_json::json!({ "cmd": cmd })) {
                        return Ok(r);
                    }
                }
                let text = e.to_string();
                Err(if text.starts_with("unknown variant") {
                    format!("unknown command `{cmd}`")
                } else {
                    format!("`{cmd}`: {text}")
                })
            }
        }
    }
}

/// What the agent tells its subscribers (the window; the command line
/// waiting for a sign-in). The page receives each under its name
/// (`state-changed`) with the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "payload", rename_all = "kebab-case")]
pub enum Event {
    /// The header/status changed.
    StateChanged(Box<Snapshot>),
    /// The list changed (the page re-reads it).
    OrdersChanged,
    /// Highlight this order (a notification about it was clicked).
    Highlight { order_id: String },
    /// Show the new, unseen results (a summary was clicked).
    ShowNew,
    /// A sign-in finished.
    SignInFinished { ok: bool, message: String },
    /// Bring the window to the front.
    Show,
    /// The app is quitting: close.
    Quit,
    /// Events were missed (the subscriber fell behind): read everything again.
    Resync,
}

/// An event as the page receives it: its name and its payload.
#[derive(Deserialize)]
struct Parts {
    event: String,
    #[serde(default)]
    payload: serde_json::Value,
}

fn parts<T: Serialize>(event: T) -> (String, serde_json::Value) {
    serde_json::to_value(event)
        .and_then(serde_json::from_value::<Parts>)
        .map(|p| (p.event, p.payload))
        .unwrap_or_default()
}

impl Event {
    /// The event's name and payload, as the page receives them.
    pub fn into_parts(self) -> (String, serde_json::Value) {
        parts(self)
    }
}

/// What the window itself tells the page (it is not the agent's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "payload", rename_all = "kebab-case")]
pub enum WindowEvent {
    /// The agent went away (crashed, killed): the window restarts it.
    AgentGone { message: String },
    /// The agent is back: the page reads everything again.
    AgentBack,
}

impl WindowEvent {
    pub fn into_parts(self) -> (String, serde_json::Value) {
        parts(self)
    }
}

/// What the page's header and banners show: the core's status report plus
/// what only the agent knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    #[serde(flatten)]
    pub report: Option<StatusReport>,
    pub signing_in: bool,
    pub demo: bool,
    pub environments: Vec<String>,
    pub client_id: Option<String>,
    /// The secret came from the environment or the file: the page need not ask.
    pub secret_from_config: bool,
    /// A relay keeps the registration's secret: the page never asks for one.
    pub secret_kept_by_relay: bool,
    /// The country of the configured environment (`us`, `ca`; none for custom).
    pub region: Option<Region>,
    /// The configured environment is a sandbox (said on the first screen).
    pub sandbox: bool,
    /// The registration came from the computer's defaults file (or this
    /// build): the first screen is one button.
    pub registration_preset: bool,
    pub watching: bool,
    /// A problem to show (a bad config file, a keychain failure, …).
    pub error: Option<String>,
}

/// The window's snapshot: the agent's, and the update installed (or not)
/// by this window (the updater plugin lives in the window's process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowSnapshot {
    #[serde(flatten)]
    pub agent: Snapshot,
    /// The version installed in this run (it takes effect at the next start).
    pub update_installed: Option<String>,
    /// Why the update was not installed.
    pub update_problem: Option<String>,
    /// The package can be downloaded and installed by hand.
    pub offer_update_download: bool,
}

/// The settings the page edits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Settings {
    pub poll_interval_secs: u64,
    pub notify_states: NotifyStates,
    /// `full`, `test` or `generic`; when absent, `show_patient_names` decides.
    #[serde(default)]
    pub notification_detail: Option<NotificationDetail>,
    /// `notification_detail == full` (older pages send only this).
    #[serde(default)]
    pub show_patient_names: bool,
    pub sound: bool,
    pub launch_at_login: bool,
    #[serde(default)]
    pub paused_until: Option<String>,
    /// Days and hours; outside them alerts are held for a digest (absent: unchanged).
    #[serde(default)]
    pub clinic_hours: Option<ClinicHoursSetting>,
}

/// What the window shows when it opens because of a notification click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum View {
    /// This order, highlighted.
    Order { order_id: String },
    /// The new, unseen results.
    NewResults,
}

/// The answer to [`Request::SignIn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignInStarted {
    /// Shown for copying, in case the browser did not open.
    pub authorize_url: String,
}

/// The answer to [`Request::SignOut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignedOut {
    /// There was a sign-in to end.
    #[serde(default)]
    pub was_signed_in: bool,
    pub revoke_errors: Vec<String>,
    /// Revocations that failed, retried at the next start.
    pub queued: usize,
    pub local_error: Option<String>,
    pub erased: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_is_the_wire_line_of_today() {
        let r = Request::MarkSeen {
            order_id: "o1".into(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"cmd": "mark_seen", "args": {"order_id": "o1"}})
        );
        assert_eq!(r.name(), "mark_seen");
        assert_eq!(Request::Snapshot.name(), "snapshot");
    }

    #[test]
    fn a_command_without_arguments_may_come_with_empty_or_null_args() {
        for args in [json!({}), json!(null)] {
            assert_eq!(
                Request::from_wire("snapshot", args.clone()),
                Ok(Request::Snapshot)
            );
            assert_eq!(
                Request::from_wire("sign_out", args),
                Ok(Request::SignOut { erase: false })
            );
        }
        assert_eq!(
            Request::from_wire("list_page", json!({})),
            Ok(Request::ListPage { query: None })
        );
    }

    #[test]
    fn an_unknown_command_or_a_missing_argument_is_a_clear_sentence() {
        assert_eq!(
            Request::from_wire("mark_sean", json!({"order_id": "o"})),
            Err("unknown command `mark_sean`".into())
        );
        let e = Request::from_wire("mark_seen", json!({})).unwrap_err();
        assert!(
            e.starts_with("`mark_seen`:") && e.contains("order_id"),
            "{e}"
        );
        let e = Request::from_wire("set_launch_at_login", json!({"on": "yes"})).unwrap_err();
        assert!(e.contains("set_launch_at_login"), "{e}");
    }

    #[test]
    fn an_event_reaches_the_page_under_its_name_with_its_payload() {
        let (name, payload) = Event::Highlight {
            order_id: "o1".into(),
        }
        .into_parts();
        assert_eq!(name, "highlight");
        assert_eq!(payload, json!({"order_id": "o1"}));
        assert_eq!(Event::OrdersChanged.into_parts().0, "orders-changed");
        assert_eq!(Event::Resync.into_parts(), ("resync".into(), json!(null)));
        let (name, payload) = WindowEvent::AgentGone {
            message: "gone".into(),
        }
        .into_parts();
        assert_eq!(name, "agent-gone");
        assert_eq!(payload, json!({"message": "gone"}));
    }
}
