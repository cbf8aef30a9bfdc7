//! The agent's control endpoint: how the window process (and a second start
//! of the app) talks to the one agent that owns the watcher and the database.
//!
//! A Unix socket in the data directory (mode 0600, in a 0700 directory), or
//! on Windows a named pipe that refuses remote clients, named after the data
//! directory. One JSON message per line, each way:
//!
//! ```text
//! → {"id": 7, "cmd": "snapshot", "args": {}}
//! ← {"type": "result", "id": 7, "value": {…}}      or {"type": "error", "id": 7, "message": "…"}
//! ← {"type": "event", "name": "state-changed", "payload": {…}}   (after "subscribe")
//! ```
//!
//! Typed at both ends: a line becomes a [`Request`] before any handler
//! sees it (an unknown command or a missing argument is answered with an
//! error naming it), and the events are [`Event`]s. Nothing here knows what
//! the commands do (the agent's `dispatch` does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::messages::{Event, Request};

/// Longest message accepted. Every message the agent sends is far
/// smaller (the list goes in pages); a longer line is a broken peer.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Messages queued for one connection's writer. A subscriber that stops
/// reading fills it; the events it misses after that are dropped and it is
/// told to re-read everything ([`Event::Resync`]).
const OUT_QUEUE: usize = 256;

/// How long a subscriber that is behind may go without reading anything
/// before the agent gives up on it and closes its connection (its queue,
/// and so the agent's memory, stays bounded either way).
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Commands one connection may have in flight; past that the agent reads
/// its next line only when one has finished.
const MAX_CALLS_PER_CONNECTION: usize = 16;

/// Events a client keeps for its reader.
const CLIENT_EVENT_QUEUE: usize = 1024;

/// Connections an agent serves at once (a window, the command line, a
/// second start: a handful); more are refused.
const MAX_CONNECTIONS: usize = 32;

/// A request as it travels: the transport's id, and the [`Request`]'s
/// `cmd` and `args`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    id: u64,
    cmd: String,
    #[serde(default)]
    args: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message {
    Result { id: u64, value: Value },
    Error { id: u64, message: String },
    Event { name: String, payload: Value },
}

impl Message {
    fn event(e: Event) -> Message {
        let (name, payload) = e.into_parts();
        Message::Event { name, payload }
    }
}

/// Where the agent listens for this data directory, and the lock that
/// makes it the only one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    #[cfg(unix)]
    pub path: PathBuf,
    #[cfg(windows)]
    pub pipe: String,
    /// Held (an OS file lock) by the agent for as long as it runs, taken
    /// before it binds: "is another agent running?" is one atomic step.
    /// The same lock keeps a second watcher (`watch`) off the data directory.
    pub lock: PathBuf,
    /// A directory of ours the endpoint lives in that may have to be made
    /// (the private fallback when the data directory's path is too long).
    #[cfg(unix)]
    private_dir: Option<PathBuf>,
}

/// The name of the lock file in the data directory.
pub const LOCK_FILE: &str = "watcher.lock";

impl Endpoint {
    /// The endpoint of the agent for `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> Endpoint {
        #[cfg(unix)]
        {
            Endpoint::for_data_dir_in(
                data_dir,
                std::env::var_os("XDG_RUNTIME_DIR")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from),
                &std::env::temp_dir(),
            )
        }
        #[cfg(windows)]
        {
            Endpoint {
                pipe: format!(r"\\.\pipe\fullscript-notifier-{:016x}", hash(data_dir)),
                lock: data_dir.join(LOCK_FILE),
            }
        }
    }

    /// A Unix socket's path is limited to ~108 bytes: a very deep data
    /// directory gets its socket in the user's runtime directory, or, where
    /// there is none, in a directory of this user's own under the temp
    /// directory (made 0700, refused when someone else owns it or may write
    /// to it): never loose in the shared temp directory.
    #[cfg(unix)]
    fn for_data_dir_in(data_dir: &Path, runtime: Option<PathBuf>, temp: &Path) -> Endpoint {
        let lock = data_dir.join(LOCK_FILE);
        let path = data_dir.join("agent.sock");
        if path.as_os_str().len() < 100 {
            return Endpoint {
                path,
                lock,
                private_dir: None,
            };
        }
        let name = format!("fullscript-notifier-{:016x}.sock", hash(data_dir));
        match runtime {
            Some(dir) => Endpoint {
                path: dir.join(name),
                lock,
                private_dir: None,
            },
            None => {
                let dir = temp.join(format!("fullscript-notifier-{}", own_uid()));
                Endpoint {
                    path: dir.join(name),
                    lock,
                    private_dir: Some(dir),
                }
            }
        }
    }

    /// The directory the socket is in must be this user's own and writable
    /// by nobody else (else another local user could put a socket of theirs
    /// in its place); the private fallback is made here when missing.
    #[cfg(unix)]
    fn check_directory(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let Some(dir) = self.path.parent() else {
            return Ok(());
        };
        if let Some(private) = &self.private_dir {
            match std::fs::DirBuilder::new().mode(0o700).create(private) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() || meta.uid() != own_uid() || meta.mode() & 0o022 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a private directory of this user's (owner {}, mode {:o}); the app will not listen there",
                    dir.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(())
    }
}

