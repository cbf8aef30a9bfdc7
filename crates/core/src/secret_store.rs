//! Where tokens and the client secret live: the OS keychain through
//! `keyring` (Secret Service on Linux, Keychain on macOS, Credential Manager on
//! Windows), or, where no keychain can keep them, a file readable only by the
//! user (mode 0600) in the data directory. Which one is in use is always
//! visible (`status`, the UI, the log).
//!
//! In `auto` mode the two are combined ([`AutoStore`]), deciding per call:
//! * no keychain at all (no Secret Service on the bus, no D-Bus session):
//!   the private file, and say so;
//! * a keychain that answers but refuses to store (no unlocked collection and
//!   no prompter, as in minimal window managers and SSH/X sessions): the
//!   sign-in is kept in the private file, and the note says how to use the
//!   keychain instead;
//! * a keychain that does not answer in time (a locked KWallet prompting at
//!   log-in): an error ("keychain locked"), retried later; a slow keychain
//!   never quietly switches the run to the file, which would make the
//!   practitioner appear signed out;
//! * once the keychain works, secrets found in the file move into it and the
//!   file is deleted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::config::{TokenStorageChoice, APP_DIR};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Keychain,
    File,
}

impl StorageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Keychain => "keychain",
            StorageKind::File => "file",
        }
    }
}

/// A failure of the place secrets are kept (not of Fullscript, not of the database).
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// No keychain exists in this session (nothing to wait for).
    #[error("no system keychain is available: {0}")]
    KeychainAbsent(String),
    /// A keychain answered but would not read or store (locked, no collection).
    #[error("the system keychain refused: {0}")]
    KeychainRefused(String),
    #[error("the system keychain is not available: {0}")]
    KeychainUnavailable(String),
    #[error("the system keychain did not answer within {}s (it may be locked and waiting for you to unlock it)", .0.as_secs())]
    KeychainTimeout(Duration),
    #[error("secrets file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl SecretStoreError {
    /// The keychain is there but not usable right now: worth retrying.
    pub fn is_keychain_locked(&self) -> bool {
        matches!(
            self,
            SecretStoreError::KeychainTimeout(_) | SecretStoreError::KeychainRefused(_)
        )
    }
}

/// A small key/value store for secrets.
pub trait SecretStore: Send + Sync {
    fn kind(&self) -> StorageKind;
    fn get(&self, key: &str) -> Result<Option<String>, SecretStoreError>;
    fn set(&self, key: &str, value: &str) -> Result<(), SecretStoreError>;
    fn delete(&self, key: &str) -> Result<(), SecretStoreError>;
    /// Set `key` only if its current value passes `check`; answers whether
    /// it was set. Atomic across processes for the file; keychains offer no
    /// transactions, so there it is a read then a write.
    fn set_if(
        &self,
        key: &str,
        value: &str,
        check: &dyn Fn(Option<&str>) -> bool,
    ) -> Result<bool, SecretStoreError> {
        if !check(self.get(key)?.as_deref()) {
            return Ok(false);
        }
        self.set(key, value)?;
        Ok(true)
    }
    /// Why this store was chosen, for status lines (e.g. "no keychain answered").
    fn note(&self) -> Option<String> {
        None
    }
    /// True when a keychain was wanted but the file is in use (worth a warning).
    fn is_fallback(&self) -> bool {
        false
    }
}

/// The OS keychain. Calls run on a helper thread with a timeout, because a
/// locked or absent Secret Service can otherwise block (a prompt nobody
/// sees). Writes are serialised and numbered: a write that timed out here
/// but completes later in its thread can never put an older value (an
/// older refresh token) back over a newer one.
pub struct KeychainStore {
    /// Prefix of every entry's user name, so several environments/apps never collide.
    namespace: String,
    timeout: Duration,
    write_lock: Arc<Mutex<()>>,
    next_write: AtomicU64,
    written: Arc<Mutex<HashMap<String, u64>>>,
}

