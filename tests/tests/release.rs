//! `scripts/release.sh` refuses, before building anything, a release that
//! could never be installed: the committed placeholder public key, a
//! signing key other than the one the app trusts, the placeholder update
//! address. Runs the script's `--check` with keys made for the test.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn keypair(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let ok = Command::new(root().join("scripts/tauri"))
        .args(["signer", "generate", "--ci", "-p", "", "-w"])
        .arg(&path)
        .output()
        .expect("scripts/tauri (scripts/setup.sh installs it)")
        .status
        .success();
    assert!(ok, "tauri signer generate");
    (
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(format!("{}.pub", path.display()))
            .unwrap()
            .trim()
            .to_string(),
    )
}

fn check(key: &str, tauri_conf: Option<&Path>, core_config: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(root().join("scripts/release.sh"));
    cmd.arg("--check")
        .env("TAURI_SIGNING_PRIVATE_KEY", key)
        .env("TAURI_SIGNING_PRIVATE_KEY_PASSWORD", "");
    if let Some(p) = tauri_conf {
        cmd.env("FSN_RELEASE_TAURI_CONF", p);
    }
    if let Some(p) = core_config {
        cmd.env("FSN_RELEASE_CORE_CONFIG", p);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_release_that_could_never_install_is_refused_before_it_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let (other_key, _) = keypair(dir.path(), "other");

    // As committed: the placeholder key.
    let (code, out) = check(&key, None, None);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("committed placeholder"), "{out}");

    // The real key in the app, the placeholder address still in the code.
    let conf_text = std::fs::read_to_string(root().join("src-tauri/tauri.conf.json")).unwrap();
    let mut conf: serde_json::Value = serde_json::from_str(&conf_text).unwrap();
    conf["plugins"]["updater"]["pubkey"] = serde_json::Value::String(public);
    assert_eq!(
        conf["plugins"]["updater"]["requireSignedVersion"], true,
        "a signature must bind the version it announces"
    );
    let conf_path = dir.path().join("tauri.conf.json");
    std::fs::write(&conf_path, conf.to_string()).unwrap();
    let (code, out) = check(&key, Some(&conf_path), None);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("example.invalid"), "{out}");

    // The real address too: ready, with the matching key only.
    let core = std::fs::read_to_string(root().join("crates/core/src/config.rs")).unwrap();
    let core_path = dir.path().join("config.rs");
    std::fs::write(
        &core_path,
        core.replace("example.invalid", "downloads.example.com"),
    )
    .unwrap();
    let (code, out) = check(&other_key, Some(&conf_path), Some(&core_path));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not match"), "{out}");
    let (code, out) = check(&key, Some(&conf_path), Some(&core_path));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("release-ready"), "{out}");
}
