//! Readers for the formats researchers' data come in. Each checks what it
//! reads: a wrong magic number, a truncated file or a bad value is an error
//! naming the file and the byte offset (or line) where it went wrong.

use std::io::Read;
use std::path::Path;

use crate::error::{bail, Context, Result};

use super::Dataset;

/// The number of classes of integer `labels` (the largest plus one), refused
/// past [`crate::validate::MAX_CLASSES`] before anything is sized by it.
pub fn classes_of(labels: &[i64], source: &str) -> Result<usize> {
    let Some((i, &most)) = labels.iter().enumerate().max_by_key(|(_, &l)| l) else { return Ok(0) };
    let most = most as usize;
    if most >= crate::validate::MAX_CLASSES {
        bail!(
            "{source}: label {most} of example {i} implies {} classes; Tessera accepts at most {} (labels are 0..C−1)",
            most + 1,
            crate::validate::MAX_CLASSES
        );
    }
    Ok(most + 1)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn be_u32(bytes: &[u8], offset: usize, path: &Path) -> Result<u32> {
    match bytes.get(offset..offset + 4) {
        Some(b) => Ok(u32::from_be_bytes(b.try_into().expect("4 bytes"))),
        None => bail!("{}: truncated header at byte offset {offset}", path.display()),
    }
}

/// An IDX header from the file's first bytes (`file_len` bytes in all): the
/// dimensions and the byte offset of the data, checked against the length.
pub(crate) fn idx_header(
    bytes: &[u8],
    expected_dims: usize,
    file_len: usize,
    path: &Path,
) -> Result<(Vec<usize>, usize)> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        bail!("{}: not an IDX file (the first two bytes must be zero)", path.display());
    }
    if bytes[2] != 0x08 {
        bail!(
            "{}: IDX element type 0x{:02x} at byte offset 2; only unsigned bytes (0x08) are supported",
            path.display(),
            bytes[2]
        );
    }
    let ndims = bytes[3] as usize;
    if ndims != expected_dims {
        bail!("{}: {ndims} dimensions at byte offset 3, expected {expected_dims}", path.display());
    }
    let dims: Vec<usize> =
        (0..ndims).map(|d| be_u32(bytes, 4 + 4 * d, path).map(|v| v as usize)).collect::<Result<_>>()?;
    if let Some(d) = dims.iter().position(|&v| v == 0) {
        bail!(
            "{}: dimension {d} is 0 (at byte offset {}); an IDX file needs at least one item of at least one value",
            path.display(),
            4 + 4 * d
        );
    }
    let start = 4 + 4 * ndims;
    let have = file_len.saturating_sub(start);
    let Some(need) = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        bail!("{}: the dimensions {dims:?} promise more bytes than any file holds", path.display());
    };
    if have != need {
        bail!(
            "{}: the header promises {need} bytes of data from byte offset {start}, the file has {have}{}",
            path.display(),
            if have < need { " (truncated)" } else { "" }
        );
    }
    Ok((dims, start))
}

/// An IDX file (MNIST, Fashion-MNIST): its dimensions and unsigned bytes.
pub(crate) fn read_idx(path: &Path, expected_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut bytes = read_file(path)?;
    let (dims, start) = idx_header(&bytes, expected_dims, bytes.len(), path)?;
    bytes.drain(..start);
    Ok((dims, bytes))
}

/// MNIST / Fashion-MNIST: an IDX image file (n × rows × cols) and an IDX
/// label file (n). Pixels are scaled to [0, 1]; the shape is [1, rows, cols].
/// (Read whole through [`super::examples::IdxFiles`].)
pub fn idx(images: &Path, labels_path: &Path) -> Result<Dataset> {
    super::examples::read_all(&super::examples::IdxFiles::open(images, labels_path)?)
}

/// CIFAR-10 (`label_bytes` = 1) or CIFAR-100 (`label_bytes` = 2: coarse then
/// fine; the fine label is used) binary batches: records of label bytes and
/// 3 × 32 × 32 pixels. Pixels are scaled to [0, 1]; the shape is [3, 32, 32].
/// (Read whole through [`super::examples::CifarFiles`].)
pub fn cifar(files: &[&Path], label_bytes: usize) -> Result<Dataset> {
    let paths: Vec<std::path::PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
    super::examples::read_all(&super::examples::CifarFiles::open(&paths, label_bytes)?)
}

