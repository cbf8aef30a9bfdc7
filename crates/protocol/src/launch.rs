//! Starting the app's other processes: which binary is which, and how one
//! is started so that it outlives whatever started it.

/// The desktop build's binary (the window).
pub const WINDOW_BINARY: &str = "fullscript-notifier";
/// The headless build's binary (the agent, and every command but the window).
pub const HEADLESS_BINARY: &str = "fullscript-notifier-headless";

/// A binary of the app installed beside the running one (`name` without
/// `.exe`), if it is there.
pub fn sibling_binary(name: &str) -> Option<std::path::PathBuf> {
    let me = std::env::current_exe().ok()?;
    let file = if cfg!(windows) {
        format!("{name}.exe")
    } else {
        name.to_string()
    };
    let path = me.with_file_name(file);
    path.is_file().then_some(path)
}

/// Start a process of the app that outlives whatever started it: in a
/// process group of its own on Unix; on Windows without a console window
/// (the agent is a console program started from a windowed one).
pub fn spawn_detached(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
    cmd.stdin(std::process::Stdio::null()).spawn()
}