const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// keyring's errors carry the platform's; tell "no keychain here" from
/// "a keychain that says no" by what the platform said.
fn classify(e: &keyring::Error) -> SecretStoreError {
    let text = describe_keyring_error(e);
    match e {
        keyring::Error::NoDefaultStore => SecretStoreError::KeychainAbsent(text),
        keyring::Error::NoStorageAccess(_) => SecretStoreError::KeychainRefused(text),
        keyring::Error::PlatformFailure(inner) => {
            let detail = inner.to_string().to_ascii_lowercase();
            let absent = [
                "no secret service provider",
                "serviceunknown",
                "service unknown",
                "not provided by any .service",
                "no such file",
                "connection refused",
                "dbus session",
                "address",
            ]
            .iter()
            .any(|needle| detail.contains(needle));
            if absent {
                SecretStoreError::KeychainAbsent(text)
            } else {
                SecretStoreError::KeychainUnavailable(text)
            }
        }
        _ => SecretStoreError::KeychainUnavailable(text),
    }
}

/// keyring errors can carry platform detail; never the secret.
fn describe_keyring_error(e: &keyring::Error) -> String {
    match e {
        keyring::Error::NoStorageAccess(inner) => format!("no access to the keychain ({inner})"),
        keyring::Error::PlatformFailure(inner) => format!("keychain failure ({inner})"),
        keyring::Error::NoDefaultStore => "no keychain is installed or running".into(),
        keyring::Error::BadEncoding(_) => "an entry is not text".into(),
        keyring::Error::BadDataFormat(_, _) => "an entry is unreadable".into(),
        other => other.to_string(),
    }
}

impl KeychainStore {
    pub fn new(namespace: &str) -> KeychainStore {
        KeychainStore {
            namespace: namespace.to_string(),
            timeout: KEYCHAIN_TIMEOUT,
            write_lock: Arc::new(Mutex::new(())),
            next_write: AtomicU64::new(1),
            written: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn user(&self, key: &str) -> String {
        format!("{}/{}", self.namespace, key)
    }

    fn wait<T>(&self, rx: mpsc::Receiver<keyring::Result<T>>) -> Result<T, SecretStoreError> {
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(SecretStoreError::KeychainTimeout(self.timeout)),
        }
    }

    fn read<T: Send + 'static>(
        &self,
        key: &str,
        op: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<T, SecretStoreError> {
        let user = self.user(key);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("keychain".into())
            .spawn(move || {
                let _ = tx.send(keyring::Entry::new(APP_DIR, &user).and_then(op));
            })
            .map_err(|e| SecretStoreError::KeychainUnavailable(e.to_string()))?;
        self.wait(rx)
    }

    /// A write, in order with every other write of this store.
    fn write(
        &self,
        key: &str,
        op: impl FnOnce(keyring::Entry) -> keyring::Result<()> + Send + 'static,
    ) -> Result<(), SecretStoreError> {
        let user = self.user(key);
        let seq = self.next_write.fetch_add(1, Ordering::SeqCst);
        let lock = self.write_lock.clone();
        let written = self.written.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("keychain-write".into())
            .spawn(move || {
                let _serial = lock.lock().unwrap_or_else(|p| p.into_inner());
                let newer_done = written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&user)
                    .is_some_and(|done| *done > seq);
                let result = if newer_done {
                    // A later write of this key already landed: this one is stale.
                    Ok(())
                } else {
                    let r = keyring::Entry::new(APP_DIR, &user).and_then(op);
                    if r.is_ok() {
                        written
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(user, seq);
                    }
                    r
                };
                let _ = tx.send(result);
            })
            .map_err(|e| SecretStoreError::KeychainUnavailable(e.to_string()))?;
        self.wait(rx)
    }

