//! The page's commands. Each is thin: it calls the core and reports errors
//! as one readable sentence.

use std::time::Duration;

use chrono::{Local, TimeZone, Utc};
use fsn_core::config::{write_settings, Environment, NotifyStates, SettingsUpdate};
use fsn_core::opener::UrlGuard;
use fsn_core::secret::Secret;
use fsn_core::store::{ts, OrderRow};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, Runtime, State};

use super::state::{AppState, Snapshot};
use super::{events, push_state, start_watching};

pub fn register<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        snapshot,
        list_orders,
        open_results,
        mark_seen,
        mark_all_seen,
        check_now,
        get_settings,
        save_settings,
        pause_notifications,
        resume_notifications,
        sign_in,
        cancel_sign_in,
        sign_out,
        take_highlight,
    ])
}

type CmdResult<T> = Result<T, String>;

fn changed<R: Runtime>(app: &AppHandle<R>) {
    let _ = app.emit(events::ORDERS, ());
    push_state(app);
}

async fn core(state: &AppState) -> CmdResult<std::sync::Arc<fsn_core::App>> {
    state
        .services
        .lock()
        .await
        .core
        .clone()
        .ok_or_else(|| "The app is not set up yet: sign in first.".to_string())
}

#[tauri::command]
pub async fn snapshot(state: State<'_, AppState>) -> CmdResult<Snapshot> {
    Ok(state.snapshot().await)
}

#[tauri::command]
pub async fn list_orders(state: State<'_, AppState>) -> CmdResult<Vec<OrderRow>> {
    let core = core(&state).await?;
    core.store.list_orders().map_err(|e| e.to_string())
}

/// Open an order's results in the browser and mark them seen; answers the URL opened.
#[tauri::command]
pub async fn open_results<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    order_id: String,
) -> CmdResult<String> {
    let core = core(&state).await?;
    let guard = UrlGuard::new(&core.config);
    let document = core
        .store
        .order_document_url(&order_id)
        .map_err(|e| e.to_string())?;
    let url = fsn_core::policy::results_link(
        &guard,
        &core.config.endpoints,
        &order_id,
        document.as_deref(),
    )
    .ok_or("No results page is configured for this order.")?;
    core.store
        .mark_order_seen(&order_id, Utc::now())
        .map_err(|e| e.to_string())?;
    changed(&app);
    let to_open = url.clone();
    tokio::task::spawn_blocking(move || guard.open(&to_open))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(url.to_string())
}

#[tauri::command]
pub async fn mark_seen<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    order_id: String,
) -> CmdResult<usize> {
    let n = core(&state)
        .await?
        .store
        .mark_order_seen(&order_id, Utc::now())
        .map_err(|e| e.to_string())?;
    changed(&app);
    Ok(n)
}

#[tauri::command]
pub async fn mark_all_seen<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> CmdResult<usize> {
    let n = core(&state)
        .await?
        .store
        .mark_all_seen(Utc::now())
        .map_err(|e| e.to_string())?;
    changed(&app);
    Ok(n)
}

