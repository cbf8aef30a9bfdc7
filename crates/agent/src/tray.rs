//! The tray, without GTK or a webview. On Linux a StatusNotifierItem over
//! D-Bus (`ksni`, pure Rust); on Windows and macOS the `tray-icon` crate on
//! the platform's own event loop (a thread of its own on Windows, the main
//! thread on macOS). The unseen count is in the title/tooltip and the icon
//! has a red dot. Desktops without a tray host (GNOME without the
//! AppIndicator extension) show nothing; the window stays reachable by
//! starting the app again. Every item is one [`TrayAction`], one call into
//! the controller.

use std::sync::Arc;

use crate::controller::{Controller, Snapshot};
use crate::dispatch::AgentControl;
use crate::shell::TrayView;

/// What the menu and the icon show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrayState {
    pub signed_in: bool,
    pub unseen: usize,
    pub paused: bool,
    /// "Update available: 0.2.0" (the item opens the window).
    pub update: Option<String>,
}

impl TrayState {
    pub fn from_snapshot(s: &Snapshot) -> TrayState {
        let r = s.report.as_ref();
        TrayState {
            signed_in: r.is_some_and(|r| r.signed_in),
            unseen: r.map_or(0, |r| r.unseen),
            paused: r.is_some_and(|r| r.paused_until.is_some()),
            update: r
                .and_then(|r| r.update_available.as_ref())
                .map(|u| format!("Update available: {}", u.version)),
        }
    }

    /// "Fullscript Lab Notifier: 2 new results".
    pub fn tooltip(&self) -> String {
        let status = if !self.signed_in {
            "signed out".to_string()
        } else {
            match self.unseen {
                0 => "no new results".to_string(),
                1 => "1 new result".to_string(),
                n => format!("{n} new results"),
            }
        };
        format!("Fullscript Lab Notifier: {status}")
    }

    /// "Fullscript Lab Notifier (2)".
    pub fn title(&self) -> String {
        match self.unseen {
            0 => "Fullscript Lab Notifier".into(),
            n => format!("Fullscript Lab Notifier ({n})"),
        }
    }

    pub fn pause_label(&self) -> &'static str {
        if self.paused {
            "Resume notifications"
        } else {
            "Pause notifications for 1 hour"
        }
    }
}

/// What a tray item (or a click on the icon) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    Open,
    CheckNow,
    PauseOrResume,
    SignOut,
    Quit,
}

/// Do it (from the tray's thread: the work runs on the agent's runtime).
fn act(
    action: TrayAction,
    ctl: &Arc<Controller>,
    agent: &Arc<dyn AgentControl>,
    rt: &tokio::runtime::Handle,
) {
    let ctl = ctl.clone();
    match action {
        TrayAction::Open => ctl.show_window(),
        TrayAction::Quit => agent.quit(),
        TrayAction::CheckNow => {
            rt.spawn(async move {
                let _ = ctl.check_now().await;
            });
        }
        TrayAction::PauseOrResume => {
            rt.spawn(async move {
                if let Err(e) = ctl.pause_or_resume().await {
                    tracing::warn!(error = %e, "could not pause or resume notifications");
                }
            });
        }
        TrayAction::SignOut => {
            rt.spawn(async move {
                let _ = ctl.sign_out(false).await;
                ctl.show_window();
            });
        }
    }
}

/// The menu, top to bottom: its label and what it does (`None`: shown
/// disabled); `None` is a separator.
fn menu_items(state: &TrayState) -> Vec<Option<(String, Option<TrayAction>)>> {
    vec![
        Some(("Open".into(), Some(TrayAction::Open))),
        Some(("Check now".into(), Some(TrayAction::CheckNow))),
        Some((state.pause_label().into(), Some(TrayAction::PauseOrResume))),
        None,
        Some(match &state.update {
            // "Update available: 0.2.0" opens the window, where it installs.
            Some(text) => (text.clone(), Some(TrayAction::Open)),
            None => ("No update available".into(), None),
        }),
        None,
        Some(("Sign out".into(), Some(TrayAction::SignOut))),
        Some(("Quit".into(), Some(TrayAction::Quit))),
    ]
}

/// An icon as RGBA pixels: (data, width, height).
#[cfg_attr(
    not(any(target_os = "linux", windows, target_os = "macos")),
    allow(dead_code)
)]
fn rgba(png: &[u8]) -> Option<(Vec<u8>, u32, u32)> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut buf).ok()?;
    if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
        return None;
    }
    buf.truncate(info.buffer_size());
    Some((buf, info.width, info.height))
}