    /// Does a keychain answer at all? (Reads an entry that need not exist.)
    pub fn probe(&self) -> Result<(), SecretStoreError> {
        self.get("probe").map(|_| ())
    }
}

impl SecretStore for KeychainStore {
    fn kind(&self) -> StorageKind {
        StorageKind::Keychain
    }

    fn get(&self, key: &str) -> Result<Option<String>, SecretStoreError> {
        self.read(key, |entry| match entry.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn set(&self, key: &str, value: &str) -> Result<(), SecretStoreError> {
        let value = value.to_string();
        self.write(key, move |entry| entry.set_password(&value))
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        self.write(key, |entry| match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        })
    }
}

/// A JSON file of secrets, mode 0600, written atomically under an advisory
/// lock shared by every process of the app (the window, `watch`, `login`).
pub struct FileStore {
    path: PathBuf,
    namespace: String,
    note: Option<String>,
    lock: Mutex<()>,
}

impl FileStore {
    pub fn new(data_dir: &Path, namespace: &str, note: Option<String>) -> FileStore {
        FileStore {
            path: data_dir.join("secrets.json"),
            namespace: namespace.to_string(),
            note,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> SecretStoreError {
        SecretStoreError::File {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Run `f` holding this process's lock and the cross-process file lock.
    fn locked<T>(
        &self,
        f: impl FnOnce() -> Result<T, SecretStoreError>,
    ) -> Result<T, SecretStoreError> {
        let _in_process = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let lock_path = self.path.with_extension("lock");
        if let Some(dir) = lock_path.parent() {
            crate::files::ensure_private_dir(dir).map_err(|e| self.err(e.to_string()))?;
        }
        let file = {
            let mut o = std::fs::OpenOptions::new();
            o.create(true).truncate(false).write(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            o.open(&lock_path)
                .map_err(|e| self.err(format!("lock: {e}")))?
        };
        file.lock().map_err(|e| self.err(format!("lock: {e}")))?;
        let out = f();
        let _ = file.unlock();
        out
    }

    fn read(&self) -> Result<BTreeMap<String, String>, SecretStoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| self.err(format!("unreadable ({e})")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    fn write(&self, map: &BTreeMap<String, String>) -> Result<(), SecretStoreError> {
        if map.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.err(e.to_string())),
            };
        }
        let bytes = serde_json::to_vec_pretty(map).map_err(|e| self.err(e.to_string()))?;
        crate::files::write_atomic(&self.path, &bytes, 0o600).map_err(|e| self.err(e.to_string()))
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}/{}", self.namespace, key)
    }

    /// This namespace's entries (key → value), for moving them into the keychain.
    fn entries(&self) -> Result<Vec<(String, String)>, SecretStoreError> {
        let prefix = format!("{}/", self.namespace);
        self.locked(|| {
            Ok(self
                .read()?
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v)))
                .collect())
        })
    }
}

impl SecretStore for FileStore {
    fn kind(&self) -> StorageKind {
        StorageKind::File
    }

    fn get(&self, key: &str) -> Result<Option<String>, SecretStoreError> {
        self.locked(|| Ok(self.read()?.get(&self.full_key(key)).cloned()))
    }

    fn set(&self, key: &str, value: &str) -> Result<(), SecretStoreError> {
        self.locked(|| {
            let mut map = self.read()?;
            map.insert(self.full_key(key), value.to_string());
            self.write(&map)
        })
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        self.locked(|| {
            let mut map = self.read()?;
            if map.remove(&self.full_key(key)).is_some() {
                self.write(&map)?;
            }
            Ok(())
        })
    }

    fn set_if(
        &self,
        key: &str,
        value: &str,
        check: &dyn Fn(Option<&str>) -> bool,
    ) -> Result<bool, SecretStoreError> {
        self.locked(|| {
            let mut map = self.read()?;
            let full = self.full_key(key);
            if !check(map.get(&full).map(String::as_str)) {
                return Ok(false);
            }
            map.insert(full, value.to_string());
            self.write(&map)?;
            Ok(true)
        })
    }

