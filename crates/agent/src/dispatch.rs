//! The agent's commands: one arm per [`Request`] variant, each one line
//! into the [`Controller`]. The match is exhaustive: a command added to
//! the protocol does not compile until it is handled here.

use std::sync::Arc;

use fsn_protocol::Request;
use serde::Serialize;
use serde_json::Value;

use crate::controller::{CmdResult, Controller};

/// The agent itself: Quit (the tray, a restart into an update), and the
/// one-window rule.
pub trait AgentControl: Send + Sync {
    fn quit(&self);
    /// A window is open already: bring it forward (answers whether one was).
    fn focus_open_window(&self) -> bool;
}

fn answer<T: Serialize>(r: CmdResult<T>) -> Result<Value, String> {
    r.map_err(|e| e.to_string())
        .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
}

/// Run one command.
pub async fn dispatch(
    ctl: &Arc<Controller>,
    agent: &dyn AgentControl,
    request: Request,
) -> Result<Value, String> {
    match request {
        Request::Snapshot => answer(Ok(ctl.snapshot().await)),
        Request::ListOrders => answer(ctl.list_orders().await),
        Request::ListPage { query } => answer(ctl.list_page(query.unwrap_or_default()).await),
        Request::OpenResults { order_id } => answer(ctl.open_results(order_id).await),
        Request::MarkSeen { order_id } => answer(ctl.mark_seen(order_id).await),
        Request::MarkAllSeen => answer(ctl.mark_all_seen().await),
        Request::UndoMarkAllSeen => answer(ctl.undo_mark_all_seen().await),
        Request::CheckNow => answer(ctl.check_now().await),
        Request::GetSettings => answer(ctl.get_settings().await),
        Request::SaveSettings { settings } => answer(ctl.save_settings(settings).await),
        Request::PauseNotifications { preset } => answer(ctl.pause(&preset).await),
        Request::ResumeNotifications => answer(ctl.resume().await),
        Request::PauseOrResume => answer(ctl.pause_or_resume().await),
        Request::SignIn {
            region,
            environment,
            client_id,
            client_secret,
        } => answer(
            ctl.sign_in(region, environment, client_id, client_secret)
                .await,
        ),
        Request::CancelSignIn => answer(ctl.cancel_sign_in().await),
        Request::SignOut { erase } => answer(ctl.sign_out(erase).await),
        Request::TakeView => answer(Ok(ctl.take_view())),
        Request::CheckForUpdate => answer(ctl.check_for_update().await),
        Request::OpenUpdatePackage { url } => answer(ctl.open_update_package(url).await),
        Request::SendTestNotification => answer(ctl.send_test_notification().await),
        Request::SetLaunchAtLogin { on } => answer(ctl.set_launch_at_login(on)),
        Request::DismissWelcome => answer(ctl.dismiss_welcome().await),
        Request::DismissCatchUp => answer(ctl.dismiss_catch_up().await),
        Request::ShowWindow => {
            ctl.show_window();
            Ok(Value::Null)
        }
        Request::WindowClosed => {
            ctl.window_closed();
            Ok(Value::Null)
        }
        Request::FocusOpenWindow => Ok(Value::Bool(agent.focus_open_window())),
        Request::Quit => {
            agent.quit();
            Ok(Value::Null)
        }
        // The endpoint answers it itself (it is about the connection).
        Request::Subscribe { .. } => Err("`subscribe` is answered by the endpoint".into()),
    }
}