/// A parsed `.npy` array: its shape and values as f64.
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f64>,
}

/// A `.npy` header: the array's shape, where its values start and how to
/// decode one.
pub struct NpyHeader {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Byte offset of the first value.
    pub data_offset: usize,
    /// Bytes of one value.
    pub value_bytes: usize,
    /// One value's little-endian bytes as f64.
    pub decode: Decode,
}

/// Parses the header at the start of `bytes`, a `.npy` file of `file_len`
/// bytes (format 1.0–3.0, C order; dtypes f4, f8, i1–i8, u1–u8,
/// little-endian), checking that the file holds every value.
///
/// Hand-written on purpose: `npyz` 0.8.4's header reader (the crate that
/// would do it) multiplies the shape's entries unchecked, so a header with
/// shape `(2**32, 2**32, 16)` panics with overflow checks on and wraps to a
/// wrong size without them (tried 2026-12-04); this parser checks every
/// product against the file's length before anything is sized by it, and
/// has had 30 CPU-minutes of fuzzing (`make fuzz`, target `npy`).
pub fn npy_header(bytes: &[u8], file_len: usize, path: &Path) -> Result<NpyHeader> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{}: not a .npy file (missing the \\x93NUMPY magic at byte offset 0)", path.display());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("{}: truncated header at byte offset 8", path.display());
            }
            (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12)
        }
        v => bail!("{}: .npy format version {v} at byte offset 6 is not supported", path.display()),
    };
    let header = bytes.get(header_start..header_start + header_len).with_context(|| {
        format!("{}: the header runs past the end of the file (byte offset {header_start})", path.display())
    })?;
    let header = std::str::from_utf8(header).with_context(|| format!("{}: the header is not text", path.display()))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .with_context(|| format!("{}: no 'descr' in the header", path.display()))?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        bail!("{}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)", path.display());
    }
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{}: no 'shape' in the header", path.display()))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().with_context(|| format!("{}: bad shape entry `{s}`", path.display())))
        .collect::<Result<_>>()?;
    let (value_bytes, decode) = npy_dtype(descr, path)?;
    let data_offset = header_start + header_len;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let have = file_len.saturating_sub(data_offset);
    match count.and_then(|c| c.checked_mul(value_bytes)) {
        Some(need) if need == have => Ok(NpyHeader { shape, data_offset, value_bytes, decode }),
        Some(need) if need < have => bail!(
            "{}: the header's shape {shape:?} describes {need} bytes of values, but {have} bytes follow it at byte offset {data_offset}: the header does not describe the data (save the array again with np.save)",
            path.display()
        ),
        _ => bail!(
            "{}: {} values of {value_bytes} bytes expected from byte offset {data_offset}, the file has {have} bytes (truncated)",
            path.display(),
            count.map_or("too many".to_string(), |c| c.to_string())
        ),
    }
}

/// Decodes one value's little-endian bytes as f64.
pub type Decode = fn(&[u8]) -> f64;

/// The size and decoder of a `.npy` dtype.
fn npy_dtype(descr: &str, path: &Path) -> Result<(usize, Decode)> {
    Ok(match descr {
        "<f4" => (4, |b| f32::from_le_bytes(b.try_into().unwrap()) as f64),
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap())),
        "|i1" => (1, |b| b[0] as i8 as f64),
        "|u1" => (1, |b| b[0] as f64),
        "<i2" => (2, |b| i16::from_le_bytes(b.try_into().unwrap()) as f64),
        "<u2" => (2, |b| u16::from_le_bytes(b.try_into().unwrap()) as f64),
        "<i4" => (4, |b| i32::from_le_bytes(b.try_into().unwrap()) as f64),
        "<u4" => (4, |b| u32::from_le_bytes(b.try_into().unwrap()) as f64),
        "<i8" => (8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f64),
        "<u8" => (8, |b| u64::from_le_bytes(b.try_into().unwrap()) as f64),
        other => bail!("{}: dtype `{other}` is not supported (use little-endian f4, f8 or integers)", path.display()),
    })
}

