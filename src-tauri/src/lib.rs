//! Fullscript Lab Notifier's desktop app: the command line, the window app
//! and demo mode, all thin layers over `fsn-core`.

pub mod cli;
pub mod demo;
pub mod gui;
pub mod logging;
