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
//! Nothing here knows what the commands mean (`dispatch` does); this is
//! only the transport, so a test client and the window speak it alike.

use std::collections::HashMap;
use std::path::Path;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Sent to a subscriber that fell behind and missed events: it re-reads
/// everything (the page does what it does when the agent comes back).
pub const RESYNC_EVENT: &str = "resync";

/// Longest message accepted (a clinic's whole order list fits many times over).
const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub cmd: String,
    #[serde(default)]
    pub args: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Result { id: u64, value: Value },
    Error { id: u64, message: String },
    Event { name: String, payload: Value },
}

/// An event for subscribed clients (the window).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub payload: Value,
}

/// Where the agent listens for this data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    #[cfg(unix)]
    pub path: PathBuf,
    #[cfg(windows)]
    pub pipe: String,
}

impl Endpoint {
    /// The endpoint of the agent for `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> Endpoint {
        #[cfg(unix)]
        {
            let path = data_dir.join("agent.sock");
            // A Unix socket's path is limited to ~108 bytes: a very deep data
            // directory gets its socket in the user's private runtime directory.
            let path = if path.as_os_str().len() < 100 {
                path
            } else {
                std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir)
                    .join(format!("fullscript-notifier-{:016x}.sock", hash(data_dir)))
            };
            Endpoint { path }
        }
        #[cfg(windows)]
        {
            Endpoint {
                pipe: format!(r"\\.\pipe\fullscript-notifier-{:016x}", hash(data_dir)),
            }
        }
    }
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
}

/// How long a command may take before its caller stops waiting. The
/// slowest commands (a sign-out revoking at Fullscript, an update check)
/// are bounded by their own network timeouts well within this.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

// ---------------------------------------------------------------- server

