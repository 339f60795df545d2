//! SVG plots: per run, input rate vs capacity, parallelism, lag and latency over time (one
//! column per policy); and a bar chart of the scorecard.

use super::run::Timeline;
use super::score::Scorecard;
use plotters::prelude::*;
use std::path::Path;

/// Seconds per plotted point: long runs are averaged into at most ~1500 points per series.
fn bucket(len: usize) -> usize {
    len.div_ceil(1500).max(1)
}

fn series<T: Copy + Into<f64>>(v: &[T], b: usize) -> Vec<(f64, f64)> {
    v.chunks(b)
        .enumerate()
        .map(|(i, c)| {
            let mean = c.iter().map(|x| (*x).into()).sum::<f64>() / c.len() as f64;
            ((i * b) as f64 / 60.0, mean)
        })
        .collect()
}

/// A named line of a panel.
type Line<'a> = (&'a str, &'a Vec<(f64, f64)>, RGBColor);
/// A bar chart: its title and the value it shows for a scorecard.
type Metric = (&'static str, Box<dyn Fn(&Scorecard) -> f64>);

/// Compact axis labels: 1.2M, 350k, 12.
fn compact(v: &f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || *v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes `runs.svg`: one column per policy, rows for rate/capacity, parallelism, lag, latency.
pub fn timelines(path: &Path, runs: &[(&str, &Timeline)], slo_ms: f64) -> std::io::Result<()> {
    let cols = runs.len().max(1);
    let root = SVGBackend::new(path, (420 * cols as u32, 880)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((4, cols));
    for (c, (name, tl)) in runs.iter().enumerate() {
        let b = bucket(tl.input.len());
        let minutes = tl.input.len() as f64 / 60.0;
        let input = series(&tl.input.iter().map(|v| *v as f64).collect::<Vec<_>>(), b);
        let cap = series(
            &tl.capacity.iter().map(|v| *v as f64).collect::<Vec<_>>(),
            b,
        );
        let par = series(&tl.parallelism, b);
        let lag = series(&tl.lag.iter().map(|v| *v as f64).collect::<Vec<_>>(), b);
        let lat = series(
            &tl.latency_ms.iter().map(|v| v / 1000.0).collect::<Vec<_>>(),
            b,
        );
        let rows: [(&str, Vec<Line<'_>>); 4] = [
            (
                "records/s",
                vec![("input", &input, BLUE), ("capacity", &cap, RED)],
            ),
            ("parallelism", vec![("parallelism", &par, BLACK)]),
            ("lag (records)", vec![("lag", &lag, MAGENTA)]),
            ("latency (s)", vec![("latency", &lat, GREEN)]),
        ];
        for (r, (label, lines)) in rows.iter().enumerate() {
            let area = &areas[r * cols + c];
            let ymax = lines
                .iter()
                .flat_map(|(_, s, _)| s.iter().map(|p| p.1))
                .fold(0.0f64, f64::max)
                .max(if r == 3 { slo_ms / 1000.0 * 1.2 } else { 1.0 })
                * 1.05;
            let caption = if r == 0 {
                name.to_string()
            } else {
                String::new()
            };
            let mut chart = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 16))
                .margin(6)
                .x_label_area_size(24)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..minutes.max(1.0 / 60.0), 0.0..ymax)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(if r == 3 { "minutes" } else { "" })
                .y_desc(*label)
                .y_label_formatter(&compact)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(err)?;
            for (lname, s, color) in lines {
                chart
                    .draw_series(LineSeries::new(s.iter().copied(), color))
                    .map_err(err)?
                    .label(*lname)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
            }
            if r == 3 {
                let slo = slo_ms / 1000.0;
                chart
                    .draw_series(LineSeries::new(
                        vec![(0.0, slo), (minutes, slo)],
                        RED.mix(0.5),
                    ))
                    .map_err(err)?
                    .label("SLO")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], RED.mix(0.5)));
            }
            if lines.len() > 1 || r == 3 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 11))
                    .draw()
                    .map_err(err)?;
            }
        }
    }
    root.present().map_err(err)
}

/// Writes `scorecard.svg`: worker-seconds (relative to the oracle), SLO violation seconds and
/// rescales per policy.
pub fn scorecard(path: &Path, cards: &[Scorecard]) -> std::io::Result<()> {
    let root = SVGBackend::new(path, (1200, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, 3));
    let oracle_ws = cards
        .iter()
        .find(|c| c.policy == "oracle")
        .map(|c| c.worker_seconds as f64)
        .filter(|v| *v > 0.0);
    let metrics: [Metric; 3] = [
        (
            if oracle_ws.is_some() {
                "worker-seconds / oracle"
            } else {
                "worker-seconds"
            },
            Box::new(move |c: &Scorecard| {
                oracle_ws.map_or(c.worker_seconds as f64, |o| c.worker_seconds as f64 / o)
            }),
        ),
        (
            "SLO violation (s)",
            Box::new(|c: &Scorecard| c.slo_violation_s as f64),
        ),
        ("rescales", Box::new(|c: &Scorecard| f64::from(c.rescales))),
    ];
    for (area, (title, f)) in areas.iter().zip(metrics.iter()) {
        let values: Vec<f64> = cards.iter().map(f).collect();
        let ymax = values.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((0..cards.len()).into_segmented(), 0.0..ymax)
            .map_err(err)?;
        let names: Vec<String> = cards.iter().map(|c| c.policy.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let color = if names[i] == "oracle" {
                    RGBColor(120, 120, 120)
                } else {
                    RGBColor(70, 110, 180)
                };
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    color.filled(),
                )
            }))
            .map_err(err)?;
    }
    root.present().map_err(err)
}
