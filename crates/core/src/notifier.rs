//! Showing notifications: the [`Notifier`] trait, and the native desktop
//! implementation on `notify-rust`, used by `watch` and by the window app.
//!
//! Every notification carries a default action ("Open results"); a result's
//! also carries "Mark reviewed" where the daemon shows buttons (freedesktop
//! `actions` capability). A helper thread keeps the notification's D-Bus
//! connection alive and waits for the click, because the daemon sends
//! `ActionInvoked` only to the connection that called `Notify`. The handler
//! (opening results, marking reviewed, showing the window) is supplied by
//! the caller. No GTK is touched here, so headless commands stay
//! headless.
//!
//! macOS and Windows use notify-rust's `wait_for_response`, which maps a body
//! click to `NotificationResponse::Default` on every backend:
//! * Windows (WinRT toasts): the toast carries the app's AppUserModelID
//!   (`app_id`, registered by the installer) and the click arrives through
//!   the toast's `Activated` event on the waiting thread, while the process
//!   lives. Built and run under Wine in CI, where toasts fail (Wine has no
//!   WinRT): the alert stays queued, as designed.
//! * macOS (NSUserNotificationCenter): `show()` only prepares the
//!   notification; the waiting thread hands it to the system and receives
//!   the click, which the system delivers on the main run loop. The window
//!   app runs that loop; `watch` does not, so from `watch` notifications are
//!   shown but clicks are not received. The system attributes notifications
//!   to the bundle identifier of a signed `.app`. Type-checked only in CI.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::APP_NAME;
use crate::policy::{Notification, NotificationAction};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no notification service is available: {0}")]
    Unavailable(String),
}

pub trait Notifier: Send + Sync {
    /// Show one notification. An error means it was *not* shown (the alert
    /// stays in the outbox and is tried again).
    fn show(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// What to do when the practitioner clicks a notification or one of its buttons.
pub type ClickHandler = Arc<dyn Fn(&Notification, NotificationAction) + Send + Sync>;

/// Desktop identity, so the desktop shows the app's name and icon, not
/// "tauri": `desktop_entry` is the installed `.desktop` file's name (the Tauri
/// bundler names it after the product), `app_id` the bundle identifier
/// (Windows' AppUserModelID).
pub struct DesktopNotifier {
    pub app_name: String,
    pub icon: String,
    pub desktop_entry: String,
    pub app_id: String,
    on_click: ClickHandler,
    waiting: Arc<AtomicUsize>,
    /// The daemon's capabilities (asked once; freedesktop only).
    capabilities: std::sync::OnceLock<Vec<String>>,
}

/// Notifications stay clickable until dismissed; past this many still open,
/// the oldest waiters are not kept (their clicks are lost, the list remains).
const MAX_WAITING: usize = 64;

impl DesktopNotifier {
    pub fn new(on_click: ClickHandler) -> DesktopNotifier {
        DesktopNotifier {
            app_name: APP_NAME.to_string(),
            icon: "fullscript-notifier".to_string(),
            desktop_entry: APP_NAME.to_string(),
            app_id: "com.fullscriptlabnotifier.desktop".to_string(),
            on_click,
            waiting: Arc::new(AtomicUsize::new(0)),
            capabilities: std::sync::OnceLock::new(),
        }
    }

    /// The freedesktop daemon's capabilities; `None` off freedesktop.
    fn capabilities(&self) -> Option<&[String]> {
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            let caps = self.capabilities.get_or_init(|| {
                let caps = notify_rust::get_capabilities();
                tracing::debug!(?caps, "notification daemon capabilities");
                // Unknown: treated as markup (escaping is the safe mistake), no buttons.
                caps.unwrap_or_else(|_| vec!["body-markup".into()])
            });
            Some(caps)
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        {
            let _ = &self.capabilities;
            None
        }
    }

    /// freedesktop daemons that advertise `body-markup` interpret `<b>`,
    /// `<a href>`, `<img src>` and entities in the body: ours is escaped
    /// for them. Elsewhere bodies are plain already.
    fn body_markup(&self) -> bool {
        self.capabilities()
            .is_some_and(|c| c.iter().any(|c| c == "body-markup"))
    }

    /// Buttons: on freedesktop only where the daemon says it shows them;
    /// Windows toasts and macOS notifications show them.
    fn shows_buttons(&self) -> bool {
        self.capabilities()
            .is_none_or(|c| c.iter().any(|c| c == "actions"))
    }

    pub fn with_icon(mut self, icon: impl Into<String>) -> DesktopNotifier {
        self.icon = icon.into();
        self
    }

    #[cfg(not(all(target_os = "macos", fsn_typecheck_only)))]
    fn build(&self, n: &Notification) -> notify_rust::Notification {
        use crate::policy::{plain_text, MAX_BODY_CHARS, MAX_SUMMARY_CHARS};
        let mut native = notify_rust::Notification::new();
        // The summary is never markup; the body may be.
        let summary = plain_text(&n.title, MAX_SUMMARY_CHARS, false);
        let body = plain_text(&n.body, MAX_BODY_CHARS, self.body_markup());
        native
            .appname(&self.app_name)
            .summary(&summary)
            .body(&body)
            .icon(&self.icon)
            .action(
                NotificationAction::Open.key(),
                NotificationAction::Open.label(),
            );
        if self.shows_buttons() {
            for a in &n.actions {
                native.action(a.key(), a.label());
            }
        }
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            native.hint(notify_rust::Hint::DesktopEntry(self.desktop_entry.clone()));
            native.hint(notify_rust::Hint::Category("im.received".into()));
            if n.sound {
                native.sound_name("message-new-instant");
            } else {
                native.hint(notify_rust::Hint::SuppressSound(true));
            }
        }
        #[cfg(target_os = "windows")]
        {
            native.app_id(&self.app_id);
            if n.sound {
                native.sound_name("Default");
            }
        }
        #[cfg(target_os = "macos")]
        {
            if n.sound {
                native.sound_name("default");
            }
        }
        native
    }
}

impl Notifier for DesktopNotifier {
    /// A type-check of the macOS build on Linux (`--cfg fsn_typecheck_only`,
    /// never a real build) has no notification backend.
    #[cfg(all(target_os = "macos", fsn_typecheck_only))]
    fn show(&self, _n: &Notification) -> Result<(), NotifyError> {
        let _ = (
            &self.on_click,
            &self.waiting,
            &self.desktop_entry,
            &self.app_id,
            self.body_markup(),
            self.shows_buttons(),
            MAX_WAITING,
        );
        Err(NotifyError::Unavailable(
            "this build has no macOS notification backend".into(),
        ))
    }

