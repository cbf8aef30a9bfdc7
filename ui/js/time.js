// "changed 5 min ago", from an RFC 3339 timestamp.
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  return d === 1 ? "yesterday" : `${d} days ago`;
}

// "at 14:05" (today) or a short date, for the next/last check.
export function clock(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  const sameDay = t.toDateString() === new Date().toDateString();
  return sameDay
    ? t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : t.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// "Fri 5:12 pm": a day and a time, for "since …" and "until …".
export function dayTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  return t.toLocaleString([], { weekday: "short", hour: "numeric", minute: "2-digit" });
}
