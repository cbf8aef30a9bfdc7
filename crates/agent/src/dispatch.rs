//! The agent's commands: each one line into the [`Controller`], reached
//! over the control endpoint by the window (and by a second start of the
//! app). Arguments arrive as JSON objects with snake_case keys.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::controller::{CmdResult, Controller, Settings};
use fsn_core::config::Region;

/// The agent itself: Quit (the tray, a restart into an update), and the
/// one-window rule.
pub trait AgentControl: Send + Sync {
    fn quit(&self);
    /// A window is open already: bring it forward (answers whether one was).
    fn focus_open_window(&self) -> bool;
}

fn arg<T: DeserializeOwned>(args: &Value, key: &str) -> Result<T, String> {
    serde_json::from_value(args.get(key).cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("`{key}`: {e}"))
}

fn answer<T: Serialize>(r: CmdResult<T>) -> Result<Value, String> {
    r.map_err(|e| e.to_string())
        .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}

/// Run one command.
pub async fn dispatch(
    ctl: &Arc<Controller>,
    agent: &dyn AgentControl,
    cmd: &str,
    args: Value,
) -> Result<Value, String> {
    let a = &args;
    match cmd {
        "snapshot" => answer(Ok(ctl.snapshot().await)),
        "list_orders" => answer(ctl.list_orders().await),
        "list_page" => answer(
            ctl.list_page(
                arg::<Option<fsn_core::list::ListQuery>>(a, "query")?.unwrap_or_default(),
            )
            .await,
        ),
        "open_results" => answer(ctl.open_results(arg(a, "order_id")?).await),
        "mark_seen" => answer(ctl.mark_seen(arg(a, "order_id")?).await),
        "mark_all_seen" => answer(ctl.mark_all_seen().await),
        "undo_mark_all_seen" => answer(ctl.undo_mark_all_seen().await),
        "check_now" => answer(ctl.check_now().await),
        "get_settings" => answer(ctl.get_settings().await),
        "save_settings" => answer(ctl.save_settings(arg::<Settings>(a, "settings")?).await),
        "pause_notifications" => answer(ctl.pause(&arg::<String>(a, "preset")?).await),
        "resume_notifications" => answer(ctl.resume().await),
        "pause_or_resume" => answer(ctl.pause_or_resume().await),
        "sign_in" => answer(
            ctl.sign_in(
                arg::<Option<Region>>(a, "region")?,
                arg(a, "environment")?,
                arg(a, "client_id")?,
                arg(a, "client_secret")?,
            )
            .await,
        ),
        "cancel_sign_in" => answer(ctl.cancel_sign_in().await),
        "sign_out" => answer(
            ctl.sign_out(arg::<Option<bool>>(a, "erase")?.unwrap_or(false))
                .await,
        ),
        "take_view" => answer(Ok(ctl.take_view())),
        "check_for_update" => answer(ctl.check_for_update().await),
        "open_update_package" => answer(ctl.open_update_package(arg(a, "url")?).await),
        "send_test_notification" => answer(ctl.send_test_notification().await),
        "set_launch_at_login" => answer(ctl.set_launch_at_login(arg(a, "on")?)),
        "dismiss_welcome" => answer(ctl.dismiss_welcome().await),
        "dismiss_catch_up" => answer(ctl.dismiss_catch_up().await),
        // The app was started again, or the tray asked: show the window.
        "show_window" => {
            ctl.show_window();
            Ok(Value::Null)
        }
        // The window is closing (the first time, the agent says it keeps watching).
        "window_closed" => {
            ctl.window_closed();
            Ok(Value::Null)
        }
        "focus_open_window" => Ok(Value::Bool(agent.focus_open_window())),
        "quit" => {
            agent.quit();
            Ok(Value::Null)
        }
        other => Err(format!("unknown command `{other}`")),
    }
}