    fn note(&self) -> Option<String> {
        self.note.clone()
    }
}

const IN_KEYCHAIN: u8 = 0;
const IN_FILE: u8 = 1;

/// `token_storage = "auto"`: the keychain when it can keep the secrets, the
/// private file when it cannot (see the module comment for each case).
pub struct AutoStore {
    keychain: Box<dyn SecretStore>,
    file: FileStore,
    /// Where the secrets are now (`IN_KEYCHAIN` or `IN_FILE`).
    location: AtomicU8,
    note: Mutex<Option<String>>,
}

impl AutoStore {
    pub fn new(keychain: Box<dyn SecretStore>, file: FileStore) -> AutoStore {
        let store = AutoStore {
            keychain,
            file,
            location: AtomicU8::new(IN_KEYCHAIN),
            note: Mutex::new(None),
        };
        match store.keychain.get("probe") {
            Ok(_) => store.move_file_into_keychain(),
            Err(e @ SecretStoreError::KeychainAbsent(_)) => store.use_file(&e, None),
            Err(e) => {
                // There, but not answering or refusing right now: keep asking
                // it; a file from an earlier fallback is still read.
                tracing::warn!(error = %e, "the system keychain is not answering; will keep trying");
                if matches!(store.file.entries(), Ok(v) if !v.is_empty()) {
                    store.use_file(&e, None);
                }
            }
        }
        store
    }

    fn use_file(&self, why: &SecretStoreError, how_to_fix: Option<&str>) {
        let was = self.location.swap(IN_FILE, Ordering::SeqCst);
        let note = match how_to_fix {
            Some(fix) => format!("{why}; kept in a private file instead. {fix}"),
            None => format!("{why}; using a private file instead"),
        };
        if was != IN_FILE {
            tracing::warn!(
                reason = %why,
                file = %self.file.path().display(),
                "tokens are kept in a file readable only by you"
            );
        }
        *self.note.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
    }

    /// The keychain works: secrets from an earlier fallback move into it.
    fn move_file_into_keychain(&self) {
        let entries = match self.file.entries() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the private secrets file");
                return;
            }
        };
        for (key, value) in entries {
            match self.keychain.set(&key, &value) {
                Ok(()) => {
                    let _ = self.file.delete(&key);
                    tracing::info!(
                        key,
                        "moved a secret from the private file into the keychain"
                    );
                }
                Err(e) => {
                    self.use_file(&e, None);
                    return;
                }
            }
        }
        self.location.store(IN_KEYCHAIN, Ordering::SeqCst);
        *self.note.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

const KEYCHAIN_FIX: &str = "To use the keychain, unlock it (or create a default \"login\" keyring, e.g. with Seahorse) and sign in again.";

impl SecretStore for AutoStore {
    fn kind(&self) -> StorageKind {
        if self.location.load(Ordering::SeqCst) == IN_FILE {
            StorageKind::File
        } else {
            StorageKind::Keychain
        }
    }

