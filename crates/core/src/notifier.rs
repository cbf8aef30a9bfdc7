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
use std::time::Duration;

use crate::config::APP_NAME;
use crate::policy::{BodyRules, Notification, NotificationAction};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no notification service is available: {0}")]
    Unavailable(String),
    /// The desktop's notification service took the call and never
    /// answered (a hung daemon): the alert stays queued.
    #[error("the notification service did not answer within {0} s")]
    NotAnswering(u64),
}

pub trait Notifier: Send + Sync {
    /// Show one notification. An error means it was *not* shown (the alert
    /// stays in the outbox and is tried again).
    fn show(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// What to do when the practitioner clicks a notification or one of its buttons.
pub type ClickHandler = Arc<dyn Fn(&Notification, NotificationAction) + Send + Sync>;

/// How long one call into the desktop's notification service (show, its
/// capabilities) may take. notify-rust's D-Bus calls have no timeout of
/// their own: a daemon that takes a call and never answers would otherwise
/// hold the watcher forever.
pub const DESKTOP_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls that timed out stay blocked in their threads until the daemon
/// answers (or the bus gives up); past this many, calls fail at once
/// instead of starting more threads, but for one probe every
/// [`PROBE_WHILE_STUCK`]: a daemon that recovers without ever answering
/// the calls it dropped is found again (never silent for good), and the
/// threads left waiting grow by a few an hour at most.
const MAX_UNANSWERED_CALLS: usize = 4;
const PROBE_WHILE_STUCK: Duration = Duration::from_secs(10 * 60);

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
    /// Calls into the daemon that have not returned yet.
    unanswered: Arc<AtomicUsize>,
    /// The last call let through while too many were unanswered.
    last_probe: std::sync::Mutex<Option<std::time::Instant>>,
    timeout: Duration,
    /// The daemon's capabilities (asked until it answers once; freedesktop only).
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
            unanswered: Arc::new(AtomicUsize::new(0)),
            last_probe: std::sync::Mutex::new(None),
            timeout: DESKTOP_CALL_TIMEOUT,
            capabilities: std::sync::OnceLock::new(),
        }
    }

    /// Run a call into the desktop on a thread of its own and wait for it
    /// at most the notifier's timeout. `f` gets a way to hand its answer
    /// back and may go on afterwards (waiting for the click).
    fn call_desktop<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&dyn Fn(T)) + Send + 'static,
    ) -> Result<T, NotifyError> {
        let timeout_secs = self.timeout.as_secs();
        if self.unanswered.load(Ordering::SeqCst) >= MAX_UNANSWERED_CALLS {
            let mut last = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < PROBE_WHILE_STUCK) {
                return Err(NotifyError::NotAnswering(timeout_secs));
            }
            *last = Some(std::time::Instant::now());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<T>(1);
        let unanswered = self.unanswered.clone();
        unanswered.fetch_add(1, Ordering::SeqCst);
        let thread_unanswered = unanswered.clone();
        let spawned = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // Counted out exactly once, when the daemon answered (or
                // the call ended without answering).
                let answered = std::sync::atomic::AtomicBool::new(false);
                let answer = |value: T| {
                    if !answered.swap(true, Ordering::SeqCst) {
                        thread_unanswered.fetch_sub(1, Ordering::SeqCst);
                    }
                    let _ = tx.try_send(value);
                };
                f(&answer);
                if !answered.swap(true, Ordering::SeqCst) {
                    thread_unanswered.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if let Err(e) = spawned {
            unanswered.fetch_sub(1, Ordering::SeqCst);
            return Err(NotifyError::Unavailable(format!(
                "could not start a thread: {e}"
            )));
        }
        match rx.recv_timeout(self.timeout) {
            Ok(v) => Ok(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    call = name,
                    "the notification service did not answer in time"
                );
                Err(NotifyError::NotAnswering(timeout_secs))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(NotifyError::Unavailable(
                "the notification service call ended without an answer".into(),
            )),
        }
    }

    /// How the daemon reads a body: from its freedesktop capabilities
    /// (asked once it answers; while it does not, the safest rules);
    /// plain text off freedesktop.
    fn body_rules(&self) -> (BodyRules, bool) {
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            let caps = match self.capabilities.get() {
                Some(c) => Some(c.clone()),
                None => match self.call_desktop("notification-capabilities", |answer| {
                    answer(notify_rust::get_capabilities().map_err(|e| e.to_string()))
                }) {
                    Ok(Ok(caps)) => {
                        tracing::debug!(?caps, "notification daemon capabilities");
                        let _ = self.capabilities.set(caps.clone());
                        Some(caps)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "the notification daemon's capabilities are unknown");
                        None
                    }
                    Err(_) => None,
                },
            };
            match caps {
                Some(c) => (
                    BodyRules::for_capabilities(&c),
                    c.iter().any(|c| c == "actions"),
                ),
                // Unknown: nothing in the body may come alive, no buttons.
                None => (BodyRules::UNKNOWN, false),
            }
        }
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        {
            // Windows toasts and macOS notifications read plain text and show buttons.
            let _ = &self.capabilities;
            (BodyRules::PLAIN, true)
        }
    }

    pub fn with_icon(mut self, icon: impl Into<String>) -> DesktopNotifier {
        self.icon = icon.into();
        self
    }

    /// Wait at most `timeout` for each call into the desktop (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> DesktopNotifier {
        self.timeout = timeout;
        self
    }

    #[cfg(not(all(target_os = "macos", fsn_typecheck_only)))]
    fn build(&self, n: &Notification) -> notify_rust::Notification {
        use crate::policy::{body_text, plain_text, MAX_BODY_CHARS, MAX_SUMMARY_CHARS};
        let (rules, shows_buttons) = self.body_rules();
        let mut native = notify_rust::Notification::new();
        // The summary is never markup (and gets no tags either).
        let summary = plain_text(
            &crate::policy::strip_tags(&n.title),
            MAX_SUMMARY_CHARS,
            false,
        );
        let body = body_text(&n.body, MAX_BODY_CHARS, rules);
        native
            .appname(&self.app_name)
            .summary(&summary)
            .body(&body)
            .icon(&self.icon)
            .action(
                NotificationAction::Open.key(),
                NotificationAction::Open.label(),
            );
        if shows_buttons {
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
            self.body_rules(),
            MAX_WAITING,
        );
        let _ = self.call_desktop("notification", |answer: &dyn Fn(())| answer(()));
        Err(NotifyError::Unavailable(
            "this build has no macOS notification backend".into(),
        ))
    }

    /// Shown on a thread of its own, which then waits for the click: the
    /// daemon sends `ActionInvoked` only to the connection that called
    /// `Notify`. The caller waits for the daemon's answer at most the
    /// timeout; a late answer means the alert may be shown twice (the only
    /// duplicate allowed: better twice than never).
    #[cfg(not(all(target_os = "macos", fsn_typecheck_only)))]
    fn show(&self, n: &Notification) -> Result<(), NotifyError> {
        let native = self.build(n);
        // On macOS (NSUserNotificationCenter) the notification is handed to
        // the system by the waiter itself: it must always run.
        let waiter_sends = cfg!(target_os = "macos");
        let on_click = self.on_click.clone();
        let waiting = self.waiting.clone();
        let n = n.clone();
        self.call_desktop("notification", move |answer| {
            let handle = match native.show() {
                Ok(h) => h,
                Err(e) => return answer(Err(NotifyError::Unavailable(e.to_string()))),
            };
            answer(Ok(()));
            if !waiter_sends && waiting.load(Ordering::Relaxed) >= MAX_WAITING {
                tracing::debug!(
                    "too many open notifications; this one is shown without a click handler"
                );
                return;
            }
            waiting.fetch_add(1, Ordering::Relaxed);
            let _ = handle.wait_for_response(|response: &notify_rust::NotificationResponse| {
                let action = match response {
                    notify_rust::NotificationResponse::Default => Some(NotificationAction::Open),
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
        })?
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

    /// What was shown so far (kept).
    pub fn seen(&self) -> Vec<Notification> {
        self.shown.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};

    #[test]
    fn a_hung_daemon_bounds_the_waiting_threads_is_probed_again_and_found_when_it_answers() {
        let n = DesktopNotifier::new(Arc::new(|_, _| {})).with_timeout(Duration::from_millis(50));
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let ran = Arc::new(AtomicUsize::new(0));
        let hang = || {
            let release = release.clone();
            let ran = ran.clone();
            move |answer: &dyn Fn(())| {
                ran.fetch_add(1, Ordering::SeqCst);
                let (lock, cv) = &*release;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = cv.wait(go).unwrap();
                }
                answer(());
            }
        };
        for _ in 0..MAX_UNANSWERED_CALLS {
            assert!(matches!(
                n.call_desktop("test", hang()),
                Err(NotifyError::NotAnswering(_))
            ));
        }
        // Too many waiting: one probe goes through, the next fails at once.
        assert!(n.call_desktop("test", hang()).is_err());
        assert_eq!(ran.load(Ordering::SeqCst), MAX_UNANSWERED_CALLS + 1);
        assert!(n.call_desktop("test", hang()).is_err());
        assert_eq!(
            ran.load(Ordering::SeqCst),
            MAX_UNANSWERED_CALLS + 1,
            "no new thread"
        );
        // The daemon answers the calls it held: calls go through again.
        {
            let (lock, cv) = &*release;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        let start = std::time::Instant::now();
        while n.unanswered.load(Ordering::SeqCst) > 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(n
            .call_desktop("test", |answer: &dyn Fn(u8)| answer(7))
            .is_ok_and(|v| v == 7));
    }
}
