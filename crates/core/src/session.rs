//! The signed-in session: token lifecycle without the user noticing.
//!
//! * Refresh ahead of expiry, and once on a 401.
//! * Single flight: the token slot's async mutex is held across the refresh
//!   call, so concurrent callers share one refresh. Reusing a rotated refresh
//!   token can revoke the whole grant on strict servers, so this matters.
//! * The new pair is written to the secret store *before* the new access
//!   token is handed out: Fullscript keeps the old refresh token valid until
//!   the new access token is first used, so if saving fails we keep the old
//!   pair and nothing is lost.
//! * A refresh rejected with `invalid_grant`/400/401 signs out, once, with a
//!   reason; network failures are retried with backoff and never sign out.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Mutex};

use crate::oauth::{AuthError, OAuthClient, ResourceOwner, TokenSet};
use crate::secret::Secret;
use crate::secret_store::SecretStore;

pub const TOKENS_KEY: &str = "tokens";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthState {
    SignedIn,
    SignedOut { reason: Option<String> },
}

/// What signing out did; local deletion happens even when revocation fails.
#[derive(Debug, Default)]
pub struct SignOutReport {
    pub revoke_errors: Vec<String>,
    pub local_error: Option<String>,
    pub was_signed_in: bool,
}

pub type SignedOutHook = Box<dyn Fn(&str) + Send + Sync>;

pub struct Session {
    oauth: OAuthClient,
    store: Arc<dyn SecretStore>,
    tokens: Mutex<Option<TokenSet>>,
    state: watch::Sender<AuthState>,
    /// Attempts and first delay for refreshes that fail on the network.
    retry_attempts: u32,
    retry_base: Duration,
    on_signed_out: Option<SignedOutHook>,
}

fn rejected_for_good(e: &AuthError) -> bool {
    matches!(e, AuthError::Rejected { status, code, .. }
        if *status == 400 || *status == 401 || code == "invalid_grant" || code == "invalid_client")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Storage(format!("secret store task failed: {e}")))
}

impl Session {
    pub fn new(oauth: OAuthClient, store: Arc<dyn SecretStore>) -> Session {
        let (state, _) = watch::channel(AuthState::SignedOut { reason: None });
        Session {
            oauth,
            store,
            tokens: Mutex::new(None),
            state,
            retry_attempts: 4,
            retry_base: Duration::from_secs(2),
            on_signed_out: None,
        }
    }

    /// Faster retries for tests.
    pub fn with_retry(mut self, attempts: u32, base: Duration) -> Session {
        self.retry_attempts = attempts.max(1);
        self.retry_base = base;
        self
    }

    /// Called (with the reason) whenever Fullscript ends the session.
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

    /// Read saved tokens. `Ok(false)`: nobody is signed in.
    pub async fn load(&self) -> Result<bool, AuthError> {
        let store = self.store.clone();
        let raw = blocking(move || store.get(TOKENS_KEY))
            .await?
            .map_err(|e| AuthError::Storage(e.to_string()))?;
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
        *self.tokens.lock().await = tokens;
        self.state.send_replace(if signed_in {
            AuthState::SignedIn
        } else {
            AuthState::SignedOut { reason: None }
        });
        Ok(signed_in)
    }

    pub async fn is_signed_in(&self) -> bool {
        self.tokens.lock().await.is_some()
    }