/// Parses a whole `.npy` file held in `bytes` (read from `path`).
pub fn npy_bytes(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let h = npy_header(bytes, bytes.len(), path)?;
    let count: usize = h.shape.iter().product();
    let values =
        bytes[h.data_offset..h.data_offset + count * h.value_bytes].chunks_exact(h.value_bytes).map(h.decode).collect();
    Ok(NpyArray { shape: h.shape, values })
}

/// Reads a NumPy `.npy` file (format 1.0–3.0, C order; dtypes f4, f8, i1–i8, u1–u8, little-endian).
pub fn npy(path: &Path) -> Result<NpyArray> {
    npy_bytes(&read_file(path)?, path)
}

/// Labels read as numbers: each must be a non-negative integer.
pub(crate) fn integer_labels(values: &[f64], path: &Path) -> Result<Vec<i64>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v < 0.0 || v.fract() != 0.0 {
                bail!("{}: label {v} of example {i} is not a non-negative integer", path.display());
            }
            Ok(v as i64)
        })
        .collect()
}

/// Writes a NumPy `.npy` file (format 1.0, C order) of dtype `descr` (e.g.
/// `<f4`, `|u1`, `<i8`) and `shape`, from the elements' little-endian bytes.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    Ok(tessera_util::fs::write_atomic(path, &bytes)?)
}

/// Features from one `.npy` (n × ...) and integer labels from another (n).
/// (Read whole through [`super::examples::NpyFile`].)
pub fn npy_dataset(features: &Path, labels: &Path) -> Result<Dataset> {
    super::examples::read_all(&super::examples::NpyFile::open(features, labels)?)
}

/// The CSV reader every CSV source uses: no header handling (a header is
/// recognised by [`CsvRows`]), rows of any width (checked there), cells trimmed.
pub(crate) fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true) // rows of another width get an error with their line, below
        .trim(csv::Trim::All)
        .from_reader(input)
}

/// Checks CSV rows one at a time: numbers, one width, an integer label.
pub(crate) struct CsvRows<'a> {
    label_column: isize,
    source: &'a str,
    width: Option<usize>,
    first_record: bool,
}

impl<'a> CsvRows<'a> {
    pub(crate) fn new(label_column: isize, source: &'a str) -> Self {
        CsvRows { label_column, source, width: None, first_record: true }
    }

    /// The width of the rows, once one is read.
    pub(crate) fn width(&self) -> Option<usize> {
        self.width
    }

    /// The label's column index, once the width is known.
    pub(crate) fn label_index(&self) -> Option<usize> {
        let w = self.width? as isize;
        Some(if self.label_column < 0 { w + self.label_column } else { self.label_column } as usize)
    }

    /// The label of `record`, its features appended to `features`; `None`
    /// for a blank line or the header.
    pub(crate) fn row(&mut self, record: &csv::StringRecord, features: &mut Vec<f32>) -> Result<Option<i64>> {
        let source = self.source;
        let number = record.position().map_or(0, |p| p.line() as usize - 1);
        if record.iter().all(str::is_empty) {
            return Ok(None);
        }
        let cells: Vec<&str> = record.iter().collect();
        let parsed: Result<Vec<f64>, _> = cells.iter().map(|c| c.parse::<f64>()).collect();
        let first = std::mem::replace(&mut self.first_record, false);
        let values = match parsed {
            Ok(v) => v,
            // A header: no cell of it is a number (one that is, is a typo'd data row).
            Err(_) if first && cells.iter().all(|c| c.parse::<f64>().is_err()) => return Ok(None),
            Err(_) => {
                let (col, cell) =
                    cells.iter().enumerate().find(|(_, c)| c.parse::<f64>().is_err()).expect("a bad cell");
                bail!("{source}:{}: column {} (`{cell}`) is not a number", number + 1, col + 1);
            }
        };
        let w = *self.width.get_or_insert(values.len());
        if values.len() != w || w < 2 {
            bail!("{source}:{}: {} columns where the first row has {w} (at least 2 needed)", number + 1, values.len());
        }
        let li = if self.label_column < 0 { w as isize + self.label_column } else { self.label_column };
        if li < 0 || li as usize >= w {
            bail!("{source}: label column {} is outside the {w} columns", self.label_column);
        }
        if let Some(col) = values.iter().position(|v| !v.is_finite()) {
            bail!("{source}:{}: column {} (`{}`) is not a finite number", number + 1, col + 1, cells[col]);
        }
        let label = values[li as usize];
        if label < 0.0 || label.fract() != 0.0 {
            bail!("{source}:{}: label `{label}` is not a non-negative integer", number + 1);
        }
        features.extend(values.iter().enumerate().filter(|(i, _)| *i != li as usize).map(|(_, &v)| v as f32));
        Ok(Some(label as i64))
    }
}