/// This process's effective user.
#[cfg(unix)]
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn hash(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The agent is not running, or went away mid-call.
    #[error("the app's background agent is not running")]
    NotRunning,
    /// The agent answered with an error (one sentence for the page).
    #[error("{0}")]
    Refused(String),
    /// The agent took the command and did not answer in time.
    #[error("the app's background agent did not answer within {0} s")]
    TimedOut(u64),
    /// The answer is not what this command answers (an agent of another
    /// version?).
    #[error("the app's background agent answered something unreadable: {0}")]
    Unreadable(String),
}

/// How long a command may take before its caller stops waiting. The
/// slowest commands (a sign-out revoking at Fullscript, an update check)
/// are bounded by their own network timeouts well within this.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

// ---------------------------------------------------------------- server

/// What the server does with a command.
pub type Handler = Arc<
    dyn Fn(
            Request,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>
        + Send
        + Sync,
>;

/// The agent's side: events for subscribers, and how many windows listen.
#[derive(Clone)]
pub struct Hub {
    events: broadcast::Sender<Event>,
    windows: Arc<AtomicUsize>,
    /// Windows that ever connected (a started window has arrived when it grows).
    windows_ever: Arc<AtomicUsize>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            events: broadcast::channel(256).0,
            windows: Arc::new(AtomicUsize::new(0)),
            windows_ever: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Hub {
    pub fn send(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Windows connected and listening now.
    pub fn windows(&self) -> usize {
        self.windows.load(Ordering::SeqCst)
    }

    /// Windows that ever connected.
    pub fn windows_ever(&self) -> usize {
        self.windows_ever.load(Ordering::SeqCst)
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serve `handler` on a bound listener until this future is dropped (which
/// ends every connection with it).
pub async fn serve(listener: Listener, handler: Handler, hub: Hub) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    if !listener.peer_allowed(&stream) {
                        tracing::warn!("refused a connection to the control endpoint from another user");
                        continue;
                    }
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::warn!(limit = MAX_CONNECTIONS, "too many connections to the control endpoint; refused one");
                        continue;
                    }
                    connections.spawn(connection(stream, handler.clone(), hub.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the control endpoint could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Forward the hub's events to one subscriber through its bounded queue:
/// what does not fit is dropped and the subscriber told to re-read
/// everything once there is room. One whose connection has written
/// nothing for [`STALL_LIMIT`] while it is behind (it stopped reading) is
/// given up on (`gave_up` fires); a slow reader that keeps reading is kept.
async fn forward_events(
    mut rx: broadcast::Receiver<Event>,
    tx: mpsc::Sender<Message>,
    written: Arc<AtomicU64>,
    gave_up: Arc<tokio::sync::Notify>,
) {
    // Events missed since the last re-read was queued (none: not behind).
    let mut missed = 0usize;
    let mut written_before = written.load(Ordering::SeqCst);
    let mut progress_at = tokio::time::Instant::now();
    loop {
        let received = if missed > 0 {
            // Behind: look at the writer's progress even when no event comes.
            tokio::time::timeout(STALL_CHECK, rx.recv()).await.ok()
        } else {
            Some(rx.recv().await)
        };
        let event = match received {
            Some(Ok(e)) => Some(e),
            // Missed some in the hub itself: the same as a full queue.
            Some(Err(broadcast::error::RecvError::Lagged(n))) => {
                missed = missed.saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
                None
            }
            Some(Err(broadcast::error::RecvError::Closed)) => break,
            None => None,
        };
        if missed > 0 {
            match tx.try_send(Message::event(Event::Resync)) {
                Ok(()) => missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        if let Some(e) = event {
            if missed > 0 {
                // Still behind: this one is covered by the re-read to come.
                missed = missed.saturating_add(1);
            } else {
                match tx.try_send(Message::event(e)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => missed = 1,
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        }
        let written_now = written.load(Ordering::SeqCst);
        if written_now != written_before || missed == 0 {
            written_before = written_now;
            progress_at = tokio::time::Instant::now();
        } else if progress_at.elapsed() > STALL_LIMIT {
            tracing::warn!(
                missed,
                "a subscriber of the control endpoint stopped reading; closing its connection"
            );
            gave_up.notify_one();
            break;
        }
    }
}

async fn connection<S>(stream: S, handler: Handler, hub: Hub)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
    // Messages written so far: whether a subscriber still reads.
    let written = Arc::new(AtomicU64::new(0));
    let writer_count = written.clone();
    let gave_up = Arc::new(tokio::sync::Notify::new());
    let writer_gave_up = gave_up.clone();
    let _writer = AbortOnDrop(tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let Ok(mut line) = serde_json::to_string(&m) else {
                continue;
            };
            line.push('\n');
            // A peer that reads nothing at all blocks the write: given up
            // on after a while, its connection closed.
            match tokio::time::timeout(STALL_LIMIT, write.write_all(line.as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::warn!(
                        "a client of the control endpoint stopped reading; closing its connection"
                    );
                    writer_gave_up.notify_one();
                    break;
                }
            }
            writer_count.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let mut reader = BufReader::new(read);
    let mut subscription: Option<AbortOnDrop> = None;
    // Commands in flight end with the connection.
    let mut calls = tokio::task::JoinSet::new();
    let mut is_window = false;
    loop {
        while calls.try_join_next().is_some() {}
        if calls.len() >= MAX_CALLS_PER_CONNECTION {
            // Backpressure: the next line is read when a command has finished.
            tokio::select! {
                _ = calls.join_next() => continue,
                _ = gave_up.notified() => break,
            }
        }
        let line = tokio::select! {
            line = read_line(&mut reader) => match line {
                Ok(Some(l)) => l,
                Ok(None) | Err(_) => break,
            },
            _ = gave_up.notified() => break,
        };
        let envelope: Envelope = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                // No id to answer to: nobody waits for this line.
                tracing::debug!(error = %e, "unreadable control message");
                continue;
            }
        };
        let id = envelope.id;
        let request = match Request::from_wire(&envelope.cmd, envelope.args) {
            Ok(r) => r,
            Err(message) => {
                // Answered, so the caller does not wait for its timeout.
                let _ = out_tx.send(Message::Error { id, message }).await;
                continue;
            }
        };
        match request {
            // Events from now on; a window says so, so the agent knows one is open.
            Request::Subscribe { window } => {
                if subscription.is_none() {
                    subscription = Some(AbortOnDrop(tokio::spawn(forward_events(
                        hub.events.subscribe(),
                        out_tx.clone(),
                        written.clone(),
                        gave_up.clone(),
                    ))));
                }
                if window && !is_window {
                    is_window = true;
                    hub.windows.fetch_add(1, Ordering::SeqCst);
                    hub.windows_ever.fetch_add(1, Ordering::SeqCst);
                }
                let tx = out_tx.clone();
                calls.spawn(async move {
                    let _ = tx
                        .send(Message::Result {
                            id,
                            value: Value::Null,
                        })
                        .await;
                });
            }
            request => {
                let handler = handler.clone();
                let tx = out_tx.clone();
                calls.spawn(async move {
                    let m = match handler(request).await {
                        Ok(value) => Message::Result { id, value },
                        Err(message) => Message::Error { id, message },
                    };
                    let _ = tx.send(m).await;
                });
            }
        }
    }
    if is_window {
        hub.windows.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One line, at most [`MAX_LINE`] bytes; `None` at the end of the stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                None
            } else {
                Some(String::from_utf8_lossy(&buf).into_owned())
            });
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                buf.extend_from_slice(&available[..i]);
                r.consume(i + 1);
                return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
            }
            None => {
                let n = available.len();
                buf.extend_from_slice(available);
                r.consume(n);
            }
        }
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "control message too long",
            ));
        }
    }
}

// ---------------------------------------------------------------- listener

/// A bound control endpoint, and the lock that makes this agent the only one.
pub struct Listener {
    #[cfg(unix)]
    inner: tokio::net::UnixListener,
    #[cfg(unix)]
    path: PathBuf,
    /// Connections are served to this user only.
    #[cfg(unix)]
    uid: u32,
    #[cfg(windows)]
    pipe: String,
    #[cfg(windows)]
    next: tokio::sync::Mutex<tokio::net::windows::named_pipe::NamedPipeServer>,
    lock: std::fs::File,
}

#[cfg(unix)]
type Stream = tokio::net::UnixStream;
#[cfg(windows)]
type Stream = tokio::net::windows::named_pipe::NamedPipeServer;

fn in_use() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::AddrInUse, "another agent is running")
}

