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
