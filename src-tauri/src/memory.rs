//! Keeping the background footprint small on Linux.
//!
//! The window is destroyed when closed (WebKit's web process exits with it),
//! but the window toolkit's libraries stay mapped in this process: WebKit,
//! JavaScriptCore, GTK, Mesa's GL (LLVM), speech synthesis… keep tens of MB
//! of clean, file-backed pages resident that the background work (polling,
//! the tray, notifications) never touches again. After the window is gone we
//! hand the heap's free memory back (`malloc_trim`) and ask the kernel to
//! reclaim the clean file-backed pages (`MADV_PAGEOUT`), the way browsers trim
//! their working set when minimised: pages still in use fault straight back
//! in from the page cache, so only residency changes, never behaviour.

/// WebKitGTK's DMA-BUF renderer costs about 60 MB in the web process and
/// misbehaves on some GPU drivers; this app's page needs no GPU. Respect an
/// explicit setting. Call before any thread starts (it sets the environment).
pub fn prefer_light_webkit_renderer() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        std::env::set_var("WEBKIT_DISABLE_DMABUF_RENDERER", "1");
    }
}

/// Give back what the closed window left resident.
pub fn release_window_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        let mut released = 0usize;
        for line in maps.lines() {
            let mut parts = line.split_whitespace();
            let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
                continue;
            };
            let path = parts.nth(3).unwrap_or("");
            // Read-only mappings of files only (code and constant data);
            // never writable data, the heap, stacks or the vDSO.
            if perms.contains('w') || !path.starts_with('/') {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            // SAFETY: MADV_PAGEOUT only changes residency of our own mapping;
            // the contents stay valid and are paged back in on access.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT)
            };
            if rc == 0 {
                released += end - start;
            }
        }
        tracing::debug!(
            mapped_mib = released / (1 << 20),
            "released the closed window's memory"
        );
    }
}
