//! The report: one row per comparison, with its figure, the baseline's, the
//! ratio and the goal; written as Markdown with SVG bar charts.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// One comparison.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The section it belongs to.
    pub(crate) section: &'static str,
    /// What was measured.
    pub(crate) what: String,
    /// onionpkg's figure, formatted.
    pub(crate) ours: String,
    /// What it is compared with.
    pub(crate) baseline: String,
    /// The baseline's figure, formatted.
    pub(crate) theirs: String,
    /// onionpkg relative to the baseline, oriented so that higher is better.
    pub(crate) ratio: Option<f64>,
    /// The goal, as in the issue.
    pub(crate) goal: String,
    /// Whether the goal is met; `None` when it is not a ratio goal.
    pub(crate) met: Option<bool>,
}

/// A bar chart of pairs of figures (ours, baseline).
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// The file name under `docs/bench/`.
    pub(crate) file: &'static str,
    /// The title.
    pub(crate) title: String,
    /// The unit of the y axis.
    pub(crate) unit: &'static str,
    /// Labels with (ours, baseline).
    pub(crate) bars: Vec<(String, f64, f64)>,
    /// Names of the two series.
    pub(crate) series: (&'static str, &'static str),
}

/// Everything measured in one run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The rows, in order.
    pub(crate) rows: Vec<Row>,
    /// Charts to draw.
    pub(crate) charts: Vec<Chart>,
    /// Facts about the run (machine, versions, sizes).
    pub(crate) facts: Vec<String>,
    /// Explanations of missed goals, by row `what`.
    pub(crate) notes: Vec<(String, String)>,
    /// Parts of the bench that failed, and why.
    pub(crate) failures: Vec<String>,
}

impl Report {
    /// Adds a row comparing `ours` with `theirs` where higher is better.
    #[allow(clippy::too_many_arguments, reason = "one row is all of these")]
    pub(crate) fn ratio_row(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        ours: f64,
        baseline: impl Into<String>,
        theirs: f64,
        unit: &str,
        goal: f64,
    ) {
        let ratio = ours / theirs;
        self.rows.push(Row {
            section,
            what: what.into(),
            ours: fmt_num(ours, unit),
            baseline: baseline.into(),
            theirs: fmt_num(theirs, unit),
            ratio: Some(ratio),
            goal: format!("≥ {goal:.1}×"),
            met: Some(ratio >= goal),
        });
    }

    /// Adds a row comparing times where lower is better; the ratio is
    /// baseline / ours.
    #[allow(clippy::too_many_arguments, reason = "one row is all of these")]
    pub(crate) fn time_row(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        ours_s: f64,
        baseline: impl Into<String>,
        theirs_s: f64,
        goal: f64,
    ) {
        let ratio = theirs_s / ours_s;
        self.rows.push(Row {
            section,
            what: what.into(),
            ours: fmt_secs(ours_s),
            baseline: baseline.into(),
            theirs: fmt_secs(theirs_s),
            ratio: Some(ratio),
            goal: format!("≥ {goal:.1}×"),
            met: Some(ratio >= goal),
        });
    }

    /// Adds a row with an absolute goal.
    pub(crate) fn plain_row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Writes `BENCHMARKS.md` at `out` and the charts beside it in `bench/`.
    pub(crate) fn write(&self, out: &Path, header: &str) -> anyhow::Result<()> {
        let dir = out.parent().unwrap_or_else(|| Path::new(".")).join("bench");
        std::fs::create_dir_all(&dir)?;
        let mut md = String::new();
        md.push_str(header);
        md.push_str("\n## The run\n\n");
        for f in &self.facts {
            let _ = writeln!(md, "- {f}");
        }
        let mut section = "";
        for r in &self.rows {
            if r.section != section {
                section = r.section;
                let _ = write!(
                    md,
                    "\n## {section}\n\n| what | onionpkg | compared with | their figure | ratio | goal | met |\n|---|---|---|---|---|---|---|\n"
                );
            }
            let ratio = r.ratio.map_or_else(|| "—".into(), |x| format!("{x:.2}×"));
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {met} |",
                r.what, r.ours, r.baseline, r.theirs, ratio, r.goal
            );
        }
        if !self.failures.is_empty() {
            md.push_str("\n## Failed in this run\n\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {f}");
            }
        }
        if !self.charts.is_empty() {
            md.push_str("\n## Charts\n\n");
            for c in &self.charts {
                draw(&dir.join(c.file), c)?;
                let _ = writeln!(md, "![{}](bench/{})\n", c.title, c.file);
            }
        }
        if !self.notes.is_empty() {
            md.push_str("\n## Where a goal is missed\n\n");
            for (what, why) in &self.notes {
                let _ = writeln!(md, "### {what}\n\n{why}\n");
            }
        }
        onionpkg_trust::util::write_atomic(out, md.as_bytes(), Some(0o644))?;
        Ok(())
    }
}

/// A number with its unit, three significant digits or so.
pub(crate) fn fmt_num(x: f64, unit: &str) -> String {
    let v = if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    if unit.is_empty() {
        v
    } else {
        format!("{v} {unit}")
    }
}

/// Seconds, as ms below one second.
pub(crate) fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn draw(path: &Path, c: &Chart) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let top = c
        .bars
        .iter()
        .map(|(_, a, b)| a.max(*b))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.15;
    let n = c.bars.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0f64..f64::from(n), 0.0f64..top)
        .map_err(|e| err(&e))?;
    let labels: Vec<String> = c.bars.iter().map(|(l, ..)| l.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(c.bars.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(c.unit)
        .draw()
        .map_err(|e| err(&e))?;
    let ours_style = RGBColor(0x3b, 0x5b, 0xa9).filled();
    let theirs_style = RGBColor(0xbb, 0xbb, 0xbb).filled();
    chart
        .draw_series(c.bars.iter().enumerate().map(|(i, (_, a, _))| {
            let x = i as f64;
            Rectangle::new([(x + 0.1, 0.0), (x + 0.48, *a)], ours_style)
        }))
        .map_err(|e| err(&e))?
        .label(c.series.0)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], ours_style));
    chart
        .draw_series(c.bars.iter().enumerate().map(|(i, (_, _, b))| {
            let x = i as f64;
            Rectangle::new([(x + 0.52, 0.0), (x + 0.9, *b)], theirs_style)
        }))
        .map_err(|e| err(&e))?
        .label(c.series.1)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], theirs_style));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
