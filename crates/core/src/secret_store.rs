//! Where tokens and the client secret live: the OS keychain through
//! `keyring` (Secret Service on Linux, Keychain on macOS, Credential Manager on
//! Windows), or, where no keychain answers, a file readable only by the user
//! (mode 0600) in the data directory. Which one is in use is always visible
//! (`status`, the UI, the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the system keychain is not available: {0}")]
    KeychainUnavailable(String),
    #[error("the system keychain did not answer within {0:?}")]
    KeychainTimeout(Duration),
    #[error("secrets file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// A small key/value store for secrets.
pub trait SecretStore: Send + Sync {
    fn kind(&self) -> StorageKind;
    fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set(&self, key: &str, value: &str) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Why this store was chosen, for status lines (e.g. "no keychain answered").
    fn note(&self) -> Option<String> {
        None
    }
    /// True when a keychain was wanted but none answered (worth a warning).
    fn is_fallback(&self) -> bool {
        false
    }
}

/// The OS keychain. Calls run on a helper thread with a timeout, because a
/// locked or absent Secret Service can otherwise block (a prompt nobody sees).
pub struct KeychainStore {
    /// Prefix of every entry's user name, so several environments/apps never collide.
    namespace: String,
    timeout: Duration,
}

const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl KeychainStore {
    pub fn new(namespace: &str) -> KeychainStore {
        KeychainStore {
            namespace: namespace.to_string(),
            timeout: KEYCHAIN_TIMEOUT,
        }
    }

    fn call<T: Send + 'static>(
        &self,
        key: &str,
        op: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let user = format!("{}/{}", self.namespace, key);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("keychain".into())
            .spawn(move || {
                let result = keyring::Entry::new(APP_DIR, &user).and_then(op);
                let _ = tx.send(result);
            })
            .map_err(|e| StoreError::KeychainUnavailable(e.to_string()))?;
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::KeychainUnavailable(describe_keyring_error(&e))),
            Err(_) => Err(StoreError::KeychainTimeout(self.timeout)),
        }
    }

    /// Does a keychain answer at all? (Reads an entry that need not exist.)
    pub fn probe(&self) -> Result<(), StoreError> {
        self.get("probe").map(|_| ())
    }
}

/// keyring errors can carry platform detail; never the secret.
fn describe_keyring_error(e: &keyring::Error) -> String {
    match e {
        keyring::Error::NoStorageAccess(inner) => format!("no access to the keychain ({inner})"),
        keyring::Error::PlatformFailure(inner) => format!("keychain failure ({inner})"),
        keyring::Error::NoDefaultStore => "no keychain is installed or running".into(),
        other => other.to_string(),
    }
}

impl SecretStore for KeychainStore {
    fn kind(&self) -> StorageKind {
        StorageKind::Keychain
    }

    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.call(key, |entry| match entry.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let value = value.to_string();
        self.call(key, move |entry| entry.set_password(&value))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call(key, |entry| match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        })
    }
}

/// A JSON file of secrets, mode 0600, written atomically.
pub struct FileStore {
    path: PathBuf,
    namespace: String,
    note: Option<String>,
    fallback: bool,
    lock: std::sync::Mutex<()>,
}

impl FileStore {
    pub fn new(data_dir: &Path, namespace: &str, note: Option<String>) -> FileStore {
        FileStore {
            path: data_dir.join("secrets.json"),
            namespace: namespace.to_string(),
            note,
            fallback: false,
            lock: std::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> StoreError {
        StoreError::File {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn read(&self) -> Result<BTreeMap<String, String>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| self.err(format!("unreadable ({e})")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    fn write(&self, map: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(map).map_err(|e| self.err(e.to_string()))?;
        write_private(&self.path, &bytes).map_err(|e| self.err(e.to_string()))
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}/{}", self.namespace, key)
    }
}

/// Atomic write of a file only the user can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
    #[cfg(not(unix))]
    {
        crate::config::write_atomically(path, bytes)
    }
}

impl SecretStore for FileStore {
    fn kind(&self) -> StorageKind {
        StorageKind::File
    }

    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.read()?.get(&self.full_key(key)).cloned())
    }

    fn set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.read()?;
        map.insert(self.full_key(key), value.to_string());
        self.write(&map)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.read()?;
        if map.remove(&self.full_key(key)).is_some() {
            self.write(&map)?;
        }
        Ok(())
    }

    fn note(&self) -> Option<String> {
        self.note.clone()
    }

    fn is_fallback(&self) -> bool {
        self.fallback
    }
}

/// Pick the store: `keychain` and `file` as told; `auto` tries the keychain
/// and falls back to the file, saying why.
pub fn open(choice: TokenStorageChoice, data_dir: &Path, namespace: &str) -> Box<dyn SecretStore> {
    match choice {
        TokenStorageChoice::Keychain => Box::new(KeychainStore::new(namespace)),
        TokenStorageChoice::File => Box::new(FileStore::new(
            data_dir,
            namespace,
            Some("token_storage = \"file\" in the configuration".into()),
        )),
        TokenStorageChoice::Auto => {
            let keychain = KeychainStore::new(namespace);
            match keychain.probe() {
                Ok(()) => Box::new(keychain),
                Err(e) => {
                    let mut store = FileStore::new(
                        data_dir,
                        namespace,
                        Some(format!("{e}; using a private file instead")),
                    );
                    store.fallback = true;
                    tracing::warn!(
                        reason = %e,
                        file = %store.path().display(),
                        "no system keychain: tokens are kept in a file readable only by you"
                    );
                    Box::new(store)
                }
            }
        }
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
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
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
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets.json"), b"{nope").unwrap();
        let store = FileStore::new(dir.path(), "n", None);
        let e = store.get("tokens").unwrap_err().to_string();
        assert!(e.contains("secrets.json"), "{e}");
    }
}