/// Take the agent's lock, or say another agent holds it.
fn take_lock(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(in_use()),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Listener {
    /// Bind the endpoint: take the agent's lock first (one atomic step:
    /// of two agents started at once, exactly one gets it; the other gets
    /// `AddrInUse`), then listen. A socket left by a crash is replaced; a
    /// path that belongs to another user is refused with a clear error.
    pub async fn bind(endpoint: &Endpoint) -> std::io::Result<Listener> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            endpoint.check_directory()?;
            let lock = take_lock(&endpoint.lock)?;
            let path = endpoint.path.clone();
            let uid = own_uid();
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.uid() != uid => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "{} belongs to another user (uid {}); the app will not listen there",
                            path.display(),
                            meta.uid()
                        ),
                    ));
                }
                Ok(_) => {
                    // Ours and the lock is ours: an agent that does not
                    // take the lock (an older version) may still answer.
                    if tokio::net::UnixStream::connect(&path).await.is_ok() {
                        return Err(in_use());
                    }
                    std::fs::remove_file(&path)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let inner = tokio::net::UnixListener::bind(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            Ok(Listener {
                inner,
                path,
                uid,
                lock,
            })
        }
        #[cfg(windows)]
        {
            use tokio::net::windows::named_pipe::ClientOptions;
            let lock = take_lock(&endpoint.lock)?;
            // An agent answers there (Wine, unlike Windows, does not refuse
            // a second "first" instance, so ask first).
            if ClientOptions::new().open(&endpoint.pipe).is_ok() {
                return Err(in_use());
            }
            let first = pipe::create(&endpoint.pipe, true).map_err(|e| match e.kind() {
                // Windows: the pipe exists (another agent, all its instances busy).
                std::io::ErrorKind::PermissionDenied => in_use(),
                _ => e,
            })?;
            Ok(Listener {
                pipe: endpoint.pipe.clone(),
                next: tokio::sync::Mutex::new(first),
                lock,
            })
        }
    }

    /// Another handle on the agent's lock (the watcher holds it while it
    /// runs; the same lock, so a second watcher anywhere is refused).
    pub fn lock_handle(&self) -> std::io::Result<std::fs::File> {
        self.lock.try_clone()
    }

    /// Only this user's programs may talk to the agent: the peer's uid
    /// (`SO_PEERCRED`/`getpeereid`) on Unix; on Windows the pipe's DACL
    /// admits only its owner and remote clients are refused.
    fn peer_allowed(&self, stream: &Stream) -> bool {
        #[cfg(unix)]
        {
            stream.peer_cred().is_ok_and(|c| c.uid() == self.uid)
        }
        #[cfg(windows)]
        {
            let _ = stream;
            true
        }
    }

    async fn accept(&self) -> std::io::Result<Stream> {
        #[cfg(unix)]
        {
            self.inner.accept().await.map(|(s, _)| s)
        }
        #[cfg(windows)]
        {
            let mut next = self.next.lock().await;
            let connected = next.connect().await;
            // A fresh instance either way: one whose client came and went
            // before it was accepted (a probe) must not block the next.
            let fresh = pipe::create(&self.pipe, false)?;
            let current = std::mem::replace(&mut *next, fresh);
            connected.map(|()| current)
        }
    }
}