/// A CSV of numeric features and an integer label column (`label_column`:
/// its index, negative counts from the end). A first line that does not parse
/// as numbers is taken for a header. Every row must have the same width.
pub fn csv_text(text: &str, label_column: isize, source: &str) -> Result<Dataset> {
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    let mut rows = CsvRows::new(label_column, source);
    let mut reader = csv_reader(text.as_bytes());
    for record in reader.records() {
        let record = record.with_context(|| format!("{source}: not valid CSV"))?;
        if let Some(label) = rows.row(&record, &mut features)? {
            labels.push(label);
        }
    }
    let Some(w) = rows.width() else { bail!("{source}: no rows") };
    let classes = classes_of(&labels, source)?;
    Ok(Dataset { features, shape: vec![w - 1], labels, classes })
}

/// Reads a CSV file (gzip-compressed if it ends in `.gz`); see [`csv_text`].
pub fn csv(path: &Path, label_column: isize) -> Result<Dataset> {
    let bytes = read_file(path)?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .with_context(|| format!("{}: not valid gzip text", path.display()))?;
        text
    } else {
        String::from_utf8(bytes)
            .map_err(|e| e.utf8_error())
            .with_context(|| format!("{}: not UTF-8 text", path.display()))?
    };
    csv_text(&text, label_column, &path.display().to_string())
}

