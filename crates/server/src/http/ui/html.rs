//! HTML for the web UI: the page frame and result grids, written with `maud`, which escapes
//! every value it is given (text from the data, names, messages) unless it is told otherwise.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use maud::{DOCTYPE, Markup, html};

/// The navigation, in order: path and label.
const NAV: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/worklist", "Worklist"),
    ("/catalog", "Catalog"),
    ("/sql", "SQL"),
    ("/runs", "Pipeline runs"),
];

/// A whole page: `current` is the path of the navigation entry to mark; the navigation and
/// the sign-out button are there for a signed-in `user`.
pub(crate) fn page(title: &str, current: &str, user: Option<&str>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · carelake" }
                link rel="stylesheet" href="/ui/style.css";
                link rel="icon" href="/ui/icon.svg" type="image/svg+xml";
            }
            body {
                header {
                    a.brand href="/" { "carelake" }
                    nav {
                        @if let Some(user) = user {
                            @for (path, label) in NAV {
                                a href=(path) class=[(path == current).then_some("current")] { (label) }
                            }
                            form.signout method="post" action="/logout" {
                                span { (user) }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

/// Cell text of every row of `batches`, by column; NULL is empty.
pub(crate) fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter<'_>> = batch
            .columns()
            .iter()
            .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    rows
}

/// A result grid: header and rows; `numeric` columns are right-aligned.
pub(crate) fn table(headers: &[String], rows: &[Vec<String>], numeric: &[bool]) -> Markup {
    grid(headers, rows, numeric, None)
}

/// [`table`] with one more column whose cell for row `i` is `last(i)` (a form).
pub(crate) fn table_with(
    headers: &[String],
    rows: &[Vec<String>],
    numeric: &[bool],
    last: &dyn Fn(usize) -> Markup,
) -> Markup {
    grid(headers, rows, numeric, Some(last))
}

fn grid(
    headers: &[String],
    rows: &[Vec<String>],
    numeric: &[bool],
    last: Option<&dyn Fn(usize) -> Markup>,
) -> Markup {
    let num = |i: usize| numeric.get(i).copied().unwrap_or(false).then_some("num");
    html! {
        div.grid {
            table {
                thead {
                    tr {
                        @for (i, h) in headers.iter().enumerate() {
                            th class=[num(i)] { (h) }
                        }
                    }
                }
                tbody {
                    @for (r, row) in rows.iter().enumerate() {
                        tr {
                            @for (i, cell) in row.iter().enumerate() {
                                td class=[num(i)] { (cell) }
                            }
                            @if let Some(last) = last {
                                td { (last(r)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The icon, served at `/ui/icon.svg` (and `/favicon.ico`).
pub(crate) const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0b6e8a"/><path d="M9 17h5l2-6 3 11 2-5h3" fill="none" stroke="#fff" stroke-width="2.5" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

/// The style sheet, served at `/ui/style.css`.
pub(crate) const STYLE: &str = r#"
:root { --ink:#1d2733; --muted:#5b6775; --line:#d8dee6; --accent:#0b6e8a; --bg:#f6f8fa; --warn:#a4330c; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:var(--bg); }
header { display:flex; align-items:center; gap:24px; padding:10px 24px; background:#fff; border-bottom:1px solid var(--line); }
.brand { font-weight:700; font-size:18px; color:var(--accent); text-decoration:none; }
nav { display:flex; align-items:center; gap:4px; flex:1; }
nav a { padding:6px 10px; border-radius:6px; color:var(--ink); text-decoration:none; }
nav a.current, nav a:hover { background:#e6f1f4; color:var(--accent); }
.signout { margin-left:auto; display:flex; gap:8px; align-items:center; color:var(--muted); }
main { padding:20px 24px; max-width:1280px; }
h1 { font-size:22px; margin:0 0 12px; } h2 { font-size:16px; margin:18px 0 8px; } .card h2 { margin-top:0; }
.muted { color:var(--muted); }
.kpis { display:grid; grid-template-columns:repeat(auto-fit, minmax(180px, 1fr)); gap:12px; margin-bottom:12px; }
.kpi, .card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.kpi .value { font-size:26px; font-weight:650; } .kpi .label { color:var(--muted); }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(460px, 1fr)); gap:12px; }
svg.chart { width:100%; height:auto; } svg.lineage { width:100%; max-width:780px; height:auto; }
.grid { overflow:auto; max-height:70vh; background:#fff; border:1px solid var(--line); border-radius:8px; }
table { border-collapse:collapse; width:100%; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:left; white-space:nowrap; }
th { position:sticky; top:0; background:#eef2f6; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.grid a { color:var(--accent); }
.grid td.risk-high { color:var(--warn); font-weight:650; }
textarea { width:100%; min-height:140px; font:13px/1.4 ui-monospace, Menlo, Consolas, monospace; padding:8px; border:1px solid var(--line); border-radius:6px; }
button { font:inherit; padding:6px 12px; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); }
.error { color:var(--warn); background:#fff3ef; border:1px solid #f2c6b6; padding:8px 12px; border-radius:6px; }
.login { max-width:340px; margin:10vh auto; } .login label { display:block; margin:10px 0 4px; }
.login input { width:100%; padding:7px; border:1px solid var(--line); border-radius:6px; font:inherit; }
.actions { display:flex; gap:8px; margin:8px 0; align-items:center; }
form.outreach { display:flex; gap:4px; margin:0; } form.outreach select, form.outreach button { padding:2px 6px; }
rect.bar { fill:var(--accent); } polyline.line { stroke:var(--accent); stroke-width:2; } circle.dot { fill:var(--accent); }
line.grid { stroke:#e3e8ee; } text.tick { font-size:11px; fill:var(--muted); }
rect.node { fill:#fff; stroke:var(--accent); } rect.node.current { fill:#e6f1f4; stroke-width:2; }
svg.lineage text { font-size:12px; fill:var(--ink); } line.edge { stroke:#8aa4b4; stroke-width:1.5; }
"#;

pub(super) fn kpi(label: &str, value: &str) -> Markup {
    html! {
        div.kpi {
            div.value { (value) }
            div.label { (label) }
        }
    }
}

pub(super) fn card(title: &str, note: &str, content: Markup) -> Markup {
    html! {
        section.card {
            h2 { (title) }
            p.muted { (note) }
            (content)
        }
    }
}

/// A page of `title` saying there is nothing to show until the pipeline has run.
pub(super) fn no_analytics(title: &str) -> Markup {
    html! {
        h1 { (title) }
        p.muted {
            "No analytics tables yet. Load data and run the pipeline ("
            code { "carelake run" }
            "), or start with "
            code { "carelake demo" }
            "."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_the_data_are_escaped_everywhere() {
        let evil = r#"<script>alert("x")</script>&'"#;
        let grid = table(&[evil.to_string()], &[vec![evil.to_string()]], &[false]).into_string();
        assert!(!grid.contains("<script>"), "{grid}");
        assert_eq!(grid.matches("&lt;script&gt;").count(), 2, "{grid}");
        let framed = page(evil, "/", Some(evil), html! { p { (evil) } });
        assert!(!framed.contains("<script>"), "{framed}");
        assert!(framed.starts_with("<!DOCTYPE html>"), "{framed}");
        assert!(
            framed.contains(r#"<a href="/" class="current">Overview</a>"#),
            "{framed}"
        );
        // Without a user: no navigation.
        assert!(!page("Sign in", "", None, html! {}).contains("Sign out"));
    }
}