const ICON: &[u8] = include_bytes!("../../../icons/tray.png");
const ICON_UNSEEN: &[u8] = include_bytes!("../../../icons/tray-unseen.png");

/// Start the tray (answers `None` where there is none).
pub async fn spawn(
    ctl: Arc<Controller>,
    agent: Arc<dyn AgentControl>,
) -> Option<Arc<dyn TrayView>> {
    #[cfg(target_os = "linux")]
    {
        linux::spawn(ctl, agent).await
    }
    #[cfg(windows)]
    {
        windows::spawn(ctl, agent).await
    }
    #[cfg(target_os = "macos")]
    {
        macos::spawn(ctl, agent).await
    }
    #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
    {
        let _ = (ctl, agent);
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use ksni::TrayMethods;

    /// RGBA → ARGB32 in network byte order, as the specification asks.
    fn pixmap(png: &[u8]) -> Vec<ksni::Icon> {
        let Some((mut data, width, height)) = rgba(png) else {
            return Vec::new();
        };
        for px in data.chunks_exact_mut(4) {
            px.rotate_right(1);
        }
        vec![ksni::Icon {
            width: i32::try_from(width).unwrap_or(0),
            height: i32::try_from(height).unwrap_or(0),
            data,
        }]
    }

    pub struct Tray {
        ctl: Arc<Controller>,
        agent: Arc<dyn AgentControl>,
        rt: tokio::runtime::Handle,
        state: TrayState,
        icon: Vec<ksni::Icon>,
        icon_unseen: Vec<ksni::Icon>,
    }

    impl ksni::Tray for Tray {
        fn id(&self) -> String {
            "fullscript-notifier".into()
        }

        fn title(&self) -> String {
            self.state.title()
        }

        fn icon_pixmap(&self) -> Vec<ksni::Icon> {
            if self.state.unseen > 0 {
                self.icon_unseen.clone()
            } else {
                self.icon.clone()
            }
        }

        fn tool_tip(&self) -> ksni::ToolTip {
            ksni::ToolTip {
                title: self.state.tooltip(),
                ..Default::default()
            }
        }

        /// A click on the icon (where the host reports one): the window.
        fn activate(&mut self, _x: i32, _y: i32) {
            act(TrayAction::Open, &self.ctl, &self.agent, &self.rt);
        }

        fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
            use ksni::menu::StandardItem;
            menu_items(&self.state)
                .into_iter()
                .map(|item| match item {
                    None => ksni::MenuItem::Separator,
                    Some((label, action)) => StandardItem {
                        label,
                        enabled: action.is_some(),
                        activate: Box::new(move |t: &mut Self| {
                            if let Some(a) = action {
                                act(a, &t.ctl, &t.agent, &t.rt);
                            }
                        }),
                        ..Default::default()
                    }
                    .into(),
                })
                .collect()
        }
    }

    struct View(ksni::Handle<Tray>);

    impl TrayView for View {
        fn update(&self, snapshot: &Snapshot) {
            let state = TrayState::from_snapshot(snapshot);
            let handle = self.0.clone();
            tokio::spawn(async move {
                handle
                    .update(|t| {
                        t.state = state;
                    })
                    .await;
            });
        }
    }

    pub async fn spawn(
        ctl: Arc<Controller>,
        agent: Arc<dyn AgentControl>,
    ) -> Option<Arc<dyn TrayView>> {
        let tray = Tray {
            ctl,
            agent,
            rt: tokio::runtime::Handle::current(),
            state: TrayState::default(),
            icon: pixmap(ICON),
            icon_unseen: pixmap(ICON_UNSEEN),
        };
        // Without a tray host now, keep the item: one may start later.
        match tray.assume_sni_available(true).spawn().await {
            Ok(handle) => Some(Arc::new(View(handle))),
            Err(e) => {
                tracing::info!(error = %e, "no tray: the window opens by starting the app again");
                None
            }
        }
    }
}

/// `tray-icon` (Windows, macOS): the icon and its menu live on the thread
/// that runs the platform's event loop; menu clicks arrive through the
/// crate's global handlers, which may run anywhere.
#[cfg(any(windows, target_os = "macos"))]
mod native {
    use super::*;
    use tray_icon::menu::{Menu, MenuEvent, MenuId, MenuItem, PredefinedMenuItem};
    use tray_icon::{
        Icon, MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent,
    };

