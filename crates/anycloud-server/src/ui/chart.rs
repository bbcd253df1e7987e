//! Server-rendered SVG charts (our own, ~150 lines, no JS library): a time
//! line chart with nice y ticks, a time axis and a legend, and a horizontal
//! bar chart. Every label goes through [`super::html::esc`].

use super::html::esc;
use std::fmt::Write;

/// Stable colours per series index (colour-blind friendly, Okabe–Ito).
pub const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

pub fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

/// One line: name, colour index, dashed, and a value per x step (`None` = gap).
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub colour: usize,
    pub dashed: bool,
    pub values: Vec<Option<f64>>,
}

/// A "nice" upper bound and tick step for `max` (1, 2, 5 × 10^n).
fn nice(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_tick(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const W: f64 = 600.0;
const H: f64 = 234.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 60.0;

/// A line chart over `steps` equal time steps ending now. `x_labels` are
/// (step index, text) pairs; `unit` labels the y axis.
pub fn lines(title: &str, unit: &str, lines: &[Line], x_labels: &[(usize, String)]) -> String {
    let steps = lines
        .iter()
        .map(|l| l.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let (top, step) = nice(max);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |i: usize| LEFT + pw * i as f64 / (steps - 1) as f64;
    let y = |v: f64| TOP + ph * (1.0 - v / top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" data-max="{max}"><title>{t}</title>"#,
        t = esc(title)
    );
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e6ea"/><text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{l}</text>"##,
            x2 = W - RIGHT,
            yy = y(v),
            tx = LEFT - 4.0,
            ty = y(v) + 4.0,
            l = fmt_tick(v)
        );
        v += step;
    }
    let _ = write!(
        s,
        r#"<text x="4" y="{}" class="tick" transform="rotate(-90 4 {})" dy="6">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(unit)
    );
    for (i, label) in x_labels {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            x(*i),
            TOP + ph + 14.0,
            esc(label)
        );
    }
    for l in lines {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in l.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        // A point with no neighbour would be invisible as a path: a dot.
        for (i, v) in l.values.iter().enumerate() {
            let lonely =
                |j: Option<usize>| j.and_then(|j| l.values.get(j)).is_none_or(|v| v.is_none());
            if let (Some(v), true, true) = (v, lonely(i.checked_sub(1)), lonely(Some(i + 1))) {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{}"/>"#,
                    x(i),
                    y(*v),
                    colour(l.colour)
                );
            }
        }
        if !d.is_empty() {
            let _ = write!(
                s,
                r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.8"{dash}><title>{n}</title></path>"#,
                c = colour(l.colour),
                dash = if l.dashed {
                    r#" stroke-dasharray="4 3""#
                } else {
                    ""
                },
                n = esc(&l.name)
            );
        }
    }
    // Legend under the axis, wrapping after four entries; a dashed twin of a
    // solid line (p99 beside p50) shares its entry.
    let legend: Vec<&Line> = lines
        .iter()
        .filter(|l| !(l.dashed && lines.iter().any(|o| !o.dashed && o.colour == l.colour)))
        .collect();
    for (k, l) in legend.iter().enumerate() {
        let lx = LEFT + (k % 4) as f64 * 140.0;
        let ly = TOP + ph + 28.0 + (k / 4) as f64 * 12.0;
        let _ = write!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="3"{}/><text x="{}" y="{}" class="legend">{}</text>"#,
            lx + 14.0,
            colour(l.colour),
            if l.dashed {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            },
            lx + 18.0,
            ly + 4.0,
            esc(&l.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: (label, value, colour index), with the value printed.
pub fn bars(title: &str, rows: &[(String, f64, usize)], fmt: impl Fn(f64) -> String) -> String {
    // Narrower than the line charts: bars sit in a third of a panel.
    const W: f64 = 380.0;
    let row_h = 22.0;
    let h = 8.0 + row_h * rows.len().max(1) as f64;
    let max = rows.iter().fold(0.0f64, |a, r| a.max(r.1));
    let (label_w, bar_w) = (100.0, W - 100.0 - 90.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart bars" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, (label, v, c)) in rows.iter().enumerate() {
        let y = 4.0 + row_h * i as f64;
        let w = if max > 0.0 { bar_w * v / max } else { 0.0 };
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{}" y="{}" class="tick">{}</text>"#,
            label_w - 6.0,
            y + 14.0,
            esc(label),
            row_h - 6.0,
            colour(*c),
            label_w + w + 6.0,
            y + 14.0,
            esc(&fmt(*v))
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nice_bounds() {
        assert_eq!(nice(0.0), (1.0, 0.5));
        assert_eq!(nice(7.0), (8.0, 2.0));
        assert_eq!(nice(130.0), (150.0, 50.0));
    }

    #[test]
    fn lines_have_a_path_per_series_with_gaps_and_escaped_names() {
        let svg = lines(
            "t",
            "req",
            &[
                Line {
                    name: "a<b".into(),
                    colour: 0,
                    dashed: false,
                    values: vec![Some(1.0), None, Some(3.0)],
                },
                Line {
                    name: "c".into(),
                    colour: 1,
                    dashed: true,
                    values: vec![None, None, None],
                },
            ],
            &[(0, "-15m".into())],
        );
        assert_eq!(
            svg.matches("<path").count(),
            1,
            "an all-empty series draws nothing"
        );
        assert_eq!(
            svg.matches(" M").count() + svg.matches("\"M").count(),
            2,
            "a gap lifts the pen"
        );
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }
}
