//! Drawing one plot as SVG: each line in its own colour, the spread over
//! seeds as a band around the mean, the legend below the data (never over
//! it), tick labels large enough to read on the page at 100 % zoom, and a
//! y range that one diverged seed cannot flatten.

use std::path::Path;

use plotters::prelude::*;

use super::write_atomic;
use crate::error::{ReportError, Result};

/// The SVG's width and the height of its chart, in pixels; the legend goes
/// below the chart. The page shows plots 600 px wide, two a row.
pub const PLOT_SIZE: (u32, u32) = (640, 400);
/// Tick labels' font size as plotters takes it: the SVG gets 1/1.24 of it,
/// 13.7 px, which is 12.9 px on the page (at least 11 px is readable).
pub const TICK_FONT: u32 = 17;
/// Legend entries a row.
const LEGEND_COLUMNS: usize = 2;
/// A legend row's height, in pixels.
const LEGEND_ROW: u32 = 22;
/// Legend rows drawn, at most (then `… N more`).
const LEGEND_ROWS: usize = 8;
/// A legend entry's characters, at most, at the tick labels' size.
const LEGEND_CHARS: usize = 36;

/// One line of a plot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotLine {
    /// Its legend entry.
    pub name: String,
    /// (x, y), e.g. the mean over seeds.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high): the spread around `points`, drawn as a band (empty: none).
    pub band: Vec<(f64, f64, f64)>,
    /// Its colour's index (lines of one variant share it).
    pub color: usize,
    /// Drawn dashed (a later run in `tessera compare`).
    pub dashed: bool,
}

/// Colour `i`: ten well-separated colours, then more around the hue circle.
pub fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    match PALETTE.get(i) {
        Some(c) => *c,
        None => {
            let hue = (i as f64 * 0.618_033_988_75).fract();
            let hsl = HSLColor(hue, 0.65, if i.is_multiple_of(2) { 0.42 } else { 0.55 });
            let (r, g, b) = hsl.rgb();
            RGBColor(r, g, b)
        }
    }
}

/// `test_accuracy` as `Test accuracy`.
pub fn human(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// What a plot's axes show.
struct Frame<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    scatter: bool,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
}

/// Plots `lines` on shared axes as SVG at `path`. An x label ending in
/// `(log scale)` plots log10 x (points with x <= 0 are left out); a y label
/// ending in `(scatter)` draws the points without joining them. Nothing is
/// written when no point is finite.
pub fn plot_lines(path: &Path, title: &str, x_label: &str, y_label: &str, lines: &[PlotLine]) -> Result<()> {
    let (lines, x_label) = match x_label.strip_suffix("(log scale)") {
        Some(base) => (lines.iter().map(log_x).collect(), format!("log10 {}", base.trim())),
        None => (lines.to_vec(), x_label.to_string()),
    };
    let (y_label, scatter) = match y_label.strip_suffix("(scatter)") {
        Some(base) => (base.trim(), true),
        None => (y_label, false),
    };
    let Some((x, y)) = ranges(&lines) else { return Ok(()) };
    let lines: Vec<PlotLine> = lines.into_iter().map(|l| clamp_band(l, &y)).collect();
    // Drawn in memory and written whole: workers may redraw a plot at once.
    let frame = Frame { title, x_label: &x_label, y_label, scatter, x, y };
    let svg =
        draw_svg(&frame, &lines).map_err(|e| ReportError::Plot { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomic(path, svg.as_bytes()).map_err(ReportError::io("writing", path))
}

/// `line` with log10 x, its points at x <= 0 left out.
fn log_x(line: &PlotLine) -> PlotLine {
    PlotLine {
        points: line.points.iter().filter(|p| p.0 > 0.0).map(|&(x, y)| (x.log10(), y)).collect(),
        band: line.band.iter().filter(|b| b.0 > 0.0).map(|&(x, lo, hi)| (x.log10(), lo, hi)).collect(),
        ..line.clone()
    }
}

/// The axes' ranges: x over every point; y over the lines and their bands,
/// but a band reaches at most one span of the lines beyond them (a diverged
/// seed's spread would flatten everything else).
fn ranges(lines: &[PlotLine]) -> Option<(std::ops::Range<f64>, std::ops::Range<f64>)> {
    let finite = |v: &f64| v.is_finite();
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).filter(finite);
    let ys = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).filter(finite);
    let (x0, x1) = min_max(xs)?;
    let (y0, y1) = min_max(ys())?;
    let span = (y1 - y0).max(1e-9);
    let (b0, b1) =
        min_max(lines.iter().flat_map(|l| l.band.iter().flat_map(|b| [b.1, b.2])).filter(finite)).unwrap_or((y0, y1));
    let (y0, y1) = (b0.max(y0 - span).min(y0), b1.min(y1 + span).max(y1));
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let x = if x0 == x1 { x0 - 1.0..x1 + 1.0 } else { x0..x1 };
    Some((x, y0 - pad..y1 + pad))
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| Some(acc.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v)))))
}