#[tauri::command]
pub async fn check_now(state: State<'_, AppState>) -> CmdResult<()> {
    match state.watcher().await {
        Some(w) => {
            // A person asked: read every order, not only those with events.
            w.check_now_with_sweep();
            Ok(())
        }
        None => Err("Not watching: sign in first.".into()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub poll_interval_secs: u64,
    pub notify_states: NotifyStates,
    pub show_patient_names: bool,
    pub sound: bool,
    pub launch_at_login: bool,
    #[serde(default)]
    pub paused_until: Option<String>,
}

fn launch_at_login<R: Runtime>(app: &AppHandle<R>) -> Option<bool> {
    app.try_state::<tauri_plugin_autostart::AutoLaunchManager>()
        .and_then(|m| m.is_enabled().ok())
}

#[tauri::command]
pub async fn get_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> CmdResult<Settings> {
    let core = core(&state).await?;
    // The file is the source of truth (a watcher may run with an older copy).
    let config = fsn_core::Config::load(&core.paths.config_file).map_err(|e| e.to_string())?;
    let now = ts(Utc::now());
    Ok(Settings {
        poll_interval_secs: config.poll_interval.as_secs(),
        notify_states: config.notify_states,
        show_patient_names: config.show_patient_names,
        sound: config.sound,
        launch_at_login: launch_at_login(&app).unwrap_or(false),
        paused_until: core
            .store
            .meta_get("paused_until")
            .ok()
            .flatten()
            .filter(|p| *p > now),
    })
}

#[tauri::command]
pub async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    settings: Settings,
) -> CmdResult<Settings> {
    let core = core(&state).await?;
    let config = write_settings(
        &core.paths.config_file,
        &SettingsUpdate {
            poll_interval_secs: Some(settings.poll_interval_secs),
            notify_states: Some(settings.notify_states),
            show_patient_names: Some(settings.show_patient_names),
            sound: Some(settings.sound),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(w) = state.watcher().await {
        w.update_settings(|s| {
            s.poll_interval_secs = config.poll_interval.as_secs();
            s.notify_states = config.notify_states;
            s.show_patient_names = config.show_patient_names;
            s.sound = config.sound;
        });
    }
    if let Some(m) = app.try_state::<tauri_plugin_autostart::AutoLaunchManager>() {
        let result = if settings.launch_at_login {
            m.enable()
        } else {
            m.disable()
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not change launch at login");
        }
    }
    push_state(&app);
    get_settings(app, state).await
}

/// `1h`, or `tomorrow` (until 8:00 tomorrow, local time).
#[tauri::command]
pub async fn pause_notifications<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    preset: String,
) -> CmdResult<String> {
    let until = match preset.as_str() {
        "1h" => Utc::now() + chrono::Duration::hours(1),
        "tomorrow" => {
            let tomorrow = Local::now().date_naive() + chrono::Duration::days(1);
            let eight = tomorrow.and_hms_opt(8, 0, 0).ok_or("bad date")?;
            Local
                .from_local_datetime(&eight)
                .earliest()
                .map(|d| d.with_timezone(&Utc))
                .ok_or("bad local time")?
        }
        other => return Err(format!("Unknown pause `{other}` (1h or tomorrow).")),
    };
    set_pause(&app, &state, Some(until)).await?;
    Ok(ts(until))
}

#[tauri::command]
pub async fn resume_notifications<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> CmdResult<()> {
    set_pause(&app, &state, None).await
}

pub async fn set_pause<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    until: Option<chrono::DateTime<Utc>>,
) -> CmdResult<()> {
    let core = core(state).await?;
    match until {
        Some(t) => core.store.meta_set("paused_until", &ts(t)),
        None => core.store.meta_delete("paused_until"),
    }
    .map_err(|e| e.to_string())?;
    if let Some(w) = state.watcher().await {
        w.update_settings(|s| s.paused_until = until);
    }
    push_state(app);
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct SignInStarted {
    /// Shown for copying, in case the browser did not open.
    pub authorize_url: String,
}

#[tauri::command]
pub async fn sign_in<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    environment: String,
    client_id: String,
    client_secret: Option<String>,
) -> CmdResult<SignInStarted> {
    let environment: Environment = environment.parse()?;
    let client_id = client_id.trim().to_string();
    if client_id.is_empty() {
        return Err("Enter the client id from your Fullscript API Dashboard.".into());
    }
    begin_sign_in(
        &app,
        &state,
        Some((environment, client_id)),
        client_secret.filter(|s| !s.trim().is_empty()),
    )
    .await
}

/// Save the sign-in settings, then run the OAuth flow in the background;
/// answers as soon as the browser has been pointed at Fullscript.
pub async fn begin_sign_in<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    app_settings: Option<(Environment, String)>,
    client_secret: Option<String>,
) -> CmdResult<SignInStarted> {
    if let Some(t) = state
        .sign_in_task
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        t.abort();
    }
    state.stop_watching().await;
    let mut svc = state.services.lock().await;
    if let Some((environment, client_id)) = app_settings {
        write_settings(
            &state.paths.config_file,
            &SettingsUpdate {
                environment: Some(environment),
                client_id: Some(client_id),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
    }
    state.reload(&mut svc);
    let core = svc
        .core
        .clone()
        .ok_or_else(|| svc.error.clone().unwrap_or_default())?;
    if let Some(secret) = client_secret {
        core.save_client_secret(&Secret::new(secret.trim()))
            .map_err(|e| format!("Could not keep the client secret: {e}"))?;
    }
    let session = core.session().map_err(|e| e.to_string())?;
    svc.session = Some(session.clone());
    drop(svc);

    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let browser = state.browser();
    let task_app = app.clone();
    let task = tauri::async_runtime::spawn(async move {
        let guard = UrlGuard::new(&core.config);
        let result = core
            .login(&session, |url| {
                let _ = url_tx.send(url.to_string());
                match &browser {
                    Some(b) => b(url),
                    None => {
                        if let Err(e) = guard.open(url) {
                            tracing::warn!(error = %e, "could not open the browser for sign-in");
                        }
                    }
                }
            })
            .await;
        let st = task_app.state::<AppState>();
        let outcome = match result {
            Ok(_) => {
                let mut svc = st.services.lock().await;
                match start_watching(&task_app, &mut svc).await {
                    Ok(()) => serde_json::json!({"ok": true, "message": "Signed in."}),
                    Err(e) => serde_json::json!({"ok": false, "message": e}),
                }
            }
            Err(e) => serde_json::json!({"ok": false, "message": e.to_string()}),
        };
        let _ = task_app.emit(events::SIGN_IN, outcome);
        let _ = task_app.emit(events::ORDERS, ());
        push_state(&task_app);
    });
    let finished_early = task.inner().is_finished();
    *state.sign_in_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    push_state(app);
    match tokio::time::timeout(Duration::from_secs(30), url_rx).await {
        Ok(Ok(url)) => Ok(SignInStarted { authorize_url: url }),
        // The flow ended before a browser was needed: its event says why.
        _ if finished_early => Err("Sign-in could not start.".into()),
        _ => Err(
            "Sign-in could not start: Fullscript did not answer (see the message above).".into(),
        ),
    }
}

#[tauri::command]
pub async fn cancel_sign_in<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> CmdResult<()> {
    if let Some(t) = state
        .sign_in_task
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        t.abort();
    }
    push_state(&app);
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct SignedOut {
    pub revoke_errors: Vec<String>,
    pub local_error: Option<String>,
}

#[tauri::command]
pub async fn sign_out<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> CmdResult<SignedOut> {
    state.stop_watching().await;
    let svc = state.services.lock().await;
    let (core, session) = (svc.core.clone(), svc.session.clone());
    drop(svc);
    let (Some(core), Some(session)) = (core, session) else {
        return Err("Not signed in.".into());
    };
    let report = core.logout(&session).await;
    changed(&app);
    Ok(SignedOut {
        revoke_errors: report.revoke_errors,
        local_error: report.local_error,
    })
}

#[tauri::command]
pub fn take_highlight(state: State<'_, AppState>) -> Option<String> {
    state.take_highlight()
}

/// The demo signs itself in through the real OAuth flow, approved by the simulator.
pub async fn demo_sign_in<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    *state.browser.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(std::sync::Arc::new(crate::demo::auto_approve_browser));
    let signed_in = match state.services.lock().await.session.clone() {
        Some(s) => s.is_signed_in().await,
        None => false,
    };
    if !signed_in {
        if let Err(e) = begin_sign_in(app, &state, None, None).await {
            tracing::error!(error = %e, "demo sign-in failed");
        }
    }
}
