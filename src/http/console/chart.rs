//! Charts as inline SVG, drawn on the server: a page needs no script to
//! show them, and the CSP allows no inline style, so shapes carry their
//! geometry as attributes and their colours as classes (console.css).
//! Every chart has a text alternative with its figures.

use std::fmt::Write;

use super::html::esc;

/// One bar: calls allowed and denied in one bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bar {
    /// What the bucket is, e.g. `06:00`; shown on hover and to readers.
    pub label: String,
    pub allowed: i64,
    pub denied: i64,
}

/// A small line of `values` (oldest first), for a table cell.
pub fn sparkline(values: &[i64], what: &str) -> String {
    let total: i64 = values.iter().sum();
    let peak = values.iter().copied().max().unwrap_or(0);
    let alt = format!("{what}: {total} calls, at most {peak} in one hour");
    if total == 0 {
        return format!(
            "<svg class=\"spark\" viewBox=\"0 0 100 20\" role=\"img\" aria-label=\"{}\">\
             <title>{0}</title><line class=\"zero\" x1=\"0\" y1=\"19\" x2=\"100\" y2=\"19\"/></svg>",
            esc(&alt)
        );
    }
    let step = 100.0 / (values.len().max(2) - 1) as f64;
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let y = 19.0 - 18.0 * (*v as f64) / (peak as f64);
        let _ = write!(points, "{:.1},{:.1} ", i as f64 * step, y);
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 100 20\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"{0}\"><title>{0}</title><polyline points=\"{1}\"/></svg>",
        esc(&alt),
        points.trim_end()
    )
}

/// Stacked bars (allowed below, denied on top), oldest first.
pub fn bars(bars: &[Bar], caption: &str) -> String {
    let peak = bars
        .iter()
        .map(|b| b.allowed + b.denied)
        .max()
        .unwrap_or(0)
        .max(1);
    let allowed: i64 = bars.iter().map(|b| b.allowed).sum();
    let denied: i64 = bars.iter().map(|b| b.denied).sum();
    let width = (bars.len().max(1) * 10) as f64;
    let height = 100.0;
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {width} {}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"{}: {allowed} allowed, {denied} denied, peak {peak}\">",
        height + 2.0,
        esc(caption)
    );
    for (i, bar) in bars.iter().enumerate() {
        let x = i as f64 * 10.0 + 1.0;
        let h_allowed = height * bar.allowed as f64 / peak as f64;
        let h_denied = height * bar.denied as f64 / peak as f64;
        let _ = write!(
            svg,
            "<g><title>{}: {} allowed, {} denied</title>\
             <rect class=\"base\" x=\"{x}\" y=\"{height}\" width=\"8\" height=\"2\"/>",
            esc(&bar.label),
            bar.allowed,
            bar.denied
        );
        if bar.allowed > 0 {
            let _ = write!(
                svg,
                "<rect class=\"allowed\" x=\"{x}\" y=\"{:.2}\" width=\"8\" height=\"{h_allowed:.2}\"/>",
                height - h_allowed
            );
        }
        if bar.denied > 0 {
            let _ = write!(
                svg,
                "<rect class=\"denied\" x=\"{x}\" y=\"{:.2}\" width=\"8\" height=\"{h_denied:.2}\"/>",
                height - h_allowed - h_denied
            );
        }
        svg.push_str("</g>");
    }
    let first = bars.first().map(|b| b.label.as_str()).unwrap_or("");
    let last = bars.last().map(|b| b.label.as_str()).unwrap_or("");
    let _ = write!(
        svg,
        "</svg><figcaption>{} <span class=\"range\">{} – {}</span> \
         <span class=\"key allowed\">{allowed} allowed</span> \
         <span class=\"key denied\">{denied} denied</span> \
         <span class=\"hint\">peak {peak}</span></figcaption></figure>",
        esc(caption),
        esc(first),
        esc(last)
    );
    svg
}

/// Horizontal bars of named counts (e.g. denials by reason), largest first.
pub fn ranking(items: &[(String, i64)], caption: &str) -> String {
    if items.is_empty() {
        return format!("<p class=\"hint\">{}: none.</p>", esc(caption));
    }
    let peak = items.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let mut html = format!(
        "<table class=\"ranking\"><caption>{}</caption><tbody>",
        esc(caption)
    );
    for (name, n) in items {
        let width = 100.0 * *n as f64 / peak as f64;
        let _ = write!(
            html,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{n}</td><td class=\"bar\">\
             <svg viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
             <rect class=\"denied\" x=\"0\" y=\"1\" width=\"{width:.1}\" height=\"8\"/></svg></td></tr>",
            esc(name)
        );
    }
    html.push_str("</tbody></table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_has_one_point_per_value_and_words() {
        let svg = sparkline(&[0, 5, 10], "last 24 h");
        assert!(
            svg.contains("points=\"0.0,19.0 50.0,10.0 100.0,1.0\""),
            "{svg}"
        );
        assert!(svg.contains("15 calls, at most 10"));
        assert!(sparkline(&[0, 0], "x").contains("class=\"zero\""));
    }

    #[test]
    fn bars_stack_denied_over_allowed() {
        let svg = bars(
            &[Bar {
                label: "06:00".into(),
                allowed: 3,
                denied: 1,
            }],
            "Calls per hour",
        );
        assert!(
            svg.contains("class=\"allowed\" x=\"1\" y=\"25.00\" width=\"8\" height=\"75.00\""),
            "{svg}"
        );
        assert!(svg.contains("class=\"denied\" x=\"1\" y=\"0.00\""), "{svg}");
        assert!(svg.contains("3 allowed, 1 denied"));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn a_ranking_names_each_item() {
        let html = ranking(
            &[("RATE_LIMITED".into(), 4), ("REVOKED".into(), 2)],
            "Denials",
        );
        assert!(html.contains("<th scope=\"row\">RATE_LIMITED</th><td class=\"num\">4</td>"));
        assert!(html.contains("width=\"50.0\""));
        assert!(ranking(&[], "Denials").contains("none"));
    }
}
