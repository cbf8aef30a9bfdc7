//! HTML pages: the OAuth consent page, the results pages that "open results"
//! lands on in demo mode and tests, and an index.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::state::World;
use crate::Shared;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1d2a2f}\
h1{font-size:1.4rem}.card{border:1px solid #cfd8dc;border-radius:8px;padding:1.25rem}\
button{font:inherit;padding:.5rem 1.2rem;border-radius:6px;border:1px solid #2d6a4f;margin-right:.5rem;cursor:pointer}\
.approve{background:#2d6a4f;color:#fff}.deny{background:#fff;color:#2d6a4f}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e0e0e0;padding:.4rem;text-align:left}\
.note{color:#5f6b70;font-size:.9rem}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style></head><body>{body}\
         <p class=\"note\">Fullscript API simulator: invented data for development and tests.</p></body></html>",
        t = esc(title)
    )
}

pub fn consent_page(request_id: &str, clinic: &str) -> String {
    page(
        "Authorize application",
        &format!(
            "<div class=\"card\"><h1>Authorize Fullscript Lab Notifier?</h1>\
             <p>This application will be able to read <strong>{clinic}</strong>'s account, patients and lab orders.</p>\
             <p>Scopes: <code>clinic:read</code>, <code>patients:read</code>, <code>patients:order_history</code></p>\
             <form method=\"post\" action=\"authorize/decision\">\
             <input type=\"hidden\" name=\"request_id\" value=\"{rid}\">\
             <button class=\"approve\" id=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">Authorize</button>\
             <button class=\"deny\" id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
             </form></div>",
            clinic = esc(clinic),
            rid = esc(request_id)
        ),
    )
}

pub fn error_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<div class=\"card\"><h1>{}</h1><p>{}</p></div>",
            esc(title),
            esc(message)
        ),
    )
}

fn results_html(world: &World, id: &str) -> Option<String> {
    let order = world.order(id)?;
    let patient = world
        .patients
        .get(&order.patient_id)
        .map(|p| format!("{} {}", p.first_name, p.last_name))
        .unwrap_or_default();
    let mut rows = String::new();
    for r in &order.results {
        let link = match &r.pdf_url {
            Some(u) => format!("<a href=\"{}\">document</a>", esc(u)),
            None => String::new(),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&crate::state::iso(r.updated_at)),
            link
        ));
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"3\">No results yet.</td></tr>".into();
    }
    Some(page(
        &format!("Lab results: {}", order.name),
        &format!(
            "<h1 id=\"order-title\">{name}</h1>\
             <p>Patient: <strong>{patient}</strong> · Lab: {lab} · State: <code id=\"order-state\">{state}</code></p>\
             <p class=\"note\" id=\"order-id\">Lab order {id}</p>\
             <table><tr><th>Result</th><th>Updated</th><th></th></tr>{rows}</table>",
            name = esc(&order.name),
            patient = esc(&patient),
            lab = esc(&order.lab_company),
            state = esc(&order.state),
            id = esc(&order.id),
        ),
    ))
}

pub async fn results_page(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let world = shared.lock();
    match results_html(&world, &id) {
        Some(html) => Html(html).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(error_page(
                "Lab order not found",
                "No lab order has this id.",
            )),
        )
            .into_response(),
    }
}

pub async fn document(Path(name): Path<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "Simulated result document {}\n",
            name.trim_end_matches(".pdf")
        ),
    )
        .into_response()
}

pub async fn labs_index(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    let mut rows = String::new();
    for o in world.orders.iter().rev() {
        rows.push_str(&format!(
            "<tr><td><a href=\"/labs/orders/{id}\">{name}</a></td><td>{state}</td></tr>",
            id = esc(&o.id),
            name = esc(&o.name),
            state = esc(&o.state)
        ));
    }
    Html(page(
        "Lab orders",
        &format!("<h1>Lab orders</h1><table><tr><th>Order</th><th>State</th></tr>{rows}</table>"),
    ))
    .into_response()
}

pub async fn index(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    Html(page(
        "Fullscript API simulator",
        &format!(
            "<h1>Fullscript API simulator</h1><p>Clinic: {clinic}. {n} lab orders. \
             <a href=\"/labs\">Lab orders</a></p>\
             <p>OAuth: <code>/api/oauth/authorize</code>, <code>/api/oauth/token</code>, <code>/api/oauth/revoke</code>. \
             Control API: <code>/_sim/…</code> (see the README).</p>",
            clinic = esc(&world.clinic_name),
            n = world.orders.len()
        ),
    ))
    .into_response()
}
