// The page's only way to the app: Tauri commands and events (no HTTP, no
// polling: the app pushes changes). Every name comes from protocol.js, which
// is generated from the Rust types.
import { WindowCommand } from "./protocol.js";

const tauri = window.__TAURI__;

/**
 * One request to the background agent, forwarded by the window.
 * @param {string} cmd a `Command` value
 * @param {Object} [args] the request's arguments (snake_case, as the Rust type)
 */
export function call(cmd, args) {
  const request = args === undefined ? { cmd } : { cmd, args };
  return tauri.core.invoke(WindowCommand.CALL, { request });
}

/**
 * One of the window's own commands (installing an update).
 * @param {string} command a `WindowCommand` value
 */
export function callWindow(command) {
  return tauri.core.invoke(command);
}

/**
 * @param {string} event an `Event` value
 * @param {(payload: any) => void} handler
 */
export function on(event, handler) {
  return tauri.event.listen(event, (e) => handler(e.payload));
}
