//! A plugin's report as the run keeps it: checked, with its arrays written
//! as `.npy` files under `arrays/<variant>/` of the unit's work folder
//! (collect moves them into the run folder) and listed by path.

use std::path::Path;

use crate::error::Result;
use tessera_sdk::{ArrayData, Report};

use crate::report::{file_stem_safe, ReportJson};

/// `report` from `component` in `role` of `variant`, checked, its arrays
/// saved under `work_dir`.
pub(super) fn kept_report(
    work_dir: &Path,
    variant: &str,
    role: &str,
    component: &str,
    report: &Report,
) -> Result<ReportJson> {
    let mut kept = crate::contract::plugin_report(component, report)?;
    for named in report.arrays.iter() {
        let relative = Path::new("arrays").join(file_stem_safe(variant)).join(format!(
            "{}--{}.npy",
            file_stem_safe(role),
            named.name
        ));
        let path = work_dir.join(&relative);
        std::fs::create_dir_all(path.parent().expect("a folder"))?;
        let shape: Vec<usize> = named.array.shape.iter().map(|&d| d as usize).collect();
        let (descr, bytes): (&str, Vec<u8>) = match &named.array.data {
            ArrayData::F32(v) => ("<f4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            ArrayData::I64(v) => ("<i8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        crate::data::readers::write_npy(&path, descr, &shape, &bytes)?;
        kept.arrays.push(relative.to_string_lossy().into_owned());
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::Array;

    #[test]
    fn arrays_are_written_as_npy_and_listed_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = Report::new();
        report.array("scores", Array::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        report.array("ids", Array::i64(vec![3], vec![7, 8, 9]));
        let kept = kept_report(dir.path(), "v[a=1]@2", "m.x#2", "m.x", &report).unwrap();
        assert_eq!(kept.arrays, ["arrays/v_a_1__2/m.x_2--scores.npy", "arrays/v_a_1__2/m.x_2--ids.npy"]);
        let bytes = std::fs::read(dir.path().join(&kept.arrays[0])).unwrap();
        let header = crate::data::readers::npy_header(&bytes, bytes.len(), Path::new("x")).unwrap();
        assert_eq!(header.shape, vec![2, 2]);
        assert_eq!(&bytes[bytes.len() - 4..], &4.0f32.to_le_bytes());
    }
}
