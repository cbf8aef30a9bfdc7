//! The tray, without GTK: on Linux a StatusNotifierItem over D-Bus (`ksni`,
//! pure Rust), with the unseen count in its tooltip and title and an icon
//! with a red dot. Desktops without a tray host (GNOME without the
//! AppIndicator extension) show nothing; the window stays reachable by
//! starting the app again. Every item is one call into the controller.
//! Elsewhere the agent runs without a tray for now (see the README).

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

    pub fn pause_label(&self) -> &'static str {
        if self.paused {
            "Resume notifications"
        } else {
            "Pause notifications for 1 hour"
        }
    }
}

/// Start the tray (answers `None` where there is none).
pub async fn spawn(
    ctl: Arc<Controller>,
    agent: Arc<dyn AgentControl>,
) -> Option<Arc<dyn TrayView>> {
    #[cfg(target_os = "linux")]
    {
        linux::spawn(ctl, agent).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (ctl, agent);
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use ksni::TrayMethods;

    fn pixmap(png: &[u8]) -> Vec<ksni::Icon> {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let Ok(mut reader) = decoder.read_info() else {
            return Vec::new();
        };
        let Some(size) = reader.output_buffer_size() else {
            return Vec::new();
        };
        let mut buf = vec![0; size];
        let Ok(info) = reader.next_frame(&mut buf) else {
            return Vec::new();
        };
        if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
            return Vec::new();
        }
        // RGBA → ARGB32 in network byte order, as the specification asks.
        let mut data = buf[..info.buffer_size()].to_vec();
        for px in data.chunks_exact_mut(4) {
            px.rotate_right(1);
        }
        vec![ksni::Icon {
            width: i32::try_from(info.width).unwrap_or(0),
            height: i32::try_from(info.height).unwrap_or(0),
            data,
        }]
    }

    pub struct Tray {
        ctl: Arc<Controller>,
        agent: Arc<dyn AgentControl>,
        state: TrayState,
        icon: Vec<ksni::Icon>,
        icon_unseen: Vec<ksni::Icon>,
    }

    impl Tray {
        fn run(
            &self,
            f: impl FnOnce(
                    Arc<Controller>,
                )
                    -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
                + Send
                + 'static,
        ) {
            let ctl = self.ctl.clone();
            tokio::spawn(f(ctl));
        }
    }

    impl ksni::Tray for Tray {
        fn id(&self) -> String {
            "fullscript-notifier".into()
        }

        fn title(&self) -> String {
            match self.state.unseen {
                0 => "Fullscript Lab Notifier".into(),
                n => format!("Fullscript Lab Notifier ({n})"),
            }
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
            self.ctl.show_window();
        }

        fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
            use ksni::menu::StandardItem;
            let item = |label: &str, activate: Box<dyn Fn(&mut Self) + Send>| {
                StandardItem {
                    label: label.into(),
                    activate,
                    ..Default::default()
                }
                .into()
            };
            let mut items: Vec<ksni::MenuItem<Self>> = vec![
                item("Open", Box::new(|t: &mut Self| t.ctl.show_window())),
                item(
                    "Check now",
                    Box::new(|t: &mut Self| {
                        t.run(|c| {
                            Box::pin(async move {
                                let _ = c.check_now().await;
                            })
                        })
                    }),
                ),
                item(
                    self.state.pause_label(),
                    Box::new(|t: &mut Self| {
                        t.run(|c| Box::pin(async move {
                            if let Err(e) = c.pause_or_resume().await {
                                tracing::warn!(error = %e, "could not pause or resume notifications");
                            }
                        }))
                    }),
                ),
                ksni::MenuItem::Separator,
            ];
            match &self.state.update {
                Some(text) => items.push(item(text, Box::new(|t: &mut Self| t.ctl.show_window()))),
                None => items.push(
                    StandardItem {
                        label: "No update available".into(),
                        enabled: false,
                        ..Default::default()
                    }
                    .into(),
                ),
            }
            items.push(ksni::MenuItem::Separator);
            items.push(item(
                "Sign out",
                Box::new(|t: &mut Self| {
                    t.run(|c| {
                        Box::pin(async move {
                            let _ = c.sign_out(false).await;
                            c.show_window();
                        })
                    })
                }),
            ));
            items.push(item("Quit", Box::new(|t: &mut Self| t.agent.quit())));
            items
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
            state: TrayState::default(),
            icon: pixmap(include_bytes!("../../../icons/tray.png")),
            icon_unseen: pixmap(include_bytes!("../../../icons/tray-unseen.png")),
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
