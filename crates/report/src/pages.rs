//! The HTML pages' templates (`templates/`, minijinja): `page.html` is the
//! frame (CSS, the sorting script), `report.html` and `compare.html` extend
//! it. Text is escaped by the template engine (auto-escape on `.html`
//! names); only the SVG plots, which Tessera drew, go in as they are.

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;

use crate::error::{ReportError, Result};

/// The templates, compiled once.
fn environment() -> &'static Environment<'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("page.html", include_str!("../templates/page.html")),
            ("report.html", include_str!("../templates/report.html")),
            ("compare.html", include_str!("../templates/compare.html")),
        ] {
            env.add_template(name, text).expect("the shipped templates parse");
        }
        env
    })
}

/// Renders template `name` with `context`. The templates are Tessera's and
/// tested, so a failure is a bug; it is an error, not a crash of the run.
pub(crate) fn render(name: &'static str, context: impl Serialize) -> Result<String> {
    let page = |source| ReportError::Page { name, source };
    let mut text = environment().get_template(name).and_then(|t| t.render(context)).map_err(page)?;
    text.push('\n');
    Ok(text)
}

/// One plot on a page: its name and its SVG (Tessera's own drawing).
#[derive(Serialize)]
pub(crate) struct Figure {
    pub name: String,
    pub svg: String,
}

impl Figure {
    /// The plot at `path` (its stem as name), without its XML declaration.
    pub fn read(path: &std::path::Path, name: String) -> Figure {
        let svg = std::fs::read_to_string(path).unwrap_or_default();
        Figure { name, svg: strip_xml_declaration(&svg).to_string() }
    }
}

/// An SVG from its `<svg` element on.
pub(crate) fn strip_xml_declaration(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped_and_svg_is_not() {
        let page = super::render(
            "compare.html",
            serde_json::json!({
                "runs": [{"label": "a<b>", "experiment": "e & f", "manifest": "m\"", "started": "now", "commit": "c"}],
                "differences": {"settings": [{"key": "train.lr", "values": ["0.1<"], "variants": []}], "unshared": [], "between_variants": []},
                "header": ["variant"], "rows": [["x<y"]],
                "figures": [{"name": "n", "svg": "<svg id=\"s\"/>"}],
            }),
        )
        .unwrap();
        assert!(page.contains("<b>a&lt;b&gt;</b>: e &amp; f"), "{page}");
        assert!(page.contains("<td>x&lt;y</td>") && page.contains("<td>0.1&lt;</td>"), "{page}");
        assert!(page.contains("<svg id=\"s\"/>"), "{page}");
        assert!(page.contains("document.body.dataset.ready='1';"), "the frame's script: {page}");
    }
}
