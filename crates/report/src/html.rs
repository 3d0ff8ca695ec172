//! `report.html`: the run folder as one page a browser opens from disk. No
//! network and no server: the CSS, the plots (SVG) and a small sorting
//! script are inline. It shows the experiment, a summary of every variant's
//! figures (mean ± sd over seeds), each variant's status and error, every
//! plot grouped by role, each table (sortable, with its CSV) and the
//! manifest. It is rendered from results.json and the run folder alone, so
//! `tessera report DIR` redoes it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};

use crate::report::{self, base_name, file_stem_safe, format_number, RunResults, Status};

/// Scalars in the summary table, at most.
const SUMMARY_COLUMNS: usize = 12;
/// Rows shown of one table (the CSV has them all).
const TABLE_ROWS: usize = 200;

/// Writes `report.html` into `dir`, inlining the SVGs at `plots`; its path.
pub fn write_report_page(results: &RunResults, dir: &Path, plots: &[PathBuf]) -> Result<PathBuf> {
    write_progress_page(results, dir, plots, &[])
}

/// [`write_report_page`] of a run still going, `pending` naming the
/// variants not finished yet.
pub fn write_progress_page(results: &RunResults, dir: &Path, plots: &[PathBuf], pending: &[String]) -> Result<PathBuf> {
    let mut page = String::new();
    head(&mut page, &results.experiment);
    overview(&mut page, results);
    if !pending.is_empty() {
        let names: Vec<String> = pending.iter().map(|n| escape(n)).collect();
        let _ = writeln!(
            page,
            "<p id=\"running\" class=\"running\"><b>Still running</b> ({} to come): {}. This page is rewritten as they finish.</p>",
            names.len(),
            names.join(", ")
        );
    }
    summary(&mut page, results);
    variants(&mut page, results);
    plot_sections(&mut page, plots);
    tables(&mut page, results);
    manifest(&mut page, dir);
    page.push_str(SCRIPT);
    page.push_str("</body></html>\n");
    let path = dir.join("report.html");
    crate::confined::Confined::new(dir)
        .write_atomic("report.html", page.as_bytes())
        .map_err(ReportError::io("writing", dir.join("report.html")))?;
    Ok(path)
}

/// `text` safe inside HTML text and attributes.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn head(page: &mut String, experiment: &str) {
    let title = escape(experiment);
    let _ = write!(page, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = writeln!(page, "<title>{title} · Tessera run</title><style>{STYLE}</style></head>");
    let _ = writeln!(page, "<body data-errors=\"0\"><h1>{title}</h1>");
}

/// What ran, when, and how it went.
fn overview(page: &mut String, results: &RunResults) {
    let failed = results.variants.iter().filter(|v| v.status == Status::Failed).count();
    let seconds: f64 = results.variants.iter().map(|v| v.seconds).sum();
    let _ = writeln!(
        page,
        "<p class=\"overview\">manifest <code>{}</code> · tessera {} · started {} · {} variants, <b>{} failed</b> · {:.1} s of variant time</p>",
        escape(&results.manifest),
        escape(&results.tessera_version),
        escape(&results.started),
        results.variants.len(),
        failed,
        seconds
    );
}