    fn icon(png: &[u8]) -> Option<Icon> {
        let (data, w, h) = rgba(png)?;
        Icon::from_rgba(data, w, h).ok()
    }

    /// The icon and its items (not `Send`: kept on the event loop's thread).
    pub struct Items {
        tray: TrayIcon,
        items: Vec<MenuItem>,
        icon: Option<Icon>,
        icon_unseen: Option<Icon>,
    }

    impl Items {
        /// Build the icon and its menu, and route clicks to `act`.
        pub fn build(
            ctl: Arc<Controller>,
            agent: Arc<dyn AgentControl>,
            rt: tokio::runtime::Handle,
        ) -> Result<Items, String> {
            let state = TrayState::default();
            let menu = Menu::new();
            let mut items = Vec::new();
            let mut routes: Vec<(MenuId, TrayAction)> = Vec::new();
            for item in menu_items(&state) {
                match item {
                    None => menu
                        .append(&PredefinedMenuItem::separator())
                        .map_err(|e| e.to_string())?,
                    Some((label, action)) => {
                        let i = MenuItem::new(label, action.is_some(), None);
                        menu.append(&i).map_err(|e| e.to_string())?;
                        if let Some(a) = action {
                            routes.push((i.id().clone(), a));
                        }
                        items.push(i);
                    }
                }
            }
            let icon_normal = icon(ICON);
            let mut builder = TrayIconBuilder::new()
                .with_menu(Box::new(menu))
                .with_menu_on_left_click(false)
                .with_tooltip(state.tooltip());
            if let Some(i) = icon_normal.clone() {
                builder = builder.with_icon(i);
            }
            let tray = builder.build().map_err(|e| e.to_string())?;
            {
                let (ctl, agent, rt) = (ctl.clone(), agent.clone(), rt.clone());
                MenuEvent::set_event_handler(Some(move |e: MenuEvent| {
                    // "Update available" opens the window like "Open".
                    if let Some((_, a)) = routes.iter().find(|(id, _)| *id == e.id) {
                        act(*a, &ctl, &agent, &rt);
                    }
                }));
            }
            TrayIconEvent::set_event_handler(Some(move |e: TrayIconEvent| {
                if let TrayIconEvent::Click {
                    button: MouseButton::Left,
                    button_state: MouseButtonState::Up,
                    ..
                } = e
                {
                    act(TrayAction::Open, &ctl, &agent, &rt);
                }
            }));
            Ok(Items {
                tray,
                items,
                icon: icon_normal,
                icon_unseen: icon(ICON_UNSEEN),
            })
        }

        /// Show `state`: tooltip, icon, the pause and update items' words.
        /// (The update item's action was fixed at build: it opens the window
        /// either way, and is disabled while there is no update.)
        pub fn apply(&self, state: &TrayState) {
            let _ = self.tray.set_tooltip(Some(state.tooltip()));
            let icon = if state.unseen > 0 {
                self.icon_unseen.clone()
            } else {
                self.icon.clone()
            };
            let _ = self.tray.set_icon(icon);
            #[cfg(target_os = "macos")]
            self.tray.set_title(Some(state.title()));
            let labelled: Vec<_> = menu_items(state).into_iter().flatten().collect();
            for (item, (label, action)) in self.items.iter().zip(labelled) {
                item.set_text(label);
                item.set_enabled(action.is_some());
            }
        }
    }
}

