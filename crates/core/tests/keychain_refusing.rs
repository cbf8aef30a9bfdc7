//! A Secret Service that answers but cannot store (no unlocked collection,
//! no prompter): signing in keeps the sign-in in the private file and says
//! how to use the keychain instead, instead of failing. One test per
//! binary: the bus address is process-wide.

mod common;

use common::*;
use fsn_simulator::SimConfig;

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_with_a_keychain_that_refuses_keeps_the_sign_in_in_the_private_file() {
    let home = tempfile::tempdir().unwrap();
    let mut bus = PrivateBus::start();
    bus.start_locked_keyring(home.path());
    // Only this test runs in this process; nothing reads the variable concurrently.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    std::env::remove_var("DISPLAY");

    let w = world(SimConfig::default()).await;
    // The fixture keeps tokens in the file; this test wants `auto`.
    let text = w
        .config_text("")
        .replace("token_storage = \"file\"", "token_storage = \"auto\"");
    std::fs::write(w.dir.path().join("config.toml"), text).unwrap();
    let app = fsn_core::App::open(w.paths()).unwrap();
    let session = app.session().unwrap();
    let account = app.login(&session, approve()).await;
    assert!(account.is_ok(), "sign-in succeeds: {account:?}");
    let status = app.status(Some(&session)).await;
    assert!(status.signed_in);
    assert_eq!(status.token_storage, "file");
    assert!(status.token_storage_fallback);
    let note = status.token_storage_note.unwrap_or_default();
    assert!(note.contains("To use the keychain"), "{note}");
    assert!(secrets_file(w.dir.path()).contains("access_token"));
}
