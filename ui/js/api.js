// The page's only way to the app: Tauri commands and events (no HTTP, no
// polling: the app pushes changes).
const tauri = window.__TAURI__;

export function call(command, args = {}) {
  return tauri.core.invoke(command, args);
}

export function on(event, handler) {
  return tauri.event.listen(event, (e) => handler(e.payload));
}
