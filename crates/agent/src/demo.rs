//! `fullscript-notifier demo`: the simulator's demo scenario inside the
//! agent, signed in to through the real OAuth flow, approved automatically,
//! so a newcomer sees orders move and notifications arrive within a minute
//! without an account.

use std::process::ExitCode;
use std::time::Duration;

use fsn_core::Paths;

pub fn run(paths: Paths, step_secs: f64) -> ExitCode {
    if !(step_secs.is_finite() && step_secs > 0.0) {
        eprintln!("error: --step-secs must be a positive number");
        return ExitCode::from(1);
    }
    // The demo keeps its own data (fresh each time) beside the real data.
    let dir = paths.data_dir.join("demo");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    let sim_config = fsn_simulator::SimConfig {
        scenario: fsn_simulator::Scenario::Demo,
        auto_approve: true,
        demo_step: Duration::from_secs_f64(step_secs),
        ..Default::default()
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let sim = match rt.block_on(fsn_simulator::Simulator::start(sim_config.clone())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the simulator: {e}");
            return ExitCode::from(1);
        }
    };
    let mut toml = fsn_simulator::fixture::app_config(
        &sim.base_url(),
        &sim_config.redirect_uri,
        &format!("client_id = \"{}\"", sim_config.client_id),
    );
    toml.push_str(&format!(
        "client_secret = \"{}\"\n# Demo: tokens in the demo folder, not your keychain; the quickest allowed polling.\ntoken_storage = \"file\"\npoll_interval_secs = 15\nsweep_every = 4\n",
        sim_config.client_secret
    ));
    let config_file = dir.join("config.toml");
    if let Err(e) = std::fs::write(&config_file, toml) {
        eprintln!("error: cannot write {}: {e}", config_file.display());
        return ExitCode::from(1);
    }
    println!(
        "Demo: Fullscript simulator at {} (invented patients and results)",
        sim.base_url()
    );
    crate::run_on(
        rt,
        Paths {
            config_file,
            data_dir: dir,
        },
        crate::Options {
            minimized: false,
            demo: Some(crate::Demo {
                simulator: sim,
                browser: std::sync::Arc::new(auto_approve_browser),
            }),
        },
    )
}

/// The demo's "browser": follows the simulator's auto-approving authorize
/// redirect to the app's loopback listener, exactly as a browser would.
pub fn auto_approve_browser(url: &url::Url) {
    let url = url.clone();
    tokio::spawn(async move {
        fsn_core::http::install_crypto_provider();
        let http = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "demo browser could not start");
                return;
            }
        };
        if let Err(e) = http.get(url).send().await {
            tracing::error!(error = %e, "demo sign-in failed");
        }
    });
}
