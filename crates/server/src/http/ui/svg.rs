//! Charts drawn on the server as SVG (with `maud`, so labels are escaped): no JavaScript, no
//! fonts or files to fetch, and they print. SVG elements are written with an empty body
//! (`<line …></line>`), which HTML's parser reads right inside `<svg>`.

use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// A round step for `max` split into about four intervals.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn number(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A coordinate, to a tenth.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// The top of the scale for values up to `max`, and the grid lines' values.
fn scale(max: f64) -> (f64, Vec<f64>) {
    let step = nice_step(max);
    let top = (max / step).ceil().max(1.0) * step;
    let mut values = Vec::new();
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        values.push(v);
        v += step;
    }
    (top, values)
}

/// Horizontal grid lines with their values.
fn axes(top: f64, values: &[f64], unit: &str) -> Markup {
    let plot_h = HEIGHT - TOP - BOTTOM;
    html! {
        @for v in values {
            @let y = TOP + plot_h * (1.0 - v / top);
            line x1=(at(LEFT)) x2=(at(WIDTH - RIGHT)) y1=(at(y)) y2=(at(y)) class="grid" {}
            text x=(at(LEFT - 6.0)) y=(at(y + 4.0)) class="tick" text-anchor="end" { (number(*v)) (unit) }
        }
    }
}

/// Every `n`th label, so that labels do not overlap.
fn label_every(count: usize, width: f64) -> usize {
    let fits = (width / 56.0).max(1.0) as usize;
    count.div_ceil(fits).max(1)
}

/// A chart's frame: the `svg` element with its accessible title around `content`.
fn chart(title: &str, content: Markup) -> Markup {
    html! {
        svg class="chart" viewBox={ "0 0 " (number(WIDTH)) " " (number(HEIGHT)) } role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            (content)
        }
    }
}

/// A bar chart of `(label, value)`.
pub(crate) fn bars(title: &str, data: &[(String, f64)], unit: &str) -> Markup {
    let max = data.iter().map(|d| d.1).fold(0.0, f64::max);
    let (top, values) = scale(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / data.len().max(1) as f64;
    let every = label_every(data.len(), plot_w);
    chart(
        title,
        html! {
            (axes(top, &values, unit))
            @for (i, (label, value)) in data.iter().enumerate() {
                @let h = plot_h * (value / top).clamp(0.0, 1.0);
                @let x = LEFT + slot * i as f64 + slot * 0.15;
                rect class="bar" x=(at(x)) y=(at(TOP + plot_h - h)) width=(at(slot * 0.7)) height=(at(h)) {
                    title { (label) ": " (number(*value)) (unit) }
                }
                @if i % every == 0 {
                    text class="tick" x=(at(x + slot * 0.35)) y=(at(HEIGHT - BOTTOM + 16.0)) text-anchor="middle" { (label) }
                }
            }
        },
    )
}

/// A line chart of `(label, value)` in order.
pub(crate) fn line(title: &str, data: &[(String, f64)], unit: &str) -> Markup {
    let max = data.iter().map(|d| d.1).fold(0.0, f64::max);
    let (top, values) = scale(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = if data.len() > 1 {
        plot_w / (data.len() - 1) as f64
    } else {
        0.0
    };
    let every = label_every(data.len(), plot_w);
    let points: Vec<(f64, f64)> = data
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            (
                LEFT + step * i as f64,
                TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0)),
            )
        })
        .collect();
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    chart(
        title,
        html! {
            (axes(top, &values, unit))
            polyline class="line" fill="none" points=(path.join(" ")) {}
            @for (i, ((label, value), (x, y))) in data.iter().zip(&points).enumerate() {
                circle class="dot" cx=(at(*x)) cy=(at(*y)) r="3" {
                    title { (label) ": " (number(*value)) (unit) }
                }
                @if i % every == 0 {
                    text class="tick" x=(at(*x)) y=(at(HEIGHT - BOTTOM + 16.0)) text-anchor="middle" { (label) }
                }
            }
        },
    )
}

/// A lineage graph: upstream tables on the left, the table in the middle, downstream on the
/// right, each a link to its catalog page.
pub(crate) fn lineage(table: &str, upstream: &[String], downstream: &[String]) -> Markup {
    let rows = upstream.len().max(downstream.len()).max(1);
    let row_h = 34.0;
    let height = rows as f64 * row_h + 16.0;
    let (w, box_w, box_h) = (780.0, 240.0, 24.0);
    let column_x = [10.0, (w - box_w) / 2.0, w - box_w - 10.0];
    let y_of = |i: usize, n: usize| {
        let used = n as f64 * row_h;
        (height - used) / 2.0 + i as f64 * row_h + (row_h - box_h) / 2.0
    };
    let node = |x: f64, y: f64, name: &str, current: bool| {
        html! {
            a href={ "/catalog/" (name) } {
                rect class=(if current { "node current" } else { "node" }) x=(at(x)) y=(at(y)) width=(number(box_w)) height=(number(box_h)) rx="4" {}
                text x=(at(x + box_w / 2.0)) y=(at(y + 16.0)) text-anchor="middle" { (name) }
            }
        }
    };
    let centre_y = y_of(0, 1);
    // Each side: its boxes in a column, an edge from (or to) the table in the middle.
    let mut sides = Vec::new();
    for (names, column, into_table) in [(upstream, 0, true), (downstream, 2, false)] {
        for (i, name) in names.iter().enumerate() {
            let y = y_of(i, names.len()) + box_h / 2.0;
            let (mid_left, mid_right) = (column_x[1], column_x[1] + box_w);
            let (x1, y1, x2, y2) = if into_table {
                (column_x[0] + box_w, y, mid_left, centre_y + box_h / 2.0)
            } else {
                (mid_right, centre_y + box_h / 2.0, column_x[2], y)
            };
            sides.push(html! {
                line class="edge" x1=(at(x1)) y1=(at(y1)) x2=(at(x2)) y2=(at(y2)) {}
                (node(column_x[column], y - box_h / 2.0, name, false))
            });
        }
    }
    html! {
        svg class="lineage" viewBox={ "0 0 " (number(w)) " " (number(height)) } role="img" aria-label={ "lineage of " (table) } xmlns="http://www.w3.org/2000/svg" {
            @for side in &sides { (side) }
            (node(column_x[1], centre_y, table, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_one_mark_per_value_and_escape_labels() {
        let data = vec![("<a>".to_string(), 3.0), ("b".to_string(), 7.5)];
        let svg = bars("t", &data, "").into_string();
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"));
        let svg = line("t", &data, "%").into_string();
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(nice_step(7.5), 2.0);
        let svg = lineage("curated.x", &["raw.a".into(), "raw.b".into()], &[]).into_string();
        assert_eq!(svg.matches("class=\"edge\"").count(), 2);
    }
}
