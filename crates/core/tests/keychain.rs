//! Tokens in a real Secret Service (gnome-keyring on a private D-Bus
//! session). One test per binary: the bus address is process-wide.

mod common;

use common::*;
use fsn_core::config::TokenStorageChoice;
use fsn_core::secret_store::{self, KeychainStore, SecretStore, StorageKind};
use fsn_simulator::SimConfig;

#[tokio::test(flavor = "multi_thread")]
async fn tokens_live_in_the_keychain_and_leave_it_on_logout() {
    let home = tempfile::tempdir().unwrap();
    let mut bus = PrivateBus::start();
    bus.start_keyring(home.path());
    // Only this test runs in this process; nothing reads the variable concurrently.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &bus.address);

    // Round trip through the keyring crate, visible to secret-tool.
    let store = KeychainStore::new("test-ns");
    store.probe().unwrap();
    store.set("tokens", "round-trip-value").unwrap();
    assert_eq!(
        store.get("tokens").unwrap().as_deref(),
        Some("round-trip-value")
    );
    let attrs = std::process::Command::new("secret-tool")
        .args(["search", "--all", "service", fsn_core::config::APP_DIR])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&attrs.stdout).to_string()
        + &String::from_utf8_lossy(&attrs.stderr);
    assert!(listing.contains("test-ns/tokens"), "{listing}");
    store.delete("tokens").unwrap();
    assert_eq!(store.get("tokens").unwrap(), None);

    let auto = secret_store::open(TokenStorageChoice::Auto, home.path(), "n");
    assert_eq!(auto.kind(), StorageKind::Keychain);

    // A whole sign-in with the keychain: nothing lands in a file.
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    drop(app);
    let text = w
        .config_text("")
        .replace("token_storage = \"file\"", "token_storage = \"keychain\"");
    std::fs::write(w.dir.path().join("config.toml"), text).unwrap();
    let app = fsn_core::App::open(w.paths()).unwrap();
    let session2 = app.session().unwrap();
    app.login(&session2, approve()).await.unwrap();
    drop(session);
    let user = format!("custom/{}/tokens", fsn_simulator::DEMO_CLIENT_ID);
    let stored = bus.lookup(&user).expect("tokens are in the Secret Service");
    assert!(stored.contains("access_token"));
    let status = app.status(Some(&session2)).await;
    assert_eq!(status.token_storage, "keychain");
    assert!(status.signed_in);

    app.logout(&session2, false).await;
    assert_eq!(bus.lookup(&user), None, "logout removes the keychain entry");
}
