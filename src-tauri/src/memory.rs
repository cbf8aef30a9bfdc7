//! Keeping the window light on Linux.

/// WebKitGTK's DMA-BUF renderer costs about 60 MB in the web process and
/// misbehaves on some GPU drivers; this app's page needs no GPU. Respect an
/// explicit setting. Call before any thread starts (it sets the environment).
pub fn prefer_light_webkit_renderer() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        std::env::set_var("WEBKIT_DISABLE_DMABUF_RENDERER", "1");
    }
}