/// Named pipe instances whose DACL admits only their owner (this user):
/// another user's process on the same computer cannot open them.
#[cfg(windows)]
mod pipe {
    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;

    /// Protected DACL: generic all to the owner (OW), nothing to anyone else.
    const SDDL: &str = "D:P(A;;GA;;;OW)";

    pub fn create(name: &str, first: bool) -> std::io::Result<NamedPipeServer> {
        let sddl: Vec<u16> = SDDL.encode_utf16().chain(std::iter::once(0)).collect();
        let mut descriptor = std::ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated UTF-16; on success the system
        // allocates the descriptor, freed below with LocalFree.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut attributes = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor,
            bInheritHandle: 0,
        };
        let mut options = ServerOptions::new();
        options
            .first_pipe_instance(first)
            .reject_remote_clients(true);
        // SAFETY: `attributes` and the descriptor it points to live until
        // the call returns; the pipe keeps its own copy.
        let created = unsafe {
            options.create_with_security_attributes_raw(
                name,
                (&mut attributes as *mut SECURITY_ATTRIBUTES).cast(),
            )
        };
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe {
            LocalFree(descriptor);
        }
        created
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

// ---------------------------------------------------------------- client

/// Calls waiting for their answer; `None` once the agent has gone (a call
/// made then fails at once instead of waiting for an answer that cannot come).
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>>;

/// The window's (and a second start's) side of the endpoint.
pub struct Client {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: AtomicU64,
    timeout: std::time::Duration,
    /// Dropping the client closes the connection: its reader goes too
    /// (a named pipe has no half-close to say "done" with).
    _reader: AbortOnDrop,
}

impl Client {
    /// Connect; answers the client and its events (the channel closes when
    /// the agent goes away).
    pub async fn connect(
        endpoint: &Endpoint,
    ) -> Result<(Client, mpsc::Receiver<Event>), CallError> {
        #[cfg(unix)]
        let stream = {
            let stream = tokio::net::UnixStream::connect(&endpoint.path)
                .await
                .map_err(|_| CallError::NotRunning)?;
            // Only an agent of this user's is the app's agent.
            if !stream.peer_cred().is_ok_and(|c| c.uid() == own_uid()) {
                tracing::warn!(path = %endpoint.path.display(), "the control endpoint is held by another user; not talking to it");
                return Err(CallError::NotRunning);
            }
            stream
        };
        #[cfg(windows)]
        let stream = {
            // Every instance busy (another client is being accepted): wait a moment.
            const ERROR_PIPE_BUSY: i32 = 231;
            let mut tries = 0;
            loop {
                match tokio::net::windows::named_pipe::ClientOptions::new().open(&endpoint.pipe) {
                    Ok(s) => break s,
                    Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(_) => return Err(CallError::NotRunning),
                }
            }
        };
        let (read, mut write) = tokio::io::split(stream);
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(mut line) = out_rx.recv().await {
                line.push('\n');
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            // The client was dropped: say so, so the agent closes its side.
            let _ = write.shutdown().await;
        });
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        // Bounded too: a reader of events that stalls loses events, and
        // is told to re-read everything when it reads again.
        let (events_tx, events) = mpsc::channel::<Event>(CLIENT_EVENT_QUEUE);
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            let mut reader = BufReader::new(read);
            let mut missed = false;
            while let Ok(Some(line)) = read_line(&mut reader).await {
                let Ok(m) = serde_json::from_str::<Message>(&line) else {
                    continue;
                };
                let (id, answer) = match m {
                    Message::Result { id, value } => (id, Ok(value)),
                    Message::Error { id, message } => (id, Err(message)),
                    Message::Event { name, payload } => {
                        // An event this version cannot read (a newer agent's)
                        // is not dropped silently: the page re-reads everything.
                        let event = serde_json::from_value::<Event>(
                            serde_json::json!({ "event": name, "payload": payload }),
                        )
                        .unwrap_or_else(|e| {
                            tracing::warn!(event = %name, error = %e, "an unreadable event from the agent; re-reading everything");
                            Event::Resync
                        });
                        if missed {
                            missed = events_tx.try_send(Event::Resync).is_err();
                        }
                        if !missed {
                            missed = events_tx.try_send(event).is_err();
                        }
                        continue;
                    }
                };
                let waiter = reader_pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .and_then(|p| p.remove(&id));
                if let Some(w) = waiter {
                    let _ = w.send(answer);
                }
            }
            // The agent is gone: every waiting call fails, the events end.
            *reader_pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
        Ok((
            Client {
                out,
                pending,
                next_id: AtomicU64::new(1),
                timeout: CALL_TIMEOUT,
                _reader: AbortOnDrop(reader),
            },
            events,
        ))
    }

