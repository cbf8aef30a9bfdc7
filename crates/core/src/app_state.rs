//! The app's own small state, apart from lab orders, events and alerts:
//! who is signed in (and why nobody is), the pause, the watcher's last
//! status for `status` in another process, the notices shown once, the
//! last look at the update feed. Kept in the local database's `meta` table
//! so that it shares the database's transactions and its erase; this module
//! is its one typed owner, so the store itself knows nothing of accounts,
//! sessions or the watcher.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::Account;
use crate::session::SignedOutCause;
use crate::status::WatchStatus;
use crate::store::{ts, Meta, Store, StoreError};
use crate::update::UpdateState;

/// The state, read and written through the store it lives in.
#[derive(Clone, Copy)]
pub struct AppState<'a> {
    store: &'a Store,
}

/// What the erase leaves behind: "signed out by the user", so a watcher
/// anywhere that still holds tokens stops, and a check in flight is not
/// written back.
pub fn signed_out_by_user_mark() -> String {
    serde_json::to_string(&SignedOutCause::User).unwrap_or_else(|_| "null".into())
}

impl<'a> AppState<'a> {
    pub fn of(store: &'a Store) -> AppState<'a> {
        AppState { store }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: Meta) -> Result<Option<T>, StoreError> {
        Ok(self
            .store
            .meta_get(key)?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    fn put_json<T: Serialize>(&self, key: Meta, value: &T) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.store.meta_put(key, Some(&text))
    }

    fn time(&self, key: Meta) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .store
            .meta_get(key)?
            .and_then(|s| crate::timestamp::parse_str(&s)))
    }

    fn put_time(&self, key: Meta, at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.store.meta_put(key, at.map(ts).as_deref())
    }

    /// Who is signed in, to which clinic.
    pub fn account(&self) -> Result<Option<Account>, StoreError> {
        self.json(Meta::Account)
    }

    pub fn set_account(&self, account: &Account) -> Result<(), StoreError> {
        self.put_json(Meta::Account, account)
    }

    /// Why the session ended (shown until the next sign-in).
    pub fn signed_out_reason(&self) -> Result<Option<SignedOutCause>, StoreError> {
        let Some(raw) = self.store.meta_get(Meta::SignedOutReason)? else {
            return Ok(None);
        };
        // Older versions stored a bare sentence.
        Ok(Some(
            serde_json::from_str(&raw).unwrap_or(SignedOutCause::Ended { reason: raw }),
        ))
    }

    pub fn set_signed_out_reason(&self, cause: Option<&SignedOutCause>) -> Result<(), StoreError> {
        match cause {
            Some(c) => self.put_json(Meta::SignedOutReason, c),
            None => self.store.meta_put(Meta::SignedOutReason, None),
        }
    }

    /// Notifications paused until then.
    pub fn paused_until(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.time(Meta::PausedUntil)
    }

    pub fn set_paused_until(&self, until: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.put_time(Meta::PausedUntil, until)
    }

    /// When the current pause began.
    pub fn paused_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.time(Meta::PausedAt)
    }

    pub fn set_paused_at(&self, at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.put_time(Meta::PausedAt, at)
    }

    /// Results since then are offered as "N results since …".
    pub fn catch_up_since(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.time(Meta::CatchUpSince)
    }

    pub fn set_catch_up_since(&self, since: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.put_time(Meta::CatchUpSince, since)
    }

    /// The watcher's last status, for `status` from another process.
    pub fn watch_status(&self) -> Result<Option<WatchStatus>, StoreError> {
        self.json(Meta::WatchStatus)
    }

    pub fn set_watch_status(&self, status: &WatchStatus) -> Result<(), StoreError> {
        self.put_json(Meta::WatchStatus, status)
    }

    /// The relay's sequence of the last pushed event that was handled.
    pub fn push_last_event_id(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .store
            .meta_get(Meta::PushLastEventId)?
            .and_then(|v| v.trim().parse().ok()))
    }

    pub fn set_push_last_event_id(&self, id: u64) -> Result<(), StoreError> {
        self.store
            .meta_put(Meta::PushLastEventId, Some(id.to_string().as_str()))
    }

    /// The newest update the last complete read saw (see `Meta::SweepMark`).
    pub fn sweep_mark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.time(Meta::SweepMark)
    }

    pub fn set_sweep_mark(&self, at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.put_time(Meta::SweepMark, at)
    }

    /// A sign-in finished and its welcome has not been dismissed.
    pub fn welcome_pending(&self) -> Result<bool, StoreError> {
        Ok(self.store.meta_get(Meta::WelcomePending)?.is_some())
    }

    pub fn set_welcome_pending(&self, pending: bool) -> Result<(), StoreError> {
        self.store
            .meta_put(Meta::WelcomePending, pending.then_some("1"))
    }

    /// True the first time it is asked (then remembered): the "still
    /// running in the tray" notice is shown once.
    pub fn first_time_still_running(&self) -> Result<bool, StoreError> {
        if self.store.meta_get(Meta::ToldStillRunning)?.is_some() {
            return Ok(false);
        }
        self.store.meta_put(Meta::ToldStillRunning, Some("1"))?;
        Ok(true)
    }

    /// The last look at the update feed.
    pub fn update_state(&self) -> Result<Option<UpdateState>, StoreError> {
        self.json(Meta::Update)
    }

    pub fn set_update_state(&self, state: &UpdateState) -> Result<(), StoreError> {
        self.put_json(Meta::Update, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_piece_of_state_reads_back_what_was_written_and_clears() {
        let store = Store::open_in_memory().unwrap();
        let s = AppState::of(&store);
        assert_eq!(s.paused_until().unwrap(), None);
        let at = crate::timestamp::parse_str("2026-12-03T10:00:00Z").unwrap();
        s.set_paused_until(Some(at)).unwrap();
        assert_eq!(s.paused_until().unwrap(), Some(at));
        s.set_paused_until(None).unwrap();
        assert_eq!(s.paused_until().unwrap(), None);
        assert!(s.first_time_still_running().unwrap());
        assert!(!s.first_time_still_running().unwrap(), "once");
        s.set_signed_out_reason(Some(&SignedOutCause::User))
            .unwrap();
        assert_eq!(s.signed_out_reason().unwrap(), Some(SignedOutCause::User));
        s.set_welcome_pending(true).unwrap();
        assert!(s.welcome_pending().unwrap());
    }

    #[test]
    fn an_old_bare_sentence_as_the_sign_out_reason_still_reads() {
        let store = Store::open_in_memory().unwrap();
        store
            .meta_put(Meta::SignedOutReason, Some("Fullscript ended the sign-in"))
            .unwrap();
        assert_eq!(
            AppState::of(&store).signed_out_reason().unwrap(),
            Some(SignedOutCause::Ended {
                reason: "Fullscript ended the sign-in".into()
            })
        );
    }

    #[test]
    fn the_erase_leaves_signed_out_by_the_user() {
        let store = Store::open_in_memory().unwrap();
        store.erase(&signed_out_by_user_mark()).unwrap();
        assert_eq!(
            AppState::of(&store).signed_out_reason().unwrap(),
            Some(SignedOutCause::User)
        );
    }
}