/// One row per variant (seeds merged): each figure's mean ± sd and runs.
fn summary(page: &mut String, results: &RunResults) {
    let columns = report::summary_columns(results, SUMMARY_COLUMNS, false);
    let mut rows: BTreeMap<&str, Vec<Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let base = base_name(&v.name);
        if !order.contains(&base) {
            order.push(base);
        }
        let cells = rows.entry(base).or_insert_with(|| vec![vec![]; columns.len()]);
        for (i, (role, name)) in columns.iter().enumerate() {
            if let Some(&x) = v.results.get(role).and_then(|r| r.scalars.get(name)) {
                cells[i].push(x);
            }
        }
    }
    page.push_str("<h2 id=\"summary\">Summary</h2>\n<div class=\"wide\"><table id=\"summary-table\" class=\"sortable\"><thead><tr><th>variant</th><th>runs</th>");
    for (role, name) in &columns {
        let _ = write!(page, "<th title=\"{}\">{}<br><small>{}</small></th>", escape(role), escape(name), escape(role));
    }
    page.push_str("</tr></thead><tbody>\n");
    for base in order {
        let cells = &rows[base];
        let runs = cells.iter().map(Vec::len).max().unwrap_or(0);
        let _ = write!(page, "<tr><td>{}</td><td>{runs}</td>", escape(base));
        for values in cells {
            let _ = write!(page, "<td data-value=\"{}\">{}</td>", report::mean(values), mean_sd(values));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>\n");
}

/// `mean ± sd` (or the one value, or `–`).
pub(crate) fn mean_sd(values: &[f64]) -> String {
    match values.len() {
        0 => "–".into(),
        1 => format_number(values[0]),
        _ => format!("{} ± {}", format_number(report::mean(values)), format_number(report::sample_sd(values))),
    }
}

/// Every variant: status, time, device, components, error.
fn variants(page: &mut String, results: &RunResults) {
    page.push_str("<h2 id=\"variants\">Variants</h2>\n<table class=\"sortable\"><thead><tr><th>variant</th><th>status</th><th>seconds</th><th>device</th><th>components</th></tr></thead><tbody>\n");
    for v in &results.variants {
        let status = format!("{:?}", v.status).to_lowercase();
        let components: Vec<String> =
            v.components.iter().map(|(role, c)| format!("{}: {}", escape(role), escape(c))).collect();
        let _ = writeln!(
            page,
            "<tr class=\"{status}\"><td>{}</td><td>{status}</td><td data-value=\"{}\">{:.1}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.name),
            v.seconds,
            v.seconds,
            escape(v.device.as_deref().unwrap_or("")),
            components.join("<br>")
        );
        if let Some(error) = &v.error {
            let _ = writeln!(page, "<tr class=\"error\"><td colspan=\"5\"><pre>{}</pre></td></tr>", escape(error));
        }
    }
    page.push_str("</tbody></table>\n");
}

/// The plots, inline, under a heading per role (`plots/<role>--<name>.svg`).
fn plot_sections(page: &mut String, plots: &[PathBuf]) {
    page.push_str("<h2 id=\"plots\">Plots</h2>\n");
    let mut by_role: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for path in plots {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (role, name) = stem.split_once("--").map_or(("across variants".to_string(), stem.clone()), |(r, n)| {
            if n.starts_with("vs--") {
                ("across variants".to_string(), stem.clone())
            } else {
                (r.to_string(), n.to_string())
            }
        });
        let svg = std::fs::read_to_string(path).unwrap_or_default();
        by_role.entry(role).or_default().push((name, strip_xml_declaration(&svg).to_string()));
    }
    if by_role.is_empty() {
        page.push_str("<p>No plots: the variants reported no curves.</p>\n");
    }
    for (role, figures) in by_role {
        let _ = write!(page, "<h3>{}</h3>\n<div class=\"plots\">", escape(&role));
        for (name, svg) in figures {
            let _ = write!(page, "<figure class=\"plot\"><figcaption>{}</figcaption>{svg}</figure>", escape(&name));
        }
        page.push_str("</div>\n");
    }
}

fn strip_xml_declaration(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

/// Every component table, collapsed, sortable, with its CSV.
fn tables(page: &mut String, results: &RunResults) {
    page.push_str("<h2 id=\"tables\">Tables</h2>\n");
    for v in &results.variants {
        for (role, r) in &v.results {
            for t in &r.tables {
                let csv = file_stem_safe(&format!("{}--{role}--{}.csv", v.name, t.name));
                let _ = write!(
                    page,
                    "<details><summary>{} · {} · <b>{}</b> ({} rows) <a href=\"tables/{}\">CSV</a></summary>",
                    escape(&v.name),
                    escape(role),
                    escape(&t.name),
                    t.rows.len(),
                    escape(&csv)
                );
                table_body(page, &t.columns, &t.rows);
                page.push_str("</details>\n");
            }
        }
    }
}

fn table_body(page: &mut String, columns: &[String], rows: &[Vec<serde_json::Value>]) {
    page.push_str("<table class=\"sortable\"><thead><tr>");
    columns.iter().for_each(|c| {
        let _ = write!(page, "<th>{}</th>", escape(c));
    });
    page.push_str("</tr></thead><tbody>");
    for row in rows.iter().take(TABLE_ROWS) {
        page.push_str("<tr>");
        for cell in row {
            match cell {
                serde_json::Value::Number(n) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    let _ = write!(page, "<td data-value=\"{x}\">{}</td>", format_number(x));
                }
                serde_json::Value::String(s) => {
                    let _ = write!(page, "<td>{}</td>", escape(s));
                }
                other => {
                    let _ = write!(page, "<td>{}</td>", escape(&other.to_string()));
                }
            }
        }
        page.push_str("</tr>");
    }
    page.push_str("</tbody></table>");
    if rows.len() > TABLE_ROWS {
        let _ = write!(page, "<p>First {TABLE_ROWS} of {} rows; the CSV has them all.</p>", rows.len());
    }
}

/// The manifest as written, and as resolved.
fn manifest(page: &mut String, dir: &Path) {
    page.push_str("<h2 id=\"manifest\">Manifest</h2>\n");
    for (file, open) in [("manifest.toml", " open"), ("manifest.resolved.toml", "")] {
        if let Ok(text) =
            crate::confined::Confined::new(dir).read(file).map(|b| String::from_utf8_lossy(&b).into_owned())
        {
            let _ = writeln!(page, "<details{open}><summary>{file}</summary><pre>{}</pre></details>", escape(&text));
        }
    }
}

/// The pages' CSS.
pub(crate) const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}\
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}code,pre{font:12px ui-monospace,monospace}\
pre{background:#f6f6f6;padding:.6em;overflow:auto;white-space:pre-wrap}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}\
th{background:#f0f0f0;cursor:pointer}td:first-child,th:first-child{text-align:left}\
tr.failed td{background:#fde8e8}tr.error td{text-align:left;background:#fff6f6}\
.plots{display:flex;flex-wrap:wrap;gap:1em}figure.plot{margin:0;width:580px;max-width:100%}\
figure.plot svg{width:100%;height:auto}.wide{overflow-x:auto}\
figcaption{font-weight:600}.running{background:#fff8e0;padding:.4em}.overview{color:#555}details{margin:.3em 0}";

/// Sorts a table by a clicked header (numbers by their value); counts
/// script errors in `data-errors`, and marks the page ready.
pub(crate) const SCRIPT: &str = "<script>\
window.addEventListener('error',function(){var b=document.body;b.dataset.errors=String(Number(b.dataset.errors)+1);});\
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){\
var table=th.closest('table'),body=table.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th);\
var up=th.dataset.order!=='asc';th.dataset.order=up?'asc':'desc';\
var key=function(r){var c=r.children[i];if(!c)return '';var v=c.dataset.value;return v!==undefined&&v!==''&&!isNaN(v)?Number(v):c.textContent;};\
Array.prototype.slice.call(body.rows).sort(function(a,b){var x=key(a),y=key(b);return (x<y?-1:x>y?1:0)*(up?1:-1);}).forEach(function(r){body.appendChild(r);});});});\
document.body.dataset.ready='1';\
</script>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_still_going_names_what_is_to_come_and_a_finished_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let results: RunResults = serde_json::from_value(serde_json::json!({
            "schema": 1, "tessera_version": "0", "experiment": "e", "manifest": "m.toml",
            "started": "now", "variants": []
        }))
        .unwrap();
        let page = write_progress_page(&results, dir.path(), &[], &["b<2>".into(), "c".into()]).unwrap();
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(text.contains("Still running</b> (2 to come): b&lt;2&gt;, c."), "{text}");
        write_report_page(&results, dir.path(), &[]).unwrap();
        assert!(!std::fs::read_to_string(&page).unwrap().contains("Still running"));
    }

    #[test]
    fn text_is_escaped_and_seeds_merge_into_mean_and_sd() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(base_name("corgi2@3"), "corgi2");
        assert_eq!(mean_sd(&[1.0, 3.0]), "2 ± 1.4142");
        assert_eq!(mean_sd(&[]), "–");
        assert_eq!(strip_xml_declaration("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
    }
}
