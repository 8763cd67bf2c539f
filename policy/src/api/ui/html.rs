//! Building the spend page's HTML: escaping, figures, and the page frame. Every text
//! that reaches a page goes through [`esc`] (user ids, tenants, model and client names
//! come from clients), and the charts' data is JSON that cannot close its script
//! element ([`json_in_html`]).

use std::fmt::Write;

use crate::display::format_usd;

/// `text` safe inside an element or a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe as the text of a `<script type="application/json">`: no `<`, `>`
/// or `&` (so no `</script>` or `<!--`), and no line separators.
pub fn json_in_html(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A money cell: the dollars shown, the micro-dollars in `data-value`.
pub fn usd_cell(micros: u64) -> String {
    format!(
        r#"<td class="num" data-value="{micros}">{}</td>"#,
        format_usd(micros)
    )
}

/// A count cell, its value in `data-value` too.
pub fn count_cell(n: u64) -> String {
    format!(r#"<td class="num" data-value="{n}">{n}</td>"#)
}

/// A bar of `part` out of `whole`, red past it.
pub fn bar(part: u64, whole: u64) -> String {
    let share = if whole == 0 {
        100
    } else {
        (u128::from(part) * 100 / u128::from(whole)).min(100)
    };
    let over = if part > whole { " over" } else { "" };
    // The width is the one style a page sets, as a class: inline styles are outside the
    // page's CSP.
    format!(r#"<span class="bar{over}" title="{share}%"><span class="w{share}"></span></span>"#)
}

/// The CSS classes `w0`..`w100` that [`bar`] uses, served with the stylesheet.
pub fn bar_widths() -> String {
    let mut css = String::new();
    for share in 0..=100 {
        let _ = writeln!(css, ".w{share}{{width:{share}%}}");
    }
    css
}

/// Who is looking, for the header.
pub struct Frame<'a> {
    pub title: &'a str,
    pub who: &'a str,
    /// The period shown and where the period form goes; `None` on pages without one.
    pub period: Option<(&'a str, &'a str)>,
    pub logout: bool,
}

/// A whole page: `body` (already escaped) in the frame, `charts` for ui.js.
pub fn page(frame: &Frame<'_>, body: &str, charts: Option<&serde_json::Value>) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · chokepoint</title>
<link rel="stylesheet" href="{css}">
<script src="{uplot}" defer></script>
<script src="{js}" defer></script>
</head>
<body>
<header><h1>{title}</h1>"#,
        title = esc(frame.title),
        css = super::assets::url("ui.css"),
        uplot = super::assets::url("uPlot.iife.min.js"),
        js = super::assets::url("ui.js"),
    );
    if let Some((period, action)) = frame.period {
        let _ = write!(
            out,
            r#"<form class="period" method="get" action="{action}"><label>Period <input name="period" value="{period}" placeholder="YYYY-MM or YYYY-MM-DD" maxlength="10"></label> <button>Show</button></form>"#,
            action = esc(action),
            period = esc(period),
        );
    }
    let _ = write!(out, r#"<nav><span class="muted">{}</span>"#, esc(frame.who));
    if frame.logout {
        out.push_str(r#"<form method="post" action="/ui/logout"><button>Log out</button></form>"#);
    }
    out.push_str("</nav></header>\n<main>\n");
    out.push_str(body);
    out.push_str("</main>\n");
    if let Some(charts) = charts {
        let _ = writeln!(
            out,
            r#"<script type="application/json" id="charts">{}</script>"#,
            json_in_html(charts)
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_text_and_json() {
        let cases = [
            ("plain", "plain"),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            (r#"a"b'c&d"#, "a&quot;b&#39;c&amp;d"),
        ];
        for (text, expected) in cases {
            assert_eq!(esc(text), expected);
        }
        let json = json_in_html(&json!({"id": "</script><!--\u{2028}&"}));
        for bad in ["<", ">", "&", "\u{2028}"] {
            assert!(!json.contains(bad), "{json}");
        }
        let back: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["id"], "</script><!--\u{2028}&");
    }

    #[test]
    fn bars_are_shares_capped_at_the_whole() {
        let cases = [
            (0, 100, "w0", false),
            (50, 100, "w50", false),
            (100, 100, "w100", false),
            (150, 100, "w100", true),
            (1, 0, "w100", true),
        ];
        for (part, whole, class, over) in cases {
            let html = bar(part, whole);
            assert!(html.contains(&format!(r#"class="{class}""#)), "{html}");
            assert_eq!(html.contains("bar over"), over, "{html}");
        }
    }
}