/// `line` with its band cut to `y` (the frame).
fn clamp_band(line: PlotLine, y: &std::ops::Range<f64>) -> PlotLine {
    let clamp = |v: f64| v.clamp(y.start, y.end);
    let band = line.band.iter().map(|&(x, lo, hi)| (x, clamp(lo), clamp(hi))).collect();
    PlotLine { band, ..line }
}

/// The legend's height for `lines` lines.
fn legend_height(lines: usize) -> u32 {
    let rows = lines.div_ceil(LEGEND_COLUMNS).min(LEGEND_ROWS + 1);
    8 + LEGEND_ROW * rows as u32
}

/// `1000` as `1000`, `0.25` as `0.25`: ticks without trailing zeros.
fn tick(x: &f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let text = format!("{x:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `lines` drawn on `frame` as an SVG document, the legend below the chart.
fn draw_svg(frame: &Frame, lines: &[PlotLine]) -> Result<String, Box<dyn std::error::Error>> {
    let mut svg = String::new();
    {
        let size = (PLOT_SIZE.0, PLOT_SIZE.1 + legend_height(lines.len()));
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_vertically(PLOT_SIZE.1);
        let mut chart = ChartBuilder::on(&plot)
            .caption(frame.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(66)
            .build_cartesian_2d(frame.x.clone(), frame.y.clone())?;
        chart
            .configure_mesh()
            .x_desc(frame.x_label)
            .y_desc(frame.y_label)
            .label_style(("sans-serif", TICK_FONT))
            .axis_desc_style(("sans-serif", TICK_FONT + 1))
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()?;
        for line in lines {
            draw_line(&mut chart, line, frame.scatter)?;
        }
        draw_legend(&legend, lines)?;
        root.present()?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One line: its band, then the line (dashed or solid) and its points.
fn draw_line(chart: &mut Chart, line: &PlotLine, scatter: bool) -> Result<(), Box<dyn std::error::Error>> {
    let c = color(line.color);
    if line.band.len() > 1 {
        let upper = line.band.iter().map(|&(x, _, hi)| (x, hi));
        let lower = line.band.iter().rev().map(|&(x, lo, _)| (x, lo));
        chart
            .draw_series(std::iter::once(Polygon::new(upper.chain(lower).collect::<Vec<_>>(), c.mix(0.18).filled())))?;
    }
    if !scatter {
        let points = line.points.iter().copied();
        if line.dashed {
            chart.draw_series(DashedLineSeries::new(points, 7, 4, c.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(points, c.stroke_width(2)))?;
        }
    }
    let radius = if scatter { 3 } else { 2 };
    chart.draw_series(line.points.iter().map(|&p| Circle::new(p, radius, c.filled())))?;
    Ok(())
}

/// The legend below the chart, [`LEGEND_COLUMNS`] entries a row: a swatch
/// (with the band's shade where the line has one) and the name.
fn draw_legend(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    lines: &[PlotLine],
) -> Result<(), Box<dyn std::error::Error>> {
    let font = ("sans-serif", TICK_FONT).into_font();
    let column_width = (PLOT_SIZE.0 as i32 - 60) / LEGEND_COLUMNS as i32;
    for (i, line) in lines.iter().enumerate() {
        let (row, column) = (i / LEGEND_COLUMNS, (i % LEGEND_COLUMNS) as i32);
        let (x, y) = (60 + column * column_width, 4 + (LEGEND_ROW as i32) * row as i32 + 10);
        if row == LEGEND_ROWS {
            area.draw(&Text::new(format!("… {} more", lines.len() - i), (x, y - 8), font.clone()))?;
            break;
        }
        draw_swatch(area, line, (x, y))?;
        area.draw(&Text::new(cut(&line.name), (x + 34, y - 8), font.clone()))?;
    }
    Ok(())
}

/// A legend entry's swatch at `(x, y)`: the band's shade, the line.
fn draw_swatch(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    line: &PlotLine,
    (x, y): (i32, i32),
) -> Result<(), Box<dyn std::error::Error>> {
    let c = color(line.color);
    if !line.band.is_empty() {
        area.draw(&Rectangle::new([(x, y - 6), (x + 26, y + 6)], c.mix(0.18).filled()))?;
    }
    let segments: &[(i32, i32)] = if line.dashed { &[(0, 8), (13, 26)] } else { &[(0, 26)] };
    for &(from, to) in segments {
        area.draw(&PathElement::new(vec![(x + from, y), (x + to, y)], c.stroke_width(2)))?;
    }
    Ok(())
}

/// `name` cut to [`LEGEND_CHARS`] with `…`.
fn cut(name: &str) -> String {
    match name.chars().count() > LEGEND_CHARS {
        true => format!("{}…", name.chars().take(LEGEND_CHARS - 1).collect::<String>()),
        false => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_words_and_colours_stay_distinct() {
        assert_eq!(human("test_accuracy"), "Test accuracy");
        assert_eq!((tick(&2000.0), tick(&0.25), tick(&(0.1 + 0.2))), ("2000".into(), "0.25".into(), "0.3".into()));
        let colors: Vec<RGBColor> = (0..24).map(color).collect();
        for (i, a) in colors.iter().enumerate() {
            assert!(colors[..i].iter().all(|b| b != a), "colour {i} repeats");
        }
    }

    #[test]
    fn one_diverged_seed_does_not_flatten_the_plot() {
        let calm = PlotLine { name: "a".into(), points: vec![(0.0, 1.0), (1.0, 0.5)], ..Default::default() };
        let wild = PlotLine {
            name: "b".into(),
            points: vec![(0.0, 1.0), (1.0, 0.6)],
            band: vec![(0.0, 0.9, 1.1), (1.0, 0.0, 456.0)],
            color: 1,
            dashed: false,
        };
        let (_, y) = ranges(&[calm, wild]).unwrap();
        assert!(y.end < 2.0 && y.start < 0.5, "{y:?}");
    }

    #[test]
    fn a_plot_has_a_band_a_legend_beside_the_data_and_readable_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let line = PlotLine {
            name: "full-shuffle (±sd, n=3)".into(),
            points: vec![(1.0, 0.5), (2.0, 0.7)],
            band: vec![(1.0, 0.4, 0.6), (2.0, 0.65, 0.75)],
            ..Default::default()
        };
        plot_lines(&path, "Test accuracy", "epoch", "accuracy", &[line]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<polygon") && svg.contains("full-shuffle (±sd, n=3)"), "{svg}");
        let sizes: Vec<f64> =
            svg.split("font-size=\"").skip(1).map(|s| s.split('"').next().unwrap().parse().unwrap()).collect();
        assert!(
            sizes.len() > 5 && sizes.iter().all(|&px| px >= 13.0),
            "every text at least 13 px in the SVG: {sizes:?}"
        );
    }
}