    fn get(&self, key: &str) -> Result<Option<String>, SecretStoreError> {
        match self.keychain.get(key) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => self.file.get(key),
            Err(e @ SecretStoreError::KeychainAbsent(_)) => {
                self.use_file(&e, None);
                self.file.get(key)
            }
            Err(e) => match self.file.get(key)? {
                // Kept in the file by an earlier fallback.
                Some(v) => Ok(Some(v)),
                // Only the keychain can have it, and it is not answering:
                // an error to retry, never "signed out".
                None => Err(e),
            },
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<(), SecretStoreError> {
        match self.keychain.set(key, value) {
            Ok(()) => {
                if self.location.swap(IN_KEYCHAIN, Ordering::SeqCst) == IN_FILE {
                    *self.note.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                // Never two copies: a fallback copy goes once the keychain has it.
                let _ = self.file.delete(key);
                Ok(())
            }
            Err(e @ SecretStoreError::KeychainAbsent(_)) => {
                self.use_file(&e, None);
                self.file.set(key, value)
            }
            Err(e @ SecretStoreError::KeychainRefused(_)) => {
                self.use_file(&e, Some(KEYCHAIN_FIX));
                self.file.set(key, value)
            }
            // Slow or failing: the caller keeps what it had and tries again.
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        let from_file = self.file.delete(key);
        match self.keychain.delete(key) {
            Ok(()) | Err(SecretStoreError::KeychainAbsent(_)) => from_file,
            Err(e) => Err(e),
        }
    }

    fn note(&self) -> Option<String> {
        self.note.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn is_fallback(&self) -> bool {
        self.kind() == StorageKind::File
    }
}

/// Pick the store: `keychain` and `file` as told; `auto` combines them.
pub fn open(choice: TokenStorageChoice, data_dir: &Path, namespace: &str) -> Box<dyn SecretStore> {
    match choice {
        TokenStorageChoice::Keychain => Box::new(KeychainStore::new(namespace)),
        TokenStorageChoice::File => Box::new(FileStore::new(
            data_dir,
            namespace,
            Some("token_storage = \"file\" in the configuration".into()),
        )),
        TokenStorageChoice::Auto => Box::new(AutoStore::new(
            Box::new(KeychainStore::new(namespace)),
            FileStore::new(data_dir, namespace, None),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "us-sandbox/client", None);
        assert_eq!(store.get("tokens").unwrap(), None);
        store.set("tokens", "{\"a\":1}").unwrap();
        store.set("client_secret", "s3cret").unwrap();
        assert_eq!(store.get("tokens").unwrap().as_deref(), Some("{\"a\":1}"));
        #[cfg(unix)]
        assert_eq!(crate::files::mode_of(store.path()), Some(0o600));
        // Another namespace does not see it.
        let other = FileStore::new(dir.path(), "ca-sandbox/client", None);
        assert_eq!(other.get("tokens").unwrap(), None);
        store.delete("tokens").unwrap();
        store.delete("tokens").unwrap();
        assert_eq!(store.get("tokens").unwrap(), None);
        assert_eq!(
            store.get("client_secret").unwrap().as_deref(),
            Some("s3cret")
        );
        store.delete("client_secret").unwrap();
        assert!(!store.path().exists(), "an empty secrets file is removed");
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets.json"), b"{nope").unwrap();
        let store = FileStore::new(dir.path(), "n", None);
        let e = store.get("tokens").unwrap_err().to_string();
        assert!(e.contains("secrets.json"), "{e}");
    }

    /// A keychain that behaves as told.
    #[derive(Clone, Default)]
    struct FakeKeychain {
        entries: Arc<Mutex<BTreeMap<String, String>>>,
        /// 0 works, 1 absent, 2 refuses to store, 3 times out
        mode: Arc<AtomicU8>,
    }

    impl FakeKeychain {
        fn failure(&self) -> Option<SecretStoreError> {
            match self.mode.load(Ordering::SeqCst) {
                1 => Some(SecretStoreError::KeychainAbsent("no secret service".into())),
                2 => Some(SecretStoreError::KeychainRefused(
                    "SS error: result not returned from SS API".into(),
                )),
                3 => Some(SecretStoreError::KeychainTimeout(Duration::from_secs(10))),
                _ => None,
            }
        }
    }

    impl SecretStore for FakeKeychain {
        fn kind(&self) -> StorageKind {
            StorageKind::Keychain
        }
        fn get(&self, key: &str) -> Result<Option<String>, SecretStoreError> {
            match self.failure() {
                // A refusing Secret Service still answers reads.
                Some(SecretStoreError::KeychainRefused(_)) | None => {
                    Ok(self.entries.lock().unwrap().get(key).cloned())
                }
                Some(e) => Err(e),
            }
        }
        fn set(&self, key: &str, value: &str) -> Result<(), SecretStoreError> {
            match self.failure() {
                Some(e) => Err(e),
                None => {
                    self.entries
                        .lock()
                        .unwrap()
                        .insert(key.into(), value.into());
                    Ok(())
                }
            }
        }
        fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
            match self.failure() {
                Some(e) => Err(e),
                None => {
                    self.entries.lock().unwrap().remove(key);
                    Ok(())
                }
            }
        }
    }

    fn auto(dir: &Path, kc: &FakeKeychain) -> AutoStore {
        AutoStore::new(Box::new(kc.clone()), FileStore::new(dir, "ns", None))
    }

    #[test]
    fn a_keychain_that_refuses_to_store_keeps_the_sign_in_in_the_file_and_says_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let kc = FakeKeychain::default();
        kc.mode.store(2, Ordering::SeqCst);
        let store = auto(dir.path(), &kc);
        store.set("tokens", "t1").unwrap();
        assert_eq!(store.kind(), StorageKind::File);
        assert!(store.is_fallback());
        let note = store.note().unwrap();
        assert!(note.contains("To use the keychain"), "{note}");
        assert_eq!(store.get("tokens").unwrap().as_deref(), Some("t1"));
    }

    #[test]
    fn a_keychain_that_times_out_at_start_is_locked_not_signed_out() {
        let dir = tempfile::tempdir().unwrap();
        let kc = FakeKeychain::default();
        kc.entries
            .lock()
            .unwrap()
            .insert("tokens".into(), "t1".into());
        kc.mode.store(3, Ordering::SeqCst);
        let store = auto(dir.path(), &kc);
        let e = store.get("tokens").unwrap_err();
        assert!(e.is_keychain_locked(), "{e}");
        assert_eq!(store.kind(), StorageKind::Keychain, "no switch to the file");
        // Unlocked later: the same store answers.
        kc.mode.store(0, Ordering::SeqCst);
        assert_eq!(store.get("tokens").unwrap().as_deref(), Some("t1"));
    }

    #[test]
    fn no_keychain_at_all_uses_the_file_and_a_keychain_that_appears_takes_the_secrets_over() {
        let dir = tempfile::tempdir().unwrap();
        let kc = FakeKeychain::default();
        kc.mode.store(1, Ordering::SeqCst);
        let store = auto(dir.path(), &kc);
        assert_eq!(store.kind(), StorageKind::File);
        store.set("tokens", "t1").unwrap();
        store.set("client_secret", "s").unwrap();
        assert!(dir.path().join("secrets.json").exists());
        drop(store);

        // Next start: the keychain is there now.
        kc.mode.store(0, Ordering::SeqCst);
        let store = auto(dir.path(), &kc);
        assert_eq!(store.kind(), StorageKind::Keychain);
        assert_eq!(store.note(), None);
        assert_eq!(kc.entries.lock().unwrap().get("tokens").unwrap(), "t1");
        assert_eq!(
            kc.entries.lock().unwrap().get("client_secret").unwrap(),
            "s"
        );
        assert!(
            !dir.path().join("secrets.json").exists(),
            "the file is deleted once the keychain has the secrets"
        );
        assert_eq!(store.get("tokens").unwrap().as_deref(), Some("t1"));
    }

    #[test]
    fn keychain_writes_land_in_order_even_when_one_was_slow() {
        // The sequence check, without a real keychain: a stale write (lower
        // sequence number) finding a newer one done is skipped.
        let store = KeychainStore::new("order-test");
        store
            .written
            .lock()
            .unwrap()
            .insert(store.user("tokens"), 10);
        // Sequence 1 < 10: the write is skipped without touching any keychain,
        // so it succeeds even here where none runs.
        assert!(store.write("tokens", |_e| panic!("must not write")).is_ok());
    }
}
