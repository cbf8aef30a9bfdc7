//! The signed-in session: token lifecycle without the user noticing.
//!
//! * Refresh ahead of expiry, and once on a 401.
//! * Single flight: one refresh at a time (an async gate), so concurrent
//!   callers share one refresh. Reusing a rotated refresh token can revoke
//!   the whole grant on strict servers, so this matters. The tokens
//!   themselves sit behind a plain mutex held for microseconds, so `status`
//!   and the window answer at once even while a refresh hangs.
//! * The new pair is written to the secret store *before* the new access
//!   token is handed out: Fullscript keeps the old refresh token valid until
//!   the new access token is first used, so if saving fails we keep the old
//!   pair and nothing is lost.
//! * Only a real "no" signs out: `invalid_grant` from the token endpoint, or
//!   the API refusing a freshly refreshed token twice in a row.
//!   `invalid_client` means the app's registration changed: the sign-in is
//!   kept and the app says it needs configuration. Anything else (a 400
//!   without a code, 5xx, timeouts) is retried with backoff, one attempt per
//!   call: a failed refresh is remembered until its backoff ends instead of
//!   being retried by every request of a cycle.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex as AsyncMutex};
use tokio::time::Instant;

use crate::oauth::{AuthError, OAuthClient, ResourceOwner, TokenSet};
use crate::secret::Secret;
use crate::secret_store::SecretStore;

pub const TOKENS_KEY: &str = "tokens";
/// Tokens Fullscript could not be told to revoke at sign-out, retried later.
pub const PENDING_REVOCATIONS_KEY: &str = "pending_revocations";
/// How long a refresh token (documented as non-expiring) is retried.
const REFRESH_REVOCATION_RETRY_DAYS: i64 = 30;

/// A token to revoke once Fullscript answers, until it would have expired.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingRevocation {
    token: Secret,
    until: DateTime<Utc>,
}

/// Why nobody is signed in (shown to the practitioner, kept in the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignedOutCause {
    /// The practitioner signed out.
    User,
    /// Fullscript ended the session (revoked, expired, refused).
    Ended { reason: String },
}

