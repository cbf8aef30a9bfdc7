//! No Secret Service at all: the file fallback, said out loud.

use fsn_core::config::TokenStorageChoice;
use fsn_core::secret_store::{self, StorageKind};

#[test]
fn without_a_keychain_tokens_fall_back_to_a_private_file() {
    // The only test in this process: point D-Bus nowhere.
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/fsn-test-bus",
    );
    let dir = tempfile::tempdir().unwrap();
    let store = secret_store::open(TokenStorageChoice::Auto, dir.path(), "ns");
    assert_eq!(store.kind(), StorageKind::File);
    assert!(store.is_fallback());
    assert!(
        store.note().unwrap().contains("keychain"),
        "{:?}",
        store.note()
    );
    store.set("tokens", "x").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