/// Windows: the tray's own thread runs a message loop; updates are queued
/// to it and a thread message wakes it.
#[cfg(windows)]
mod windows {
    use super::*;
    use std::sync::mpsc;
    use windows_sys::Win32::System::Threading::GetCurrentThreadId;
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        DispatchMessageW, GetMessageW, PeekMessageW, PostThreadMessageW, TranslateMessage, MSG,
        PM_NOREMOVE, WM_APP, WM_USER,
    };

    /// "Updates are waiting" (a thread message: no window).
    const WAKE: u32 = WM_APP + 1;

    struct View {
        tx: std::sync::Mutex<mpsc::Sender<TrayState>>,
        thread_id: u32,
    }

    impl TrayView for View {
        fn update(&self, snapshot: &Snapshot) {
            let sent = self
                .tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(TrayState::from_snapshot(snapshot));
            if sent.is_ok() {
                // SAFETY: posting a message to a thread id has no memory effects here.
                unsafe { PostThreadMessageW(self.thread_id, WAKE, 0, 0) };
            }
        }
    }

    pub async fn spawn(
        ctl: Arc<Controller>,
        agent: Arc<dyn AgentControl>,
    ) -> Option<Arc<dyn TrayView>> {
        let rt = tokio::runtime::Handle::current();
        let (ready_tx, ready_rx) =
            tokio::sync::oneshot::channel::<Result<Arc<dyn TrayView>, String>>();
        let started = std::thread::Builder::new()
            .name("tray".into())
            .spawn(move || {
                // SAFETY: MSG is plain data; the calls get valid pointers to it.
                let mut msg: MSG = unsafe { std::mem::zeroed() };
                // The thread's message queue exists from its first such call,
                // before anyone may post to it.
                unsafe {
                    PeekMessageW(
                        &mut msg,
                        std::ptr::null_mut(),
                        WM_USER,
                        WM_USER,
                        PM_NOREMOVE,
                    )
                };
                let items = match native::Items::build(ctl, agent, rt) {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (tx, rx) = mpsc::channel::<TrayState>();
                let view = View {
                    tx: std::sync::Mutex::new(tx),
                    thread_id: unsafe { GetCurrentThreadId() },
                };
                let _ = ready_tx.send(Ok(Arc::new(view)));
                loop {
                    let got = unsafe { GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) };
                    if got <= 0 {
                        break;
                    }
                    if msg.hwnd.is_null() && msg.message == WAKE {
                        while let Ok(state) = rx.try_recv() {
                            items.apply(&state);
                        }
                        continue;
                    }
                    unsafe {
                        TranslateMessage(&msg);
                        DispatchMessageW(&msg);
                    }
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no tray: its thread could not start");
            return None;
        }
        match ready_rx.await {
            Ok(Ok(view)) => Some(view),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "no tray: the window opens by starting the app again");
                None
            }
            Err(_) => None,
        }
    }
}

/// macOS: the tray (and notification clicks) need the main thread's run
/// loop, so the agent runs on another thread ([`run_with_main_loop`]) and
/// the tray's work is sent to the main queue.
#[cfg(target_os = "macos")]
pub mod macos {
    use super::*;
    use dispatch2::DispatchQueue;
    use std::cell::RefCell;
    use std::process::ExitCode;

    thread_local! {
        static ITEMS: RefCell<Option<native::Items>> = const { RefCell::new(None) };
    }

    /// Run `agent` on a thread of its own while this (main) thread runs the
    /// application's run loop (no Dock icon); the process ends with the agent.
    pub fn run_with_main_loop(agent: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
        use objc2::MainThreadMarker;
        use objc2_app_kit::{NSApplication, NSApplicationActivationPolicy};
        let Some(mtm) = MainThreadMarker::new() else {
            return agent();
        };
        let worker = std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || {
                let code = agent();
                std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
            });
        if let Err(e) = worker {
            eprintln!("error: cannot start the agent's thread: {e}");
            return ExitCode::from(1);
        }
        let app = NSApplication::sharedApplication(mtm);
        app.setActivationPolicy(NSApplicationActivationPolicy::Accessory);
        app.run();
        ExitCode::SUCCESS
    }

    struct View;

    impl TrayView for View {
        fn update(&self, snapshot: &Snapshot) {
            let state = TrayState::from_snapshot(snapshot);
            DispatchQueue::main().exec_async(move || {
                ITEMS.with(|i| {
                    if let Some(items) = &*i.borrow() {
                        items.apply(&state);
                    }
                });
            });
        }
    }

    pub async fn spawn(
        ctl: Arc<Controller>,
        agent: Arc<dyn AgentControl>,
    ) -> Option<Arc<dyn TrayView>> {
        let rt = tokio::runtime::Handle::current();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        DispatchQueue::main().exec_async(move || {
            let built = native::Items::build(ctl, agent, rt).map(|items| {
                ITEMS.with(|i| *i.borrow_mut() = Some(items));
            });
            let _ = ready_tx.send(built);
        });
        match ready_rx.await {
            Ok(Ok(())) => Some(Arc::new(View)),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "no tray");
                None
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tray_says_how_many_results_are_new_and_offers_resume_while_paused() {
        let mut s = TrayState {
            signed_in: true,
            unseen: 2,
            ..Default::default()
        };
        assert_eq!(s.tooltip(), "Fullscript Lab Notifier: 2 new results");
        assert_eq!(s.pause_label(), "Pause notifications for 1 hour");
        s.paused = true;
        assert_eq!(s.pause_label(), "Resume notifications");
        s.signed_in = false;
        assert_eq!(s.tooltip(), "Fullscript Lab Notifier: signed out");
    }
}
