//! The window's colours meet WCAG AA (4.5:1 for text) in the light and the
//! dark theme: every text colour against every background it is drawn on,
//! read from `ui/style.css` itself (no display needed).

use std::collections::HashMap;

fn palette(block: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in block.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(':') else {
            continue;
        };
        let value = value.trim().trim_end_matches(';').trim();
        if value.len() == 7 && value.starts_with('#') {
            out.insert(name.trim().to_string(), value.to_string());
        }
    }
    out
}

fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

fn ratio(a: &str, b: &str) -> f64 {
    let (x, y) = (luminance(a), luminance(b));
    let (hi, lo) = if x > y { (x, y) } else { (y, x) };
    (hi + 0.05) / (lo + 0.05)
}

#[test]
fn text_colours_meet_wcag_aa_in_light_and_dark_themes() {
    let css =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/style.css")).unwrap();
    let (light_part, dark_part) = css
        .split_once("@media (prefers-color-scheme: dark)")
        .expect("a dark theme");
    let light = palette(light_part);
    let dark = palette(dark_part.split('}').next().unwrap());
    // (text, background) pairs the page draws.
    let pairs = [
        ("text", "bg"),
        ("text", "panel"),
        ("muted", "bg"),
        ("muted", "panel"),
        ("muted", "highlight"),
        ("accent-text", "accent"),
        ("ok", "panel"),
        ("warn", "panel"),
        ("bad", "panel"),
        ("bad", "bg"),
        ("unseen", "panel"),
        ("text", "highlight"),
        ("text", "badge-ready"),
        ("text", "badge-partial"),
        ("text", "badge-amended"),
        ("text", "badge-progress"),
        ("text", "badge-other"),
        ("focus", "panel"),
        ("accent", "panel"),
    ];
    let mut failures = Vec::new();
    for (theme, colours) in [("light", &light), ("dark", &dark)] {
        for (fg, bg) in pairs {
            let (Some(f), Some(b)) = (colours.get(fg), colours.get(bg)) else {
                failures.push(format!("{theme}: --{fg} or --{bg} is not defined"));
                continue;
            };
            let r = ratio(f, b);
            eprintln!("{theme}: --{fg} on --{bg}: {r:.2}:1");
            if r < 4.5 {
                failures.push(format!("{theme}: --{fg} on --{bg} is {r:.2}:1"));
            }
        }
    }
    assert!(failures.is_empty(), "below 4.5:1: {failures:#?}");
}