impl SignedOutCause {
    /// One sentence for status lines.
    pub fn describe(&self) -> String {
        match self {
            SignedOutCause::User => "signed out".into(),
            SignedOutCause::Ended { reason } => reason.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthState {
    SignedIn,
    SignedOut {
        cause: Option<SignedOutCause>,
    },
    /// Fullscript refused the app's registration (`invalid_client`). The
    /// tokens are kept; fixing the client id or secret resumes watching.
    NeedsConfiguration {
        reason: String,
    },
}

/// What signing out did; local deletion happens even when revocation fails.
#[derive(Debug, Default)]
pub struct SignOutReport {
    pub revoke_errors: Vec<String>,
    /// Tokens that could not be revoked, queued to be retried later.
    pub queued: usize,
    pub local_error: Option<String>,
    pub was_signed_in: bool,
}

pub type SignedOutHook = Box<dyn Fn(&SignedOutCause) + Send + Sync>;

/// A refresh that failed for a reason worth retrying, remembered for its backoff.
#[derive(Default)]
struct RefreshGate {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

pub struct Session {
    oauth: OAuthClient,
    store: Arc<dyn SecretStore>,
    tokens: std::sync::Mutex<Option<TokenSet>>,
    gate: AsyncMutex<RefreshGate>,
    state: watch::Sender<AuthState>,
    /// The API refused a just-refreshed token this many times in a row.
    refused_after_refresh: AtomicU32,
    /// Whether this session knows its state (loaded, signed in or out here).
    loaded: std::sync::atomic::AtomicBool,
    retry_base: Duration,
    retry_cap: Duration,
    on_signed_out: Option<SignedOutHook>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        AuthError::Secrets(crate::secret_store::SecretStoreError::KeychainUnavailable(
            format!("secret store task failed: {e}"),
        ))
    })
}

impl Session {
    pub fn new(oauth: OAuthClient, store: Arc<dyn SecretStore>) -> Session {
        let (state, _) = watch::channel(AuthState::SignedOut { cause: None });
        Session {
            oauth,
            store,
            tokens: std::sync::Mutex::new(None),
            gate: AsyncMutex::new(RefreshGate::default()),
            state,
            refused_after_refresh: AtomicU32::new(0),
            loaded: std::sync::atomic::AtomicBool::new(false),
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(300),
            on_signed_out: None,
        }
    }

    /// Faster retries for tests.
    pub fn with_retry(mut self, base: Duration, cap: Duration) -> Session {
        self.retry_base = base;
        self.retry_cap = cap.max(base);
        self
    }

    /// Called (with the cause) whenever Fullscript ends the session.
    pub fn on_signed_out(mut self, hook: SignedOutHook) -> Session {
        self.on_signed_out = Some(hook);
        self
    }

    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    pub fn storage(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    pub fn subscribe(&self) -> watch::Receiver<AuthState> {
        self.state.subscribe()
    }

    pub fn state(&self) -> AuthState {
        self.state.borrow().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TokenSet>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read saved tokens. `Ok(false)`: nobody is signed in. Waits for a
    /// sign-in, refresh or sign-out in progress, so it never reads tokens
    /// that are about to be replaced or deleted.
    pub async fn load(&self) -> Result<bool, AuthError> {
        let _gate = self.gate.lock().await;
        self.load_unlocked().await
    }

    /// Has this session read (or set) its tokens yet?
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    async fn load_unlocked(&self) -> Result<bool, AuthError> {
        let store = self.store.clone();
        let raw = blocking(move || store.get(TOKENS_KEY)).await??;
        let tokens = match raw {
            None => None,
            Some(json) => match serde_json::from_str::<TokenSet>(&json) {
                Ok(t) => Some(t),
                Err(_) => {
                    tracing::warn!("saved sign-in is unreadable; sign in again");
                    None
                }
            },
        };
        let signed_in = tokens.is_some();
        *self.slot() = tokens;
        self.loaded.store(true, Ordering::SeqCst);
        self.state.send_if_modified(|s| {
            let next = if signed_in {
                AuthState::SignedIn
            } else {
                match s {
                    AuthState::SignedOut { cause } => AuthState::SignedOut {
                        cause: cause.clone(),
                    },
                    _ => AuthState::SignedOut { cause: None },
                }
            };
            let changed = *s != next;
            *s = next;
            changed
        });
        Ok(signed_in)
    }

    pub fn is_signed_in(&self) -> bool {
        self.slot().is_some()
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.slot().as_ref().and_then(|t| t.expires_at)
    }

    pub fn resource_owner(&self) -> Option<ResourceOwner> {
        self.slot().as_ref().and_then(|t| t.resource_owner.clone())
    }

    async fn persist(&self, tokens: &TokenSet) -> Result<(), AuthError> {
        let json =
            serde_json::to_string(tokens).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let store = self.store.clone();
        Ok(blocking(move || store.set(TOKENS_KEY, &json)).await??)
    }

    /// Save refreshed tokens only over the sign-in they were refreshed from:
    /// another process (the window, `login`) may have signed in anew, or
    /// out, meanwhile, and its tokens must not be overwritten.
    async fn persist_refreshed(&self, tokens: &TokenSet) -> Result<(), AuthError> {
        let json =
            serde_json::to_string(tokens).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let ours = tokens.grant_id.clone();
        let store = self.store.clone();
        let saved = blocking(move || {
            store.set_if(TOKENS_KEY, &json, &|current| {
                let theirs = current
                    .and_then(|c| serde_json::from_str::<TokenSet>(c).ok())
                    .map(|t| t.grant_id);
                match theirs {
                    // Signed out elsewhere: nothing to refresh.
                    None => false,
                    Some(theirs) => theirs.is_none() || ours.is_none() || theirs == ours,
                }
            })
        })
        .await??;
        if saved {
            Ok(())
        } else {
            Err(AuthError::SessionReplaced)
        }
    }

    /// The sign-in these tokens belong to (see `TokenSet::grant_id`).
    pub fn grant_id(&self) -> Option<String> {
        self.slot().as_ref().and_then(|t| t.grant_id.clone())
    }

    /// Another process signed out: forget the tokens here too (the store
    /// is theirs to clear) and say why.
    pub fn adopt_sign_out(&self, cause: SignedOutCause) {
        *self.slot() = None;
        self.state
            .send_replace(AuthState::SignedOut { cause: Some(cause) });
    }

    /// Keep a freshly exchanged pair (saved first, then used); answers the
    /// new sign-in's id.
    pub async fn complete_login(&self, mut tokens: TokenSet) -> Result<String, AuthError> {
        let mut gate = self.gate.lock().await;
        let grant_id = format!("{:032x}", rand::random::<u128>());
        tokens.grant_id = Some(grant_id.clone());
        self.persist(&tokens).await?;
        *self.slot() = Some(tokens);
        self.loaded.store(true, Ordering::SeqCst);
        *gate = RefreshGate::default();
        self.refused_after_refresh.store(0, Ordering::Relaxed);
        self.state.send_replace(AuthState::SignedIn);
        tracing::info!(
            storage = self.store.kind().as_str(),
            "signed in to Fullscript"
        );
        Ok(grant_id)
    }

    /// A valid access token, refreshed ahead of expiry when needed.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let now = Utc::now();
        let (token, still_valid) = {
            let slot = self.slot();
            let Some(current) = slot.as_ref() else {
                return Err(self.not_signed_in());
            };
            if !current.needs_refresh(now) {
                return Ok(current.access_token.clone());
            }
            let still_valid = current
                .remaining(now)
                .is_some_and(|r| r > chrono::Duration::zero());
            (current.access_token.clone(), still_valid)
        };
        let mut gate = self.gate.lock().await;
        // Another caller may have refreshed while we waited for the gate.
        if let Some(current) = self.slot().as_ref() {
            if current.access_token != token && !current.needs_refresh(Utc::now()) {
                return Ok(current.access_token.clone());
            }
        }
        match self.refresh_gated(&mut gate).await {
            Ok(fresh) => Ok(fresh),
            // The old token still works for a while: use it, try again later.
            Err(e) if e.is_transient() && still_valid => {
                tracing::warn!(error = %e, "early token refresh failed; using the current token");
                Ok(token)
            }
            Err(e) => Err(e),
        }
    }

    /// After a 401 with `rejected`: refresh once, unless another caller already did.
    pub async fn refresh_after_unauthorized(&self, rejected: &Secret) -> Result<Secret, AuthError> {
        let mut gate = self.gate.lock().await;
        match self.slot().as_ref() {
            None => return Err(self.not_signed_in()),
            Some(t) if &t.access_token != rejected => return Ok(t.access_token.clone()),
            Some(_) => {}
        }
        self.refresh_gated(&mut gate).await
    }

    /// The API refused a token that was just refreshed. Twice in a row means
    /// the grant is gone: sign out. Answers whether it did.
    pub async fn refused_after_refresh(&self) -> bool {
        let n = self.refused_after_refresh.fetch_add(1, Ordering::Relaxed) + 1;
        if n < 2 {
            tracing::warn!("Fullscript refused a just-renewed token; will try again");
            return false;
        }
        let _gate = self.gate.lock().await;
        let cause = SignedOutCause::Ended {
            reason: "Fullscript refused the renewed sign-in twice; sign in again".into(),
        };
        self.end_locally(cause).await;
        true
    }

    /// An API call with the current token succeeded.
    pub fn accepted(&self) {
        self.refused_after_refresh.store(0, Ordering::Relaxed);
    }

    fn not_signed_in(&self) -> AuthError {
        match &*self.state.borrow() {
            AuthState::SignedOut { cause: Some(c) } => AuthError::SignedOut(c.describe()),
            AuthState::NeedsConfiguration { reason } => {
                AuthError::NeedsConfiguration(reason.clone())
            }
            _ => AuthError::SignedOut("not signed in".into()),
        }
    }

    /// One refresh attempt, unless a failed one is still in its backoff.
    async fn refresh_gated(&self, gate: &mut RefreshGate) -> Result<Secret, AuthError> {
        if let Some(at) = gate.retry_at {
            let now = Instant::now();
            if now < at {
                return Err(AuthError::RefreshBackoff {
                    retry_in: at - now,
                    last_error: gate.last_error.clone().unwrap_or_default(),
                });
            }
        }
        let Some(refresh) = self.slot().as_ref().and_then(|t| t.refresh_token.clone()) else {
            let cause = SignedOutCause::Ended {
                reason: "the saved sign-in cannot be renewed; sign in again".into(),
            };
            let text = cause.describe();
            self.end_locally(cause).await;
            return Err(AuthError::SignedOut(text));
        };
        let grant_id = self.grant_id();
        let outcome = match self.oauth.refresh(&refresh).await {
            // Saved before first use: see the module comment.
            Ok(mut new) => {
                new.grant_id = grant_id;
                match self.persist_refreshed(&new).await {
                    Ok(()) => Ok(new),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(new) => {
                let access = new.access_token.clone();
                *self.slot() = Some(new);
                *gate = RefreshGate::default();
                self.state.send_if_modified(|s| {
                    let was = matches!(s, AuthState::SignedIn);
                    *s = AuthState::SignedIn;
                    !was
                });
                tracing::info!("access token refreshed");
                Ok(access)
            }
            Err(AuthError::Rejected { ref code, .. }) if code == "invalid_grant" => {
                let reason = format!(
                    "Fullscript ended the session ({}); sign in again",
                    outcome
                        .as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                );
                self.end_locally(SignedOutCause::Ended {
                    reason: reason.clone(),
                })
                .await;
                Err(AuthError::SignedOut(reason))
            }
            Err(AuthError::SessionReplaced) => {
                // Follow the other process's sign-in (or sign-out).
                tracing::info!(
                    "the sign-in was replaced by another window or command; following it"
                );
                if let Err(e) = self.load_unlocked().await {
                    tracing::warn!(error = %e, "could not read the new sign-in");
                }
                Err(AuthError::SessionReplaced)
            }
            Err(e @ AuthError::Rejected { .. }) if e.is_client_rejected() => {
                let reason = format!(
                    "Fullscript refused this app's registration ({e}); check the client id and secret"
                );
                tracing::error!(error = %e, "the app's registration was refused; the sign-in is kept");
                self.state.send_replace(AuthState::NeedsConfiguration {
                    reason: reason.clone(),
                });
                self.remember_failure(gate, &e, true);
                Err(AuthError::NeedsConfiguration(reason))
            }
            Err(e) => {
                self.remember_failure(gate, &e, false);
                tracing::warn!(error = %e, failures = gate.failures, "token refresh failed; will retry");
                Err(e)
            }
        }
    }

    fn remember_failure(&self, gate: &mut RefreshGate, e: &AuthError, long: bool) {
        gate.failures = gate.failures.saturating_add(1);
        let exp = gate.failures.saturating_sub(1).min(16);
        let delay = if long {
            self.retry_cap
        } else {
            self.retry_base.saturating_mul(1 << exp).min(self.retry_cap)
        };
        gate.retry_at = Instant::now().checked_add(crate::backoff::jittered(delay));
        gate.last_error = Some(e.to_string());
    }

    /// Forget the tokens locally (the server refused them for good).
    async fn end_locally(&self, cause: SignedOutCause) {
        *self.slot() = None;
        let store = self.store.clone();
        if let Ok(Err(e)) = blocking(move || store.delete(TOKENS_KEY)).await {
            tracing::error!(error = %e, "could not delete the refused tokens");
        }
        tracing::warn!(reason = %cause.describe(), "signed out");
        self.state.send_replace(AuthState::SignedOut {
            cause: Some(cause.clone()),
        });
        if let Some(hook) = &self.on_signed_out {
            hook(&cause);
        }
    }

    /// Revoke both tokens at Fullscript, then delete them here, whatever
    /// the revocation answered. Tokens Fullscript could not be told about
    /// are in the report, for a later retry.
    pub async fn sign_out(&self) -> SignOutReport {
        let _gate = self.gate.lock().await;
        let taken = self.slot().take();
        self.loaded.store(true, Ordering::SeqCst);
        let mut report = SignOutReport {
            was_signed_in: taken.is_some(),
            ..Default::default()
        };
        let mut unrevoked = Vec::new();
        if let Some(tokens) = taken {
            let now = Utc::now();
            let mut to_revoke = Vec::new();
            if let Some(r) = &tokens.refresh_token {
                let until = now
                    .checked_add_signed(chrono::Duration::days(REFRESH_REVOCATION_RETRY_DAYS))
                    .unwrap_or(now);
                to_revoke.push(("refresh token", r.clone(), until));
            }
            let access_until = tokens
                .expires_at
                .unwrap_or_else(|| now + chrono::Duration::hours(2));
            to_revoke.push(("access token", tokens.access_token.clone(), access_until));
            for (what, token, until) in to_revoke {
                if let Err(e) = self.oauth.revoke(&token).await {
                    report.revoke_errors.push(format!("{what}: {e}"));
                    if e.is_transient() || matches!(e, AuthError::Server { .. }) {
                        unrevoked.push(PendingRevocation { token, until });
                    }
                }
            }
        }
        if !unrevoked.is_empty() {
            report.queued = unrevoked.len();
            if let Err(e) = self.add_pending_revocations(unrevoked).await {
                tracing::error!(error = %e, "could not queue the revocations to retry");
                report.queued = 0;
            }
        }
        let store = self.store.clone();
        match blocking(move || store.delete(TOKENS_KEY)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.local_error = Some(e.to_string()),
            Err(e) => report.local_error = Some(e.to_string()),
        }
        self.state.send_replace(AuthState::SignedOut {
            cause: Some(SignedOutCause::User),
        });
        tracing::info!(revoke_failures = report.revoke_errors.len(), "signed out");
        report
    }

    async fn pending_revocations(&self) -> Result<Vec<PendingRevocation>, AuthError> {
        let store = self.store.clone();
        let raw = blocking(move || store.get(PENDING_REVOCATIONS_KEY)).await??;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    async fn save_pending_revocations(&self, list: &[PendingRevocation]) -> Result<(), AuthError> {
        let store = self.store.clone();
        if list.is_empty() {
            return Ok(blocking(move || store.delete(PENDING_REVOCATIONS_KEY)).await??);
        }
        let json = serde_json::to_string(list).map_err(|e| AuthError::Malformed(e.to_string()))?;
        Ok(blocking(move || store.set(PENDING_REVOCATIONS_KEY, &json)).await??)
    }

    async fn add_pending_revocations(&self, more: Vec<PendingRevocation>) -> Result<(), AuthError> {
        let mut list = self.pending_revocations().await?;
        list.extend(more);
        self.save_pending_revocations(&list).await
    }

    /// Try again to revoke what Fullscript could not be told at sign-out
    /// (called at every start). A token past its retry time is dropped;
    /// answers how many are still waiting.
    pub async fn retry_pending_revocations(&self) -> usize {
        let list = match self.pending_revocations().await {
            Ok(l) if !l.is_empty() => l,
            _ => return 0,
        };
        let now = Utc::now();
        let mut left = Vec::new();
        for p in list {
            if p.until < now {
                continue;
            }
            match self.oauth.revoke(&p.token).await {
                Ok(()) => tracing::info!("a revocation left over from signing out went through"),
                // Already unknown to Fullscript: nothing left to revoke.
                Err(AuthError::Rejected { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a revocation left over from signing out failed again; will retry");
                    left.push(p);
                }
            }
        }
        let n = left.len();
        if let Err(e) = self.save_pending_revocations(&left).await {
            tracing::warn!(error = %e, "could not update the queued revocations");
        }
        n
    }
}
