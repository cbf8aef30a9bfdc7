//! The .deb installs into a scratch root with a working binary, its headless
//! build, a desktop entry and icons. `scripts/bundle.sh --debug` (run by the
//! test script before this suite) builds the package.

use std::path::PathBuf;
use std::process::Command;

use fsn_e2e::newest_deb;

#[test]
fn the_deb_installs_into_a_scratch_root_and_runs() {
    if fsn_e2e::skip() {
        return;
    }
    let deb = newest_deb();
    let scratch = tempfile::tempdir().unwrap();
    let ok = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(scratch.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "dpkg -x {}", deb.display());
    let root = scratch.path();

    let info = Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb)
        .arg("Package")
        .arg("Depends")
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    assert!(info.contains("libwebkit2gtk-4.1-0"), "{info}");

    let bin = root.join("usr/bin/fullscript-notifier");
    let headless = root.join("usr/bin/fullscript-notifier-headless");
    for b in [&bin, &headless] {
        assert!(b.is_file(), "{} missing", b.display());
    }
    for b in [&bin, &headless] {
        let out = Command::new(b).arg("--version").output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("fullscript-notifier {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // The installed app execs its headless build for headless commands.
    let scratch_home = tempfile::tempdir().unwrap();
    let out = Command::new(&bin)
        .args(["status", "--json"])
        .env("FSN_CONFIG", scratch_home.path().join("c.toml"))
        .env("FSN_DATA_DIR", scratch_home.path().join("d"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let apps = root.join("usr/share/applications");
    let desktop: Vec<PathBuf> = std::fs::read_dir(&apps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(desktop.len(), 1, "{desktop:?}");
    // Notifications name this entry in their desktop-entry hint.
    assert_eq!(
        desktop[0].file_name().unwrap(),
        "Fullscript Lab Notifier.desktop"
    );
    let entry = std::fs::read_to_string(&desktop[0]).unwrap();
    for line in [
        "Name=Fullscript Lab Notifier",
        "Exec=fullscript-notifier",
        "Icon=fullscript-notifier",
        "Type=Application",
        "Terminal=false",
        "X-GNOME-UsesNotifications=true",
    ] {
        assert!(
            entry.lines().any(|l| l == line),
            "desktop entry lacks `{line}`:\n{entry}"
        );
    }
    let icon = root.join("usr/share/icons/hicolor/128x128/apps/fullscript-notifier.png");
    assert!(icon.is_file(), "{} missing", icon.display());
}
