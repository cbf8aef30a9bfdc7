//! Fullscript Lab Notifier's core: everything but the window.
//!
//! Tauri-free and display-free, so it is tested headless. The desktop shell
//! (`src-tauri`) and the CLI call into [`app::App`].

pub mod api;
pub mod app;
pub mod backoff;
pub mod config;
pub mod detect;
pub mod http;
pub mod lab;
pub mod notifier;
pub mod oauth;
pub mod opener;
pub mod policy;
pub mod secret;
pub mod secret_store;
pub mod session;
pub mod store;
pub mod watcher;

pub use app::{Account, App, AppError, StatusReport};
pub use config::{Config, Environment, Paths};