/// The UCI optical-recognition digits shipped in `data/digits` (1,797 8×8
/// images, CC BY 4.0): pixels scaled from 0..16 to [0, 1], shape [1, 8, 8].
pub fn digits(path: &Path) -> Result<Dataset> {
    let mut d = csv(path, -1)?;
    if d.len() != 1797 || d.shape != [64] {
        bail!("{}: expected 1,797 digits of 64 pixels, found {} of {:?}", path.display(), d.len(), d.shape);
    }
    d.features.iter_mut().for_each(|v| *v /= 16.0);
    d.shape = vec![1, 8, 8];
    d.classes = 10;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn idx_dimensions_whose_product_overflows_are_refused() {
        // Found by the `idx` fuzz target: the product wrapped (or panicked).
        let mut bytes = vec![0, 0, 0x08, 3];
        for _ in 0..3 {
            bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        let err = idx_header(&bytes, 3, bytes.len(), Path::new("x.idx")).unwrap_err().to_string();
        assert!(err.contains("promise more bytes than any file holds"), "{err}");
    }

    #[test]
    fn idx_reads_images_and_labels_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = (dir.path().join("img"), dir.path().join("lab"));
        std::fs::write(&images, idx_bytes(&[2, 2, 3], &[0, 255, 51, 0, 0, 0, 1, 2, 3, 4, 5, 6])).unwrap();
        std::fs::write(&labels, idx_bytes(&[2], &[7, 1])).unwrap();
        let d = idx(&images, &labels).unwrap();
        assert_eq!((d.shape.clone(), d.labels.clone(), d.classes), (vec![1, 2, 3], vec![7, 1], 8));
        assert_eq!(&d.features[..3], &[0.0, 1.0, 0.2]);

        std::fs::write(&images, idx_bytes(&[2, 2, 3], &[0; 11])).unwrap();
        let err = idx(&images, &labels).unwrap_err().to_string();
        assert!(err.contains("promises 12 bytes of data from byte offset 16, the file has 11 (truncated)"), "{err}");
        std::fs::write(&images, b"\x01\x02\x08\x03").unwrap();
        assert!(idx(&images, &labels).unwrap_err().to_string().contains("not an IDX file"));
        std::fs::write(&images, idx_bytes(&[3, 2, 3], &[0; 18])).unwrap();
        assert!(idx(&images, &labels).unwrap_err().to_string().contains("3 images but"));
    }

    #[test]
    fn cifar_reads_records_and_rejects_cut_files_and_bad_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        let mut bytes = vec![3u8];
        bytes.extend(std::iter::repeat_n(255u8, 3072));
        bytes.push(9);
        bytes.extend(std::iter::repeat_n(0u8, 3072));
        std::fs::write(&path, &bytes).unwrap();
        let d = cifar(&[&path], 1).unwrap();
        assert_eq!((d.len(), d.labels.clone(), d.shape.clone()), (2, vec![3, 9], vec![3, 32, 32]));
        assert_eq!((d.features[0], d.features[3072]), (1.0, 0.0));
        std::fs::write(&path, &bytes[..5000]).unwrap();
        let err = cifar(&[&path], 1).unwrap_err().to_string();
        assert!(
            err.contains("5000 bytes is not a whole number of 3073-byte records") && err.contains("byte offset 3073"),
            "{err}"
        );
        bytes[3073] = 10;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cifar(&[&path], 1).unwrap_err().to_string().contains("label 10 at byte offset 3073"));
    }

    #[test]
    fn npy_reads_features_and_labels_and_rejects_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
        let values: Vec<u8> = [1.5f32, -2.0, 0.25, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        // write_npy writes what numpy.save writes; npy reads it back.
        write_npy(&x, "<f4", &[2, 2], &values).unwrap();
        write_npy(&y, "<i8", &[2], &[1i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()).unwrap();
        let bytes = std::fs::read(&y).unwrap();
        assert_eq!((&bytes[..8], bytes.len()), (&b"\x93NUMPY\x01\x00"[..], 128 + 16), "a 64-byte aligned header");
        assert!(String::from_utf8_lossy(&bytes[10..128])
            .starts_with("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }"));
        let d = npy_dataset(&x, &y).unwrap();
        assert_eq!(
            (d.features.clone(), d.labels.clone(), d.shape.clone(), d.classes),
            (vec![1.5, -2.0, 0.25, 4.0], vec![1, 0], vec![2], 2)
        );
        write_npy(&x, "<f4", &[2, 2], &values[..12]).unwrap();
        let err = npy(&x).err().unwrap().to_string();
        assert!(
            err.contains("4 values of 4 bytes expected from byte offset 128, the file has 12 bytes (truncated)"),
            "{err}"
        );
        std::fs::write(&x, b"PK\x03\x04 not npy").unwrap();
        assert!(npy(&x).err().unwrap().to_string().contains("not a .npy file"));
        write_npy(&x, ">f4", &[1], &[0; 4]).unwrap();
        assert!(npy(&x).err().unwrap().to_string().contains("dtype `>f4` is not supported"));
    }

    #[test]
    fn csv_reads_a_header_and_names_bad_lines() {
        let d = csv_text("a,b,label\n1,2,0\n3.5,4,2\n", -1, "t.csv").unwrap();
        assert_eq!(
            (d.features.clone(), d.labels.clone(), d.shape.clone(), d.classes),
            (vec![1.0, 2.0, 3.5, 4.0], vec![0, 2], vec![2], 3)
        );
        let d = csv_text("0,1,2\n1,5,6\n", 0, "t.csv").unwrap();
        assert_eq!((d.labels.clone(), d.features.clone()), (vec![0, 1], vec![1.0, 2.0, 5.0, 6.0]));
        let err = csv_text("1,2,0\n3,x,1\n", -1, "t.csv").unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: column 2 (`x`) is not a number");
        let err = csv_text("1,2,0\n3,1\n", -1, "t.csv").unwrap_err().to_string();
        assert!(err.starts_with("t.csv:2: 2 columns where the first row has 3"), "{err}");
        assert!(csv_text("1,2,0.5\n", -1, "t.csv").unwrap_err().to_string().contains("not a non-negative integer"));
    }

    #[test]
    fn the_shipped_digits_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits/digits.csv.gz");
        let d = digits(&path).unwrap();
        assert_eq!((d.len(), d.shape.clone(), d.classes), (1797, vec![1, 8, 8], 10));
        assert!(d.features.iter().all(|v| (0.0..=1.0).contains(v)));
        for c in 0..10 {
            assert!(d.labels.iter().filter(|&&y| y == c).count() > 170);
        }
    }
}
