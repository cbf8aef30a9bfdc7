//! A local stand-in for Fullscript's OAuth and lab-order API.
//!
//! The real API cannot be reached from development and CI machines (and needs
//! an app approved by Fullscript), so every test and the demo run against this
//! simulator. It follows `shared/fullscript-api.md`; where Fullscript's real
//! behaviour is unknown, it picks the most plausible shape, listed here (the
//! README's "Simulator assumptions" section repeats this list):
//!
//! * **Lab order fields** (unknown): `id`, `name`, `state`, `patient_id`,
//!   `practitioner_id`, the patient's `first_name`/`last_name`/`email` (as in
//!   the webhook subset), `lab_company.name`, `created_at`, `updated_at`,
//!   `tests[] {id, name}` and `results[] {id, name, created_at, updated_at,
//!   amended, pdf_url?}`.
//! * **List root key** (unknown): `lab_orders`; events: `events`. Both can be
//!   switched (`orders`, `lab_order_events`) through [`ApiShape`], and the
//!   client accepts either.
//! * **Detail root**: `{"lab_order": {…}}`; clinic `{"clinic": {…}}`, patient
//!   `{"patient": {…}}`, lab test `{"lab_test": {…}}` (R1's wrapper style).
//! * **Default page size** (unknown): 20; `page[size]` is capped at the documented 100.
//! * **Events**: each item carries `data.lab_order` with the webhook subset and
//!   the legacy status names, as the webhook payload does. `created_at` filters
//!   compare whole UTC days: `>d` is strictly after day d.
//! * **401 body** (unknown): `{"error": "The access token expired"}` (or
//!   invalid/revoked/missing) with a `WWW-Authenticate: Bearer …` header, as
//!   Doorkeeper answers.
//! * **429 body** (unknown): `{"error": "Too many requests"}` with
//!   `Retry-After` in seconds.
//! * **Token errors** (unknown): standard OAuth `{"error", "error_description"}`;
//!   `invalid_client` (401) for a wrong id or secret, `invalid_grant` (400) for
//!   an unknown, reused, expired or mismatched code or refresh token.
//! * **Refresh grace**: the old refresh token (and its access token) stays
//!   valid until the new access token is first used (documented).
//! * **Revocation** kills both tokens of the pair (unknown whether Fullscript does).
//! * **Result documents** (unknown): an optional `pdf_url` on a result, only
//!   when a test asks for one; otherwise "open results" uses the configured
//!   results page, served here at `/labs/orders/{id}`.
//! * **PKCE** (undocumented): an S256 `code_challenge` is remembered and
//!   checked when the token request carries a `code_verifier`.

// Handlers return early with a ready `Response` as their error; boxing it
// would only add noise to a test tool.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod control;
pub mod faults;
pub mod fixture;
pub mod oauth;
pub mod pages;
pub mod scenario;
pub mod state;
pub mod webhooks;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{delete, get, post, put};
use axum::Router;

pub use control::SimControl;
pub use faults::{FaultKind, FaultSpec};
pub use scenario::Scenario;
pub use state::{
    ApiShape, LabOrder, NewOrder, OrdersSort, Patient, RequestLogEntry, DOCUMENTED_STATES,
};

/// The client id, secret and redirect URI the simulator accepts by default
/// (the demo and the README use these).
pub const DEMO_CLIENT_ID: &str = "fsn-demo-client";
pub const DEMO_CLIENT_SECRET: &str = "fsn-demo-secret";
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:47821/callback";

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// 0 picks a free port.
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
    /// The one registered redirect URI; authorize requests must match it exactly.
    pub redirect_uri: String,
    /// Skip the consent page and redirect at once (for scripts).
    pub auto_approve: bool,
    pub access_token_ttl: Duration,
    pub code_ttl: Duration,
    /// Requests allowed per rolling `rate_window` (documented: 5000 per 5 minutes).
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub scenario: Scenario,
    /// How often the demo scenario moves an order.
    pub demo_step: Duration,
    /// Deliver `lab_order.updated` webhooks there (signed, with the handshake).
    pub webhook: Option<webhooks::WebhookConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: DEMO_CLIENT_SECRET.into(),
            redirect_uri: DEFAULT_REDIRECT_URI.into(),
            auto_approve: false,
            access_token_ttl: Duration::from_secs(7200),
            code_ttl: Duration::from_secs(600),
            rate_limit: 5000,
            rate_window: state::default_rate_window(),
            scenario: Scenario::Empty,
            demo_step: Duration::from_secs(6),
            webhook: None,
        }
    }
}

