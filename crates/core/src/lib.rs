//! Fullscript Lab Notifier's core: everything but the window.
//!
//! Tauri-free and display-free, so it is tested headless. The desktop shell
//! (`src-tauri`) and the CLI call into [`app::App`].

pub mod api;
pub mod app;
pub mod app_state;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod detect;
pub mod files;
pub mod http;
pub mod lab;
pub mod list;
pub mod notifier;
pub mod oauth;
pub mod opener;
pub mod policy;
pub mod push;
pub mod schedule;
pub mod secret;
pub mod secret_store;
pub mod server_clock;
pub mod session;
pub mod status;
pub mod store;
pub mod supervise;
pub mod timestamp;
pub mod update;
pub mod urls;
pub mod watcher;

pub use api::Account;
pub use app::{App, AppError, StatusReport};
pub use config::{Config, Environment, Paths};
