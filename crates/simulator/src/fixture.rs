//! "An app configured against the simulator", in one place: the config file
//! every test suite, the demo and `simulate` write, a free loopback port for
//! the sign-in redirect, and the demo client's credentials.

use crate::{SimConfig, Simulator, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

/// A free loopback port (for a sign-in redirect each test owns), bound
/// later. Chosen at random below the kernel's ephemeral range (32768 and
/// up on Linux): a port the kernel hands out itself may meanwhile become the
/// local end of some test's outgoing connection, and the later bind fail.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The demo client with its secret, tokens in a private file (no keyring).
pub fn demo_credentials() -> String {
    format!(
        "client_id = \"{DEMO_CLIENT_ID}\"\nclient_secret = \"{DEMO_CLIENT_SECRET}\"\ntoken_storage = \"file\"\n"
    )
}

/// The app's configuration (`environment = "custom"`) for a simulator at
/// `base`, with `redirect_uri`; `extra` is appended as it is.
pub fn app_config(base: &str, redirect_uri: &str, extra: &str) -> String {
    format!(
        r#"environment = "custom"
api_base = "{base}/api"
authorize_url = "{base}/api/oauth/authorize"
token_url = "{base}/api/oauth/token"
revoke_url = "{base}/api/oauth/revoke"
results_url = "{base}/labs/orders/{{id}}"
labs_url = "{base}/labs"
redirect_uri = "{redirect_uri}"
{extra}
"#
    )
}

/// A simulator whose registered redirect URI is on a free port; answers it
/// and the redirect URI.
pub async fn start_with_free_redirect(
    mut config: SimConfig,
) -> std::io::Result<(Simulator, String)> {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    config.redirect_uri = redirect.clone();
    Ok((Simulator::start(config).await?, redirect))
}

/// Wait until something listens on loopback `port` (a server just spawned);
/// panics after 20 s, naming the port.
pub fn wait_for_port(port: u16) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process that is killed (and reaped) when dropped, so a failing
/// test leaves no server behind.
pub struct Process(pub std::process::Child);

impl Process {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Kill it now (a crash, as far as anything talking to it can tell).
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real `nats-server` with JetStream on loopback `port`, its store in
/// `store` (start it again on the same two and it finds what it had on
/// disk). The relay's engine is never simulated: its tests, the end-to-end
/// suite and the benchmark all run this; `scripts/setup.sh` installs it.
pub struct JetStream {
    process: Process,
    pub port: u16,
}

impl JetStream {
    pub fn start(store: &std::path::Path, port: u16) -> JetStream {
        JetStream::spawn(store, port, &[])
    }

    /// One node `name` of the JetStream cluster `fsn` (the flags
    /// `deploy/compose.yaml` gives its nodes), its routes on loopback
    /// `cluster_port`, the other nodes' at `routes`.
    pub fn start_in_cluster(
        store: &std::path::Path,
        port: u16,
        name: &str,
        cluster_port: u16,
        routes: &[u16],
    ) -> JetStream {
        let routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let args = [
            "-n".to_string(),
            name.to_string(),
            "--cluster_name".into(),
            "fsn".into(),
            "--cluster".into(),
            format!("nats://127.0.0.1:{cluster_port}"),
            "--routes".into(),
            routes,
        ];
        JetStream::spawn(store, port, &args)
    }

    fn spawn(store: &std::path::Path, port: u16, extra: &[String]) -> JetStream {
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs it)");
        let process = Process(child);
        wait_for_port(port);
        JetStream { process, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// A single server stopped and started again on its port and `store`:
    /// what it had stored is still there.
    pub fn restart(&mut self, store: &std::path::Path) {
        // Gone before the new one takes the port.
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        *self = JetStream::start(store, self.port);
    }
}

/// The relay's settings (`key`, value) for a Fullscript at `base` (the
/// simulator, or a stand-in with its paths): as a relay binary's
/// `FSN_RELAY_<KEY>` environment or as lines of its TOML file.
pub fn relay_fullscript_at(base: &str) -> [(&'static str, String); 4] {
    [
        ("environment", "custom".to_string()),
        ("api_base", format!("{base}/api")),
        ("token_url", format!("{base}/api/oauth/token")),
        ("revoke_url", format!("{base}/api/oauth/revoke")),
    ]
}

/// [`relay_fullscript_at`] as the relay binary's environment variables.
pub fn relay_env_for_fullscript_at(base: &str) -> Vec<(String, String)> {
    relay_fullscript_at(base)
        .into_iter()
        .map(|(k, v)| (format!("FSN_RELAY_{}", k.to_uppercase()), v))
        .collect()
}