    /// One command; its answer as it came.
    pub async fn call(&self, request: &Request) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(p) => p.insert(id, tx),
            None => return Err(CallError::NotRunning),
        };
        let line = wire_line(id, request).map_err(|e| CallError::Refused(e.to_string()))?;
        self.out.send(line).map_err(|_| CallError::NotRunning)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(message))) => Err(CallError::Refused(message)),
            Ok(Err(_)) => Err(CallError::NotRunning),
            Err(_) => {
                // Its answer, if it ever comes, has nobody waiting.
                if let Some(p) = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                {
                    p.remove(&id);
                }
                Err(CallError::TimedOut(self.timeout.as_secs()))
            }
        }
    }

    /// Wait at most `timeout` for each answer (default [`CALL_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// One command, its answer read as what that command answers.
    pub async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<T, CallError> {
        let v = self.call(request).await?;
        serde_json::from_value(v).map_err(|e| CallError::Unreadable(e.to_string()))
    }

    /// Receive events from now on; `window` tells the agent a window listens.
    pub async fn subscribe(&self, window: bool) -> Result<(), CallError> {
        self.call(&Request::Subscribe { window }).await.map(|_| ())
    }
}

/// `{"id": …, "cmd": …, "args": …}` for one request.
fn wire_line(id: u64, request: &Request) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Line<'a> {
        id: u64,
        #[serde(flatten)]
        request: &'a Request,
    }
    serde_json::to_string(&Line { id, request })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `open_update_package` with its URL; refuses the rest.
    fn echo() -> Handler {
        Arc::new(|request| {
            Box::pin(async move {
                match request {
                    Request::OpenUpdatePackage { url } => Ok(Value::String(url)),
                    other => Err(format!("unknown command {}", other.name())),
                }
            })
        })
    }

    fn echo_request(text: &str) -> Request {
        Request::OpenUpdatePackage { url: text.into() }
    }

    #[tokio::test]
    async fn requests_are_answered_events_reach_subscribers_and_windows_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let listener = Listener::bind(&endpoint).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&endpoint.path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "only this user");
        }
        assert!(
            Listener::bind(&endpoint).await.is_err(),
            "one agent per data directory"
        );
        let hub = Hub::default();
        let server = tokio::spawn(serve(listener, echo(), hub.clone()));

        let (client, mut events) = Client::connect(&endpoint).await.unwrap();
        let v = client.call(&echo_request("a")).await.unwrap();
        assert_eq!(v, serde_json::json!("a"));
        let e = client.call(&Request::CheckNow).await.unwrap_err();
        assert_eq!(e.to_string(), "unknown command check_now");

        assert_eq!(hub.windows(), 0);
        client.subscribe(true).await.unwrap();
        assert_eq!(hub.windows(), 1);
        hub.send(Event::Highlight {
            order_id: "o2".into(),
        });
        let got = events.recv().await.unwrap();
        assert_eq!(
            got,
            Event::Highlight {
                order_id: "o2".into()
            }
        );

        // The window goes: counted out.
        drop(client);
        drop(events);
        for _ in 0..100 {
            if hub.windows() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(hub.windows(), 0);

        // The agent goes: calls fail as "not running", events end.
        let (client, mut events) = Client::connect(&endpoint).await.unwrap();
        client.subscribe(false).await.unwrap();
        server.abort();
        let _ = server.await;
        assert!(events.recv().await.is_none());
        assert!(matches!(
            client.call(&echo_request("x")).await,
            Err(CallError::NotRunning)
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_line_with_an_unknown_command_or_bad_arguments_is_answered_with_the_reason() {
        use tokio::io::AsyncBufReadExt;
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let listener = Listener::bind(&endpoint).await.unwrap();
        let _server = AbortOnDrop(tokio::spawn(serve(listener, echo(), Hub::default())));
        let stream = tokio::net::UnixStream::connect(&endpoint.path)
            .await
            .unwrap();
        let (read, mut write) = tokio::io::split(stream);
        write
            .write_all(
                b"{\"id\":1,\"cmd\":\"mark_sean\",\"args\":{}}\n{\"id\":2,\"cmd\":\"mark_seen\",\"args\":{\"order\":1}}\n",
            )
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        let mut answers = Vec::new();
        for _ in 0..2 {
            let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
                .await
                .expect("answered, not left to time out")
                .unwrap()
                .unwrap();
            answers.push(serde_json::from_str::<Value>(&line).unwrap());
        }
        answers.sort_by_key(|a| a["id"].as_u64());
        assert_eq!(answers[0]["type"], "error");
        assert_eq!(answers[0]["message"], "unknown command `mark_sean`");
        assert_eq!(answers[1]["type"], "error");
        let m = answers[1]["message"].as_str().unwrap();
        assert!(m.contains("mark_seen") && m.contains("order_id"), "{m}");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_read_everything_again() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let listener = Listener::bind(&endpoint).await.unwrap();
        let hub = Hub::default();
        let _server = AbortOnDrop(tokio::spawn(serve(listener, echo(), hub.clone())));
        let (client, mut events) = Client::connect(&endpoint).await.unwrap();
        client.subscribe(true).await.unwrap();
        // More than the channel holds, before the connection can forward any.
        for n in 0..1000 {
            hub.send(Event::Highlight {
                order_id: n.to_string(),
            });
        }
        let mut told = false;
        while let Ok(Some(e)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await
        {
            if e == Event::Resync {
                told = true;
                break;
            }
        }
        assert!(told, "a lagging window is told to re-read");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_stale_socket_from_a_crash_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        std::fs::write(&endpoint.path, b"").unwrap();
        let _listener = Listener::bind(&endpoint).await.unwrap();
        assert!(tokio::net::UnixStream::connect(&endpoint.path)
            .await
            .is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_fifty_agents_started_at_once_exactly_one_listens() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let mut starts = tokio::task::JoinSet::new();
        // All released at once, on several threads.
        let go = Arc::new(tokio::sync::Barrier::new(50));
        for _ in 0..50 {
            let endpoint = endpoint.clone();
            let go = go.clone();
            starts.spawn(async move {
                go.wait().await;
                Listener::bind(&endpoint).await
            });
        }
        let mut listening = Vec::new();
        let mut refused = 0;
        while let Some(r) = starts.join_next().await {
            match r.unwrap() {
                Ok(l) => listening.push(l),
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
                    refused += 1;
                }
            }
        }
        assert_eq!(listening.len(), 1, "exactly one agent");
        assert_eq!(refused, 49);
        // Its lock also keeps a second watcher off the data directory.
        let again = std::fs::OpenOptions::new()
            .write(true)
            .open(&endpoint.lock)
            .unwrap();
        assert!(again.try_lock().is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_socket_path_that_belongs_to_someone_else_is_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        if own_uid() != 0 {
            eprintln!("skipped: needs root to make a file of another user's");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        std::fs::write(&endpoint.path, b"").unwrap();
        std::os::unix::fs::chown(&endpoint.path, Some(65534), Some(65534)).unwrap();
        let e = Listener::bind(&endpoint).await.err().expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("belongs to another user"), "{e}");
        assert!(endpoint.path.exists(), "left where it was");
        // A directory someone else may write to is refused too.
        std::fs::remove_file(&endpoint.path).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Listener::bind(&endpoint).await.err().expect("refused");
        assert!(e.to_string().contains("not a private directory"), "{e}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_deep_data_directory_without_a_runtime_directory_listens_in_a_private_one() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(120));
        std::fs::create_dir_all(&deep).unwrap();
        let temp = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir_in(&deep, None, temp.path());
        let private = endpoint.path.parent().unwrap().to_path_buf();
        assert!(private.starts_with(temp.path()));
        assert_ne!(private, temp.path(), "never loose in the temp directory");
        let listener = Listener::bind(&endpoint).await.unwrap();
        let meta = std::fs::metadata(&private).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), own_uid());
        drop(listener);
        // Someone made it first, open to everyone: refused, not used.
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Listener::bind(&endpoint).await.err().expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("not a private directory"), "{e}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_peer_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let mut listener = Listener::bind(&endpoint).await.unwrap();
        // As if every client were someone else.
        listener.uid = own_uid().wrapping_add(1);
        let served = Arc::new(AtomicUsize::new(0));
        let counted = served.clone();
        let handler: Handler = Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(Value::Null) })
        });
        let _server = AbortOnDrop(tokio::spawn(serve(listener, handler, Hub::default())));
        let (client, _events) = Client::connect(&endpoint).await.unwrap();
        assert!(matches!(
            client.call(&echo_request("x")).await,
            Err(CallError::NotRunning)
        ));
        assert_eq!(served.load(Ordering::SeqCst), 0, "no command ran");
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_in_flight_and_connections_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let listener = Listener::bind(&endpoint).await.unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let handler: Handler = {
            let started = started.clone();
            let release = release.clone();
            Arc::new(move |_| {
                let started = started.clone();
                let release = release.clone();
                Box::pin(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok(Value::Null)
                })
            })
        };
        let _server = AbortOnDrop(tokio::spawn(serve(listener, handler, Hub::default())));
        // One connection sends 40 commands that all wait: 16 run at a time.
        let (client, _events) = Client::connect(&endpoint).await.unwrap();
        let client = Arc::new(client);
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let c = client.clone();
            calls.spawn(async move { c.call(&Request::CheckNow).await });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(started.load(Ordering::SeqCst), MAX_CALLS_PER_CONNECTION);
        release.notify_waiters();
        // Connections: 32 at once; the next is refused (its calls fail).
        let mut open = Vec::new();
        for _ in 1..MAX_CONNECTIONS {
            open.push(Client::connect(&endpoint).await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (extra, _e) = Client::connect(&endpoint).await.unwrap();
        let extra = extra.with_timeout(std::time::Duration::from_secs(5));
        assert!(matches!(
            extra.call(&echo_request("x")).await,
            Err(CallError::NotRunning)
        ));
        drop(open);
    }

    #[cfg(unix)]
    fn rss_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_that_never_reads_is_dropped_and_the_others_carry_on() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::for_data_dir(dir.path());
        let listener = Listener::bind(&endpoint).await.unwrap();
        let hub = Hub::default();
        let _server = AbortOnDrop(tokio::spawn(serve(listener, echo(), hub.clone())));
        // A raw client that subscribes and then never reads.
        let mut stuck = tokio::net::UnixStream::connect(&endpoint.path)
            .await
            .unwrap();
        stuck
            .write_all(b"{\"id\":1,\"cmd\":\"subscribe\",\"args\":{}}\n")
            .await
            .unwrap();
        // A window that reads.
        let (client, mut events) = Client::connect(&endpoint).await.unwrap();
        client.subscribe(true).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let before = rss_kib();
        let payload = Event::Highlight {
            order_id: "x".repeat(1000),
        };
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            while let Ok(Some(_)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await
            {
                got += 1;
            }
            got
        });
        for _ in 0..100_000 {
            hub.send(payload.clone());
            tokio::task::yield_now().await;
        }
        let after = rss_kib();
        eprintln!(
            "agent RSS while a subscriber never read 100,000 events of 1 KB: {before:?} KiB before, {after:?} KiB after"
        );
        // The stuck one was told to re-read (it missed events), or given up
        // on (its connection closed); what it can still read is bounded.
        let mut buf = vec![0u8; 1 << 20];
        let mut pending = Vec::new();
        let mut closed = false;
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(8), stuck.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&pending);
        let lines = text.lines().count();
        eprintln!(
            "the stuck subscriber had {lines} messages ({} KiB) waiting; closed: {closed}",
            pending.len() / 1024
        );
        assert!(closed || text.contains("\"resync\""), "resynced or dropped");
        assert!(
            lines < 100_000 / 10,
            "bounded: {lines} messages held for it"
        );
        // The reading one is unaffected: it got events, and still answers.
        assert!(reader.await.unwrap() > 0);
        let v = client.call(&echo_request("still here")).await.unwrap();
        assert_eq!(v, serde_json::json!("still here"));
    }
}
