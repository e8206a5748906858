//! SVG plots of results: latency distributions, and cost per delivery, per run.
//!
//! Hand-written SVG keeps the tool free of plotting dependencies. The left panel is the
//! latency percentile spectrum (x: percentile on a "nines" scale, 0 → 99.99 %; y: latency, log
//! scale); the right panels are bars of server CPU µs per delivery and of bytes on the wire per
//! delivery. Colours follow the runs' order, the same in every panel.

use std::fmt::Write;

use crate::report::Report;

const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nines(p: f64) -> f64 {
    (-(1.0 - (p / 100.0).min(0.9999)).log10()).clamp(0.0, 4.0)
}

/// Renders `runs` as one SVG document.
pub fn svg(title: &str, runs: &[Report]) -> String {
    let bars_h = (runs.len() as f64 * 20.0 + 50.0).max(170.0);
    let legend_h = runs.len().div_ceil(2) as f64 * 15.0;
    let height = (bars_h * 2.0 + 70.0).max(420.0 + legend_h);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="1100" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="550" y="22" text-anchor="middle" font-size="16">{}</text>
"#,
        esc(title)
    );
    spectrum(&mut s, runs, 70.0, 50.0, 430.0, height - 110.0 - legend_h);
    let cpu: Vec<Option<f64>> = runs.iter().map(|r| r.server_cpu_us_per_delivery).collect();
    bars(
        &mut s,
        runs,
        &cpu,
        "server CPU µs per delivery",
        700.0,
        50.0,
    );
    let bytes: Vec<Option<f64>> = runs
        .iter()
        .map(|r| (r.delivered > 0).then_some(r.bytes_per_delivery))
        .collect();
    bars(
        &mut s,
        runs,
        &bytes,
        "bytes on the wire per delivery",
        700.0,
        70.0 + bars_h,
    );
    s.push_str("</svg>\n");
    s
}

fn spectrum(s: &mut String, runs: &[Report], x0: f64, y0: f64, w: f64, h: f64) {
    let all: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.spectrum.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(0.001);
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (dlo, dhi) = (lo.log10().floor(), hi.log10().ceil());
    let floor = 10f64.powf(dlo);
    let y = |ms: f64| y0 + h - (ms.max(floor).log10() - dlo) / (dhi - dlo) * h;
    let x = |p: f64| x0 + nines(p) / 4.0 * w;
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="14">latency distribution</text>
<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##,
        x0 + w / 2.0,
        y0 - 8.0
    );
    for (p, label) in [
        (0.0, "0%"),
        (90.0, "90%"),
        (99.0, "99%"),
        (99.9, "99.9%"),
        (99.99, "99.99%"),
    ] {
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="{y0}" x2="{0}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" text-anchor="middle">{label}</text>"##,
            x(p),
            y0 + h,
            y0 + h + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        x0 + w / 2.0,
        y0 + h + 34.0
    );
    let mut d = dlo;
    while d <= dhi {
        let ms = 10f64.powf(d);
        let label = if ms >= 1.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms} ms")
        };
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end">{label}</text>"##,
            y(ms),
            x0 + w,
            x0 - 4.0,
            y(ms) + 4.0
        );
        d += 1.0;
    }
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = r
            .spectrum
            .iter()
            .map(|&(p, ms)| format!("{:.1},{:.1}", x(p), y(ms)))
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        // The legend sits under the axis title, in two columns, clear of the curves.
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            x0 + (i % 2) as f64 * w / 2.0,
            y0 + h + 48.0 + 15.0 * (i / 2) as f64,
            x0 + 20.0 + (i % 2) as f64 * w / 2.0,
            y0 + h + 53.0 + 15.0 * (i / 2) as f64,
            esc(&r.label)
        );
    }
}

fn bars(s: &mut String, runs: &[Report], values: &[Option<f64>], title: &str, x0: f64, y0: f64) {
    let w = 370.0;
    let max = values.iter().flatten().copied().fold(0.0, f64::max);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{}</text>"#,
        x0 + w / 2.0,
        y0 - 8.0,
        esc(title)
    );
    for (i, (r, v)) in runs.iter().zip(values).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = y0 + 6.0 + 20.0 * i as f64;
        let (len, text) = match v {
            Some(v) if max > 0.0 => (v / max * (w - 60.0), format!("{v:.2}")),
            _ => (0.0, "n/a".to_owned()),
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x0}" y="{y}" width="{len:.1}" height="14" fill="{color}"/><text x="{}" y="{}">{text}</text><text x="{}" y="{}" text-anchor="end" font-size="10">{}</text>"#,
            x0 + len + 4.0,
            y + 11.0,
            x0 - 4.0,
            y + 11.0,
            esc(&r.label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_well_formed_svg() {
        let mut r = Report {
            label: "tidings <ws>".into(),
            spectrum: vec![(0.0, 0.2), (50.0, 0.5), (99.0, 3.0), (99.99, 12.0)],
            server_cpu_us_per_delivery: Some(2.5),
            delivered: 10,
            bytes_per_delivery: 70.0,
            ..Report::default()
        };
        let mut other = r.clone();
        other.label = "nchan ws".into();
        other.server_cpu_us_per_delivery = None;
        r.delivered = 10;
        let out = svg("t", &[r, other]);
        assert!(out.starts_with("<svg") && out.trim_end().ends_with("</svg>"));
        assert!(out.contains("tidings &lt;ws&gt;"));
        assert_eq!(out.matches("<polyline").count(), 2);
        assert!(out.contains("n/a"));
    }

    #[test]
    fn the_nines_scale() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 4.0);
    }
}