/// The world behind one mutex. Never held across an `.await`.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<state::World>>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, state::World> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    control: SimControl,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub fn router(shared: Shared) -> Router {
    let api = Router::new()
        .route("/api/oauth/authorize", get(oauth::authorize))
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/api/oauth/authorize/decision", post(oauth::decide))
        .route("/oauth/authorize/decision", post(oauth::decide))
        .route("/api/oauth/token", post(oauth::token))
        .route("/api/oauth/revoke", post(oauth::revoke))
        .route("/api/clinic", get(api::clinic))
        .route("/api/clinic/labs/orders", get(api::list_orders))
        .route("/api/clinic/labs/orders/{id}", get(api::get_order))
        .route("/api/clinic/labs/tests/{id}", get(api::get_lab_test))
        .route("/api/clinic/patients/{id}", get(api::get_patient))
        .route("/api/clinic/practitioners/{id}", get(api::get_practitioner))
        .route("/api/events/lab_orders", get(api::lab_order_events))
        .route("/", get(pages::index))
        .route("/labs", get(pages::labs_index))
        .route("/labs/orders/{id}", get(pages::results_page))
        .route("/labs/documents/{name}", get(pages::document))
        .route("/_sim/state", get(control::state))
        .route("/_sim/patients", post(control::add_patient))
        .route("/_sim/orders", post(control::add_order))
        .route("/_sim/orders/bulk", post(control::add_bulk))
        .route("/_sim/orders/{id}", delete(control::remove_order))
        .route("/_sim/orders/{id}/state", post(control::set_state))
        .route("/_sim/orders/{id}/amend", post(control::amend))
        .route("/_sim/orders/{id}/corrupt", post(control::corrupt))
        .route("/_sim/shape", put(control::put_shape))
        .route("/_sim/tokens", get(control::tokens))
        .route("/_sim/tokens/expire", post(control::expire_tokens))
        .route("/_sim/tokens/issue", post(control::issue_token))
        .route("/_sim/tokens/revoke_all", post(control::revoke_all))
        .route("/_sim/clock/advance", post(control::advance_clock))
        .route("/_sim/webhooks", get(control::webhooks))
        .route(
            "/_sim/faults",
            post(control::add_fault)
                .get(control::list_faults)
                .delete(control::clear_faults),
        )
        .route(
            "/_sim/requests",
            get(control::requests).delete(control::clear_requests),
        )
        .fallback(|| async { oauth::not_found() });
    api.layer(axum::middleware::from_fn_with_state(
        shared.clone(),
        faults::middleware,
    ))
    .with_state(shared)
}

impl Simulator {
    /// Bind 127.0.0.1 (never a public interface) and serve on the current Tokio runtime.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
        let addr = listener.local_addr()?;
        let scenario = config.scenario;
        let demo_step = config.demo_step;
        let webhook = config.webhook.clone();
        let mut world = state::World::new(config);
        world.base_url = format!("http://{addr}");
        scenario::seed(&mut world, scenario);
        let shared = Shared(Arc::new(Mutex::new(world)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        let mut tasks = vec![tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator stopped");
            }
        })];
        if let Some(w) = webhook {
            let from = shared.lock().events.len();
            tasks.push(tokio::spawn(webhooks::run(shared.clone(), w, from)));
        }
        if scenario == Scenario::Demo {
            tasks.push(tokio::spawn(scenario::run_demo(shared.clone(), demo_step)));
        }
        tracing::info!(%addr, scenario = scenario.name(), "Fullscript simulator listening");
        Ok(Simulator {
            addr,
            control: SimControl { shared },
            shutdown: Some(tx),
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn control(&self) -> &SimControl {
        &self.control
    }

    /// Stop serving and wait until the port is released.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}