    #[cfg(not(all(target_os = "macos", fsn_typecheck_only)))]
    fn show(&self, n: &Notification) -> Result<(), NotifyError> {
        let handle = self
            .build(n)
            .show()
            .map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        // On macOS (NSUserNotificationCenter) the notification is handed to
        // the system by the waiter itself: it must always run.
        let waiter_sends = cfg!(target_os = "macos");
        if !waiter_sends && self.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
            tracing::debug!(
                "too many open notifications; this one is shown without a click handler"
            );
            return Ok(());
        }
        let on_click = self.on_click.clone();
        let waiting = self.waiting.clone();
        let n = n.clone();
        waiting.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("notification-click".into())
            .spawn(move || {
                let _ = handle.wait_for_response(|response: &notify_rust::NotificationResponse| {
                    let action = match response {
                        notify_rust::NotificationResponse::Default => {
                            Some(NotificationAction::Open)
                        }
                        notify_rust::NotificationResponse::Action(key) => {
                            NotificationAction::from_key(key)
                        }
                        _ => None,
                    };
                    if let Some(action) = action {
                        on_click(&n, action);
                    }
                });
                waiting.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Records notifications instead of showing them (tests, and `watch --no-notify`).
#[derive(Default, Clone)]
pub struct RecordingNotifier {
    pub shown: Arc<std::sync::Mutex<Vec<Notification>>>,
    /// When set, every `show` fails (no notification service).
    pub unavailable: Arc<std::sync::atomic::AtomicBool>,
}

impl RecordingNotifier {
    pub fn taken(&self) -> Vec<Notification> {
        std::mem::take(&mut *self.shown.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Notifier for RecordingNotifier {
    fn show(&self, n: &Notification) -> Result<(), NotifyError> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(NotifyError::Unavailable("test: no daemon".into()));
        }
        self.shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(n.clone());
        Ok(())
    }
}
