//! Fullscript Lab Notifier's one protocol between its processes (the
//! background agent, the window, the command line, and through the window
//! the page): the typed commands and events ([`Request`], [`Event`]), the
//! views they carry ([`Snapshot`], [`Settings`], the core's list types), the
//! transport over the agent's private control endpoint, and the helpers
//! that start the app's other processes.
//!
//! The model is Firezone's GUI client: one definition shared by both
//! sides, an exhaustive match on the serving side. The page's names and
//! JSDoc types (`ui/js/protocol.js`) are generated from these types
//! ([`js`]); a test fails when the committed file is stale.

pub mod js;
pub mod launch;
pub mod messages;
pub mod transport;

pub use messages::{
    Event, Request, Settings, SignInStarted, SignedOut, Snapshot, View, WindowEvent, WindowSnapshot,
};
pub use transport::{CallError, Client, Endpoint, Handler, Hub, Listener};
