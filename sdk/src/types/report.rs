//! What a component reports: scalars, series, tables and named arrays.

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

use super::*;

/// One cell of a [`Table`].
#[repr(C, u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum Cell {
    /// A real number.
    Number(f64),
    /// An integer.
    Integer(i64),
    /// Text.
    Text(RString),
}

/// A named number in a report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The figure's name, e.g. `test_accuracy`.
    pub name: RString,
    /// Its value.
    pub value: f64,
}

/// A curve y(x) in a report; the host plots every series.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Series {
    /// The curve's name, e.g. `test_accuracy`.
    pub name: RString,
    /// What x is, e.g. `step`.
    pub x_label: RString,
    /// What y is, e.g. `accuracy`.
    pub y_label: RString,
    /// The x values.
    pub x: RVec<f64>,
    /// The y values, as many as x.
    pub y: RVec<f64>,
}

/// A table in a report; the host writes each as CSV.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name (the CSV file's stem).
    pub name: RString,
    /// Column headers.
    pub columns: RVec<RString>,
    /// Rows, each as long as `columns`.
    pub rows: RVec<RVec<Cell>>,
}

/// A named array in a report; the host writes it as a `.npy` file.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// The file's stem: letters, digits, `_`, `-` and `.`.
    pub name: RString,
    /// The array.
    pub array: Array,
}

/// What a component reports: scalars, series and tables, all of which land
/// in results.json (series are also plotted, tables also written as CSV),
/// and arrays, written as `.npy` files of the run folder (for recomputing a
/// figure independently), listed in results.json by path.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Named numbers.
    pub scalars: RVec<Scalar>,
    /// Named curves.
    pub series: RVec<Series>,
    /// Named tables.
    pub tables: RVec<Table>,
    /// Named arrays (raw data behind a figure).
    pub arrays: RVec<NamedArray>,
    /// Names of the scalars that are the method's headline figures: the
    /// console summary and the run's report page show them first.
    pub headlines: RVec<RString>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// The host's report contract, as the host checks it (and a plugin's own
    /// tests can): names non-empty and unique per kind; scalars finite;
    /// headlines naming scalars; series with as many finite x as y values;
    /// table rows as long as their header; arrays with plain file names
    /// (letters, digits, `_ - .`) and as many values as their shape says.
    /// `Err` says what the host would refuse (the variant would fail).
    pub fn check(&self) -> Result<(), String> {
        check_scalars(self)?;
        check_series(self)?;
        check_tables(self)?;
        check_arrays(self)
    }

    /// Adds a named number. The host refuses a report whose scalars are not
    /// finite or whose names repeat (the variant fails, naming the
    /// component): use [`Report::defined`] for a figure that can be undefined.
    pub fn scalar(&mut self, name: &str, value: f64) -> &mut Self {
        self.scalars.push(Scalar { name: name.into(), value });
        self
    }

    /// Adds a named number and marks it as a headline figure (what a reader
    /// of the paper looks for first; shown first in summaries).
    pub fn headline(&mut self, name: &str, value: f64) -> &mut Self {
        self.headlines.push(name.into());
        self.scalar(name, value)
    }

    /// [`Report::headline`] only where the number is defined (finite), as
    /// [`Report::defined`].
    pub fn defined_headline(&mut self, name: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            self.headline(name, value);
        }
        self
    }

    /// Adds a named number only where it is defined (finite): a mean of
    /// nothing or a ratio over zero is left out of the report, not written
    /// as NaN.
    pub fn defined(&mut self, name: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            self.scalar(name, value);
        }
        self
    }

    /// Adds a curve; panics if `x` and `y` differ in length.
    pub fn series(&mut self, name: &str, x_label: &str, y_label: &str, x: Vec<f64>, y: Vec<f64>) -> &mut Self {
        assert_eq!(x.len(), y.len(), "series {name}: x and y differ in length");
        self.series.push(Series {
            name: name.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x: x.into(),
            y: y.into(),
        });
        self
    }

    /// Adds an array, saved as `arrays/<variant>/<role>--<name>.npy` in the
    /// run folder. The host refuses a name other than letters, digits, `_`,
    /// `-` and `.`, or repeated.
    pub fn array(&mut self, name: &str, array: Array) -> &mut Self {
        self.arrays.push(NamedArray { name: name.into(), array });
        self
    }

    /// Adds a table; panics if a row's length differs from the header's.
    pub fn table(&mut self, name: &str, columns: &[&str], rows: Vec<Vec<Cell>>) -> &mut Self {
        for row in &rows {
            assert_eq!(row.len(), columns.len(), "table {name}: row length differs from header");
        }
        self.tables.push(Table {
            name: name.into(),
            columns: columns.iter().map(|c| RString::from(*c)).collect(),
            rows: rows.into_iter().map(RVec::from).collect(),
        });
        self
    }
}

/// `Err` naming the first empty or repeated name of `names` (of `kind`).
fn unique<'a>(kind: &str, names: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if name.is_empty() || !seen.insert(name) {
            return Err(format!("{kind} name `{name}` is empty or repeated"));
        }
    }
    Ok(())
}

fn check_scalars(report: &Report) -> Result<(), String> {
    unique("scalar", report.scalars.iter().map(|s| s.name.as_str()))?;
    if let Some(s) = report.scalars.iter().find(|s| !s.value.is_finite()) {
        return Err(format!("scalar `{}` is {}; report only finite numbers", s.name, s.value));
    }
    match report.headlines.iter().find(|h| report.scalars.iter().all(|s| s.name != **h)) {
        Some(h) => Err(format!("headline `{h}` names no scalar of the report (use Report::headline)")),
        None => Ok(()),
    }
}

fn check_series(report: &Report) -> Result<(), String> {
    unique("series", report.series.iter().map(|s| s.name.as_str()))?;
    for s in report.series.iter() {
        if s.x.len() != s.y.len() {
            return Err(format!("series `{}` has {} x values and {} y values", s.name, s.x.len(), s.y.len()));
        }
        if s.x.iter().chain(s.y.iter()).any(|v| !v.is_finite()) {
            return Err(format!("series `{}` holds a value that is not finite", s.name));
        }
    }
    Ok(())
}

fn check_tables(report: &Report) -> Result<(), String> {
    unique("table", report.tables.iter().map(|t| t.name.as_str()))?;
    for t in report.tables.iter() {
        if let Some((i, row)) = t.rows.iter().enumerate().find(|(_, r)| r.len() != t.columns.len()) {
            return Err(format!(
                "row {i} of table `{}` has {} cells for {} columns",
                t.name,
                row.len(),
                t.columns.len()
            ));
        }
    }
    Ok(())
}

fn check_arrays(report: &Report) -> Result<(), String> {
    let plain =
        |name: &str| !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if let Some(a) = report.arrays.iter().find(|a| !plain(a.name.as_str())) {
        return Err(format!(
            "array name `{}` is empty, repeated or not a plain file name (letters, digits, _ - .)",
            a.name
        ));
    }
    unique("array", report.arrays.iter().map(|a| a.name.as_str()))
        .map_err(|e| format!("{e} (array names are plain file names: letters, digits, _ - .)"))?;
    for a in report.arrays.iter() {
        let (elements, values) = (a.array.shape.iter().product::<u64>(), a.array.len() as u64);
        if elements != values {
            return Err(format!("array `{}` has shape {:?} but {values} values", a.name, a.array.shape));
        }
    }
    Ok(())
}