    pub async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.tokens.lock().await.as_ref().and_then(|t| t.expires_at)
    }

    pub async fn resource_owner(&self) -> Option<ResourceOwner> {
        self.tokens
            .lock()
            .await
            .as_ref()
            .and_then(|t| t.resource_owner.clone())
    }

    async fn persist(&self, tokens: &TokenSet) -> Result<(), AuthError> {
        let json = serde_json::to_string(tokens).map_err(|e| AuthError::Storage(e.to_string()))?;
        let store = self.store.clone();
        blocking(move || store.set(TOKENS_KEY, &json))
            .await?
            .map_err(|e| AuthError::Storage(e.to_string()))
    }

    /// Keep a freshly exchanged pair (saved first, then used).
    pub async fn complete_login(&self, tokens: TokenSet) -> Result<(), AuthError> {
        let mut slot = self.tokens.lock().await;
        self.persist(&tokens).await?;
        *slot = Some(tokens);
        self.state.send_replace(AuthState::SignedIn);
        tracing::info!(
            storage = self.store.kind().as_str(),
            "signed in to Fullscript"
        );
        Ok(())
    }

    /// A valid access token, refreshed ahead of expiry when needed.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let mut slot = self.tokens.lock().await;
        let Some(current) = slot.as_ref() else {
            return Err(AuthError::SignedOut(self.signed_out_reason()));
        };
        let now = Utc::now();
        if !current.needs_refresh(now) {
            return Ok(current.access_token.clone());
        }
        let still_valid = current
            .remaining(now)
            .is_some_and(|r| r > chrono::Duration::zero());
        let fallback = current.access_token.clone();
        match self.refresh_locked(&mut slot).await {
            Ok(token) => Ok(token),
            // The old token still works for a while: use it, try again later.
            Err(e) if e.is_transient() && still_valid => {
                tracing::warn!(error = %e, "early token refresh failed; using the current token");
                Ok(fallback)
            }
            Err(e) => Err(e),
        }
    }

    /// After a 401 with `rejected`: refresh once, unless another caller already did.
    pub async fn refresh_after_unauthorized(&self, rejected: &Secret) -> Result<Secret, AuthError> {
        let mut slot = self.tokens.lock().await;
        match slot.as_ref() {
            None => return Err(AuthError::SignedOut(self.signed_out_reason())),
            Some(t) if &t.access_token != rejected => return Ok(t.access_token.clone()),
            Some(_) => {}
        }
        self.refresh_locked(&mut slot).await
    }

    fn signed_out_reason(&self) -> String {
        match &*self.state.borrow() {
            AuthState::SignedOut { reason: Some(r) } => r.clone(),
            _ => "not signed in".into(),
        }
    }

    async fn refresh_locked(&self, slot: &mut Option<TokenSet>) -> Result<Secret, AuthError> {
        let Some(refresh) = slot.as_ref().and_then(|t| t.refresh_token.clone()) else {
            let reason = "the saved sign-in cannot be renewed; sign in again".to_string();
            self.end_locally(slot, &reason).await;
            return Err(AuthError::SignedOut(reason));
        };
        let mut delay = self.retry_base;
        let mut attempt = 1;
        loop {
            match self.oauth.refresh(&refresh).await {
                Ok(new) => {
                    // Saved before first use: see the module comment.
                    self.persist(&new).await?;
                    let access = new.access_token.clone();
                    *slot = Some(new);
                    tracing::info!("access token refreshed");
                    return Ok(access);
                }
                Err(e) if rejected_for_good(&e) => {
                    let reason = format!("Fullscript ended the session ({e}); sign in again");
                    self.end_locally(slot, &reason).await;
                    return Err(AuthError::SignedOut(reason));
                }
                Err(e) if attempt < self.retry_attempts => {
                    tracing::warn!(error = %e, attempt, "token refresh failed; retrying");
                    tokio::time::sleep(crate::backoff::jittered(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forget the tokens locally (the server already refused them).
    async fn end_locally(&self, slot: &mut Option<TokenSet>, reason: &str) {
        *slot = None;
        let store = self.store.clone();
        if let Ok(Err(e)) = blocking(move || store.delete(TOKENS_KEY)).await {
            tracing::error!(error = %e, "could not delete the refused tokens");
        }
        tracing::warn!(reason, "signed out");
        self.state.send_replace(AuthState::SignedOut {
            reason: Some(reason.to_string()),
        });
        if let Some(hook) = &self.on_signed_out {
            hook(reason);
        }
    }

    /// The API refused a freshly refreshed token too: the grant is gone.
    pub async fn invalidate(&self, reason: &str) {
        let mut slot = self.tokens.lock().await;
        if slot.is_some() {
            self.end_locally(&mut slot, reason).await;
        }
    }

    /// Revoke both tokens at Fullscript, then delete them here, whatever
    /// the revocation answered.
    pub async fn sign_out(&self) -> SignOutReport {
        let mut slot = self.tokens.lock().await;
        let mut report = SignOutReport {
            was_signed_in: slot.is_some(),
            ..Default::default()
        };
        if let Some(tokens) = slot.take() {
            let mut to_revoke = Vec::new();
            if let Some(r) = &tokens.refresh_token {
                to_revoke.push(("refresh token", r.clone()));
            }
            to_revoke.push(("access token", tokens.access_token.clone()));
            for (what, token) in to_revoke {
                if let Err(e) = self.oauth.revoke(&token).await {
                    report.revoke_errors.push(format!("{what}: {e}"));
                }
            }
        }
        let store = self.store.clone();
        match blocking(move || store.delete(TOKENS_KEY)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.local_error = Some(e.to_string()),
            Err(e) => report.local_error = Some(e.to_string()),
        }
        self.state.send_replace(AuthState::SignedOut {
            reason: Some("signed out".into()),
        });
        tracing::info!(revoke_failures = report.revoke_errors.len(), "signed out");
        report
    }
}