/// What the server does with a command.
pub type Handler = Arc<
    dyn Fn(
            String,
            Value,
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
    pub fn send(&self, name: &str, payload: Value) {
        let _ = self.events.send(Event {
            name: name.to_string(),
            payload,
        });
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

async fn connection<S>(stream: S, handler: Handler, hub: Hub)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let _writer = AbortOnDrop(tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let Ok(mut line) = serde_json::to_string(&m) else {
                continue;
            };
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    }));
    let mut reader = BufReader::new(read);
    let mut subscription: Option<AbortOnDrop> = None;
    // Commands in flight end with the connection.
    let mut calls = tokio::task::JoinSet::new();
    let mut is_window = false;
    loop {
        while calls.try_join_next().is_some() {}
        let line = match read_line(&mut reader).await {
            Ok(Some(l)) => l,
            Ok(None) | Err(_) => break,
        };
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "unreadable control message");
                continue;
            }
        };
        match req.cmd.as_str() {
            // Events from now on; a window says so, so the agent knows one is open.
            "subscribe" => {
                if subscription.is_none() {
                    let mut rx = hub.events.subscribe();
                    let tx = out_tx.clone();
                    subscription = Some(AbortOnDrop(tokio::spawn(async move {
                        loop {
                            match rx.recv().await {
                                Ok(e) => {
                                    let m = Message::Event {
                                        name: e.name,
                                        payload: e.payload,
                                    };
                                    if tx.send(m).is_err() {
                                        break;
                                    }
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => {
                                    // Missed some: the window re-reads everything.
                                    let _ = tx.send(Message::Event {
                                        name: RESYNC_EVENT.into(),
                                        payload: Value::Null,
                                    });
                                }
                                Err(broadcast::error::RecvError::Closed) => break,
                            }
                        }
                    })));
                }
                if req.args.get("window").and_then(Value::as_bool) == Some(true) && !is_window {
                    is_window = true;
                    hub.windows.fetch_add(1, Ordering::SeqCst);
                    hub.windows_ever.fetch_add(1, Ordering::SeqCst);
                }
                let _ = out_tx.send(Message::Result {
                    id: req.id,
                    value: Value::Null,
                });
            }
            _ => {
                let handler = handler.clone();
                let tx = out_tx.clone();
                calls.spawn(async move {
                    let m = match handler(req.cmd, req.args).await {
                        Ok(value) => Message::Result { id: req.id, value },
                        Err(message) => Message::Error {
                            id: req.id,
                            message,
                        },
                    };
                    let _ = tx.send(m);
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

/// A bound control endpoint.
pub struct Listener {
    #[cfg(unix)]
    inner: tokio::net::UnixListener,
    #[cfg(unix)]
    path: PathBuf,
    #[cfg(windows)]
    pipe: String,
    #[cfg(windows)]
    next: tokio::sync::Mutex<tokio::net::windows::named_pipe::NamedPipeServer>,
}

#[cfg(unix)]
type Stream = tokio::net::UnixStream;
#[cfg(windows)]
type Stream = tokio::net::windows::named_pipe::NamedPipeServer;

impl Listener {
    /// Bind the endpoint. Fails when another agent listens there; a stale
    /// socket left by a crash is replaced.
    pub async fn bind(endpoint: &Endpoint) -> std::io::Result<Listener> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = endpoint.path.clone();
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another agent is running",
                ));
            }
            let _ = std::fs::remove_file(&path);
            let inner = tokio::net::UnixListener::bind(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            Ok(Listener { inner, path })
        }
        #[cfg(windows)]
        {
            use tokio::net::windows::named_pipe::{ClientOptions, ServerOptions};
            let in_use =
                || std::io::Error::new(std::io::ErrorKind::AddrInUse, "another agent is running");
            // An agent answers there (Wine, unlike Windows, does not refuse
            // a second "first" instance, so ask first).
            if ClientOptions::new().open(&endpoint.pipe).is_ok() {
                return Err(in_use());
            }
            let first = ServerOptions::new()
                .first_pipe_instance(true)
                .reject_remote_clients(true)
                .create(&endpoint.pipe)
                .map_err(|e| match e.kind() {
                    // Windows: the pipe exists (another agent, all its instances busy).
                    std::io::ErrorKind::PermissionDenied => in_use(),
                    _ => e,
                })?;
            Ok(Listener {
                pipe: endpoint.pipe.clone(),
                next: tokio::sync::Mutex::new(first),
            })
        }
    }

    async fn accept(&self) -> std::io::Result<Stream> {
        #[cfg(unix)]
        {
            self.inner.accept().await.map(|(s, _)| s)
        }
        #[cfg(windows)]
        {
            use tokio::net::windows::named_pipe::ServerOptions;
            let mut next = self.next.lock().await;
            let connected = next.connect().await;
            // A fresh instance either way: one whose client came and went
            // before it was accepted (a probe) must not block the next.
            let fresh = ServerOptions::new()
                .reject_remote_clients(true)
                .create(&self.pipe)?;
            let current = std::mem::replace(&mut *next, fresh);
            connected.map(|()| current)
        }
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
    ) -> Result<(Client, mpsc::UnboundedReceiver<Event>), CallError> {
        #[cfg(unix)]
        let stream = tokio::net::UnixStream::connect(&endpoint.path)
            .await
            .map_err(|_| CallError::NotRunning)?;
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
        let (events_tx, events) = mpsc::unbounded_channel();
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            let mut reader = BufReader::new(read);
            while let Ok(Some(line)) = read_line(&mut reader).await {
                let Ok(m) = serde_json::from_str::<Message>(&line) else {
                    continue;
                };
                let (id, answer) = match m {
                    Message::Result { id, value } => (id, Ok(value)),
                    Message::Error { id, message } => (id, Err(message)),
                    Message::Event { name, payload } => {
                        let _ = events_tx.send(Event { name, payload });
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

    pub async fn call(&self, cmd: &str, args: Value) -> Result<Value, CallError> {
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
        let line = serde_json::to_string(&Request {
            id,
            cmd: cmd.to_string(),
            args,
        })
        .map_err(|e| CallError::Refused(e.to_string()))?;
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

    /// Receive events from now on; `window` tells the agent a window listens.
    pub async fn subscribe(&self, window: bool) -> Result<(), CallError> {
        self.call("subscribe", serde_json::json!({ "window": window }))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Handler {
        Arc::new(|cmd, args| {
            Box::pin(async move {
                match cmd.as_str() {
                    "echo" => Ok(args),
                    other => Err(format!("unknown command {other}")),
                }
            })
        })
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
        let v = client
            .call("echo", serde_json::json!({"a": 1}))
            .await
            .unwrap();
        assert_eq!(v, serde_json::json!({"a": 1}));
        let e = client.call("nope", Value::Null).await.unwrap_err();
        assert_eq!(e.to_string(), "unknown command nope");

        assert_eq!(hub.windows(), 0);
        client.subscribe(true).await.unwrap();
        assert_eq!(hub.windows(), 1);
        hub.send("state-changed", serde_json::json!({"n": 2}));
        let got = events.recv().await.unwrap();
        assert_eq!(got.name, "state-changed");
        assert_eq!(got.payload, serde_json::json!({"n": 2}));

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
            client.call("echo", Value::Null).await,
            Err(CallError::NotRunning)
        ));
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
            hub.send("state-changed", serde_json::json!({ "n": n }));
        }
        let mut told = false;
        while let Ok(Some(e)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await
        {
            if e.name == RESYNC_EVENT {
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
}
