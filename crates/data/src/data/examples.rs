//! Example sources read one example at a time: the labels are in memory
//! (8 bytes an example), the features stay in their files until asked for.
//! Writing shards or gathering a split from a source therefore holds one
//! example, not the data set.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{bail, Context, Result};

use super::readers::{self, classes_of, NpyHeader};
use super::Dataset;
use crate::file_map::FileMap;

/// What a source knows of its examples before reading any feature.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Described {
    /// What the source is, for messages (its file).
    pub name: String,
    /// The shape of one example.
    pub shape: Vec<usize>,
    /// Every label, in stored order.
    pub labels: Vec<i64>,
    /// Number of classes.
    pub classes: usize,
}

/// Examples readable by position: labels up front, features on demand.
pub trait ExampleSource: Send + Sync {
    /// Its name, shape, labels and classes.
    fn described(&self) -> &Described;
    /// Appends the features of example `i` to `out`.
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()>;
    /// What the source is, for messages (its file).
    fn name(&self) -> &str {
        &self.described().name
    }
    /// The shape of one example.
    fn shape(&self) -> &[usize] {
        &self.described().shape
    }
    /// Number of classes.
    fn classes(&self) -> usize {
        self.described().classes
    }
    /// Every label, in stored order.
    fn labels(&self) -> &[i64] {
        &self.described().labels
    }
    /// Number of examples.
    fn len(&self) -> usize {
        self.labels().len()
    }
    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }
    /// Features per example.
    fn dim(&self) -> usize {
        self.shape().iter().product()
    }
}

/// Every example of `source`, read into memory.
pub fn read_all(source: &dyn ExampleSource) -> Result<Dataset> {
    let mut features = Vec::with_capacity(source.len() * source.dim());
    for i in 0..source.len() {
        source.read(i, &mut features)?;
    }
    let d = source.described();
    Ok(Dataset { features, shape: d.shape.clone(), labels: d.labels.clone(), classes: d.classes })
}

/// A data set made in memory (a generated source) as a source.
pub struct InMemory {
    described: Described,
    features: Vec<f32>,
}

impl From<Dataset> for InMemory {
    fn from(d: Dataset) -> Self {
        let described =
            Described { name: "the generated data".into(), shape: d.shape, labels: d.labels, classes: d.classes };
        InMemory { described, features: d.features }
    }
}

impl ExampleSource for InMemory {
    fn described(&self) -> &Described {
        &self.described
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        let dim = self.dim();
        out.extend_from_slice(&self.features[i * dim..(i + 1) * dim]);
        Ok(())
    }
}

/// Fails on the first non-finite feature of example `i`, naming it.
fn check_finite(values: &[f32], i: usize, name: &str) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(k) => bail!("{name}: value {k} of example {i} is {}; features must be finite", values[k]),
        None => Ok(()),
    }
}

/// A memory map that gives its pages back every [`MAP_RELEASE_BYTES`] read,
/// so that streaming a file larger than memory keeps the process small.
struct Mapped {
    map: FileMap,
    /// Bytes touched since the map last gave its pages back.
    touched: AtomicU64,
}

/// After this many bytes read through a map, its pages are handed back
/// (`MADV_DONTNEED`: they stay in the page cache, not in this process).
const MAP_RELEASE_BYTES: u64 = 64 << 20;

impl Mapped {
    fn open(path: &Path) -> Result<Mapped> {
        Ok(Mapped { map: FileMap::open(path)?, touched: AtomicU64::new(0) })
    }

    fn bytes(&self, start: usize, len: usize) -> &[u8] {
        if self.touched.fetch_add(len as u64, Ordering::Relaxed) > MAP_RELEASE_BYTES {
            self.touched.store(0, Ordering::Relaxed);
            self.map.release();
        }
        self.map.bytes(start, len)
    }
}

/// `.npy` features read through a memory map, each value converted from its
/// own dtype when its example is read; labels from a second `.npy`.
pub struct NpyFile {
    described: Described,
    map: Mapped,
    header: NpyHeader,
}

impl NpyFile {
    /// Opens `features` (n × ...) and `labels` (n).
    pub fn open(features: &Path, labels: &Path) -> Result<NpyFile> {
        let map = Mapped::open(features)?;
        let header = readers::npy_header(map.bytes(0, map.map.len().min(1 << 16)), map.map.len(), features)?;
        let y = readers::npy(labels)?;
        if header.shape.is_empty() || y.shape.len() != 1 || header.shape[0] != y.shape[0] {
            bail!(
                "{} has shape {:?} and {} has shape {:?}: expected (n, ...) and (n,)",
                features.display(),
                header.shape,
                labels.display(),
                y.shape
            );
        }
        let shape = if header.shape.len() == 1 { vec![1] } else { header.shape[1..].to_vec() };
        if shape.contains(&0) || header.shape[0] == 0 {
            bail!(
                "{}: shape {:?} holds no {}: expected (n, ...) with n and every feature dimension at least 1",
                features.display(),
                header.shape,
                if header.shape[0] == 0 { "examples" } else { "features" }
            );
        }
        let labels_out = readers::integer_labels(&y.values, labels)?;
        let classes = classes_of(&labels_out, &labels.display().to_string())?;
        let described = Described { name: features.display().to_string(), shape, labels: labels_out, classes };
        Ok(NpyFile { described, map, header })
    }
}

impl ExampleSource for NpyFile {
    fn described(&self) -> &Described {
        &self.described
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        let dim = self.dim();
        let size = self.header.value_bytes;
        let bytes = self.map.bytes(self.header.data_offset + i * dim * size, dim * size);
        let start = out.len();
        out.extend(bytes.chunks_exact(size).map(|b| (self.header.decode)(b) as f32));
        check_finite(&out[start..], i, self.name())
    }
}

/// MNIST-style IDX files: images read one by one (`pread`), labels in memory.
pub struct IdxFiles {
    described: Described,
    file: File,
    data_offset: u64,
}

impl IdxFiles {
    /// Opens an image file (n × rows × cols) and a label file (n).
    pub fn open(images: &Path, labels_path: &Path) -> Result<IdxFiles> {
        let file = File::open(images).with_context(|| format!("reading {}", images.display()))?;
        let mut head = vec![0u8; 16];
        let got = file.read_at(&mut head, 0).with_context(|| format!("reading {}", images.display()))?;
        head.truncate(got);
        let (dims, data_offset) = readers::idx_header(&head, 3, file.metadata()?.len() as usize, images)?;
        let (label_dims, label_bytes) = readers::read_idx(labels_path, 1)?;
        if label_dims[0] != dims[0] {
            bail!(
                "{} holds {} images but {} holds {} labels",
                images.display(),
                dims[0],
                labels_path.display(),
                label_dims[0]
            );
        }
        let labels: Vec<i64> = label_bytes.iter().map(|&l| l as i64).collect();
        let classes = classes_of(&labels, &labels_path.display().to_string())?;
        let shape = vec![1, dims[1], dims[2]];
        let described = Described { name: images.display().to_string(), shape, labels, classes };
        Ok(IdxFiles { described, file, data_offset: data_offset as u64 })
    }
}

impl ExampleSource for IdxFiles {
    fn described(&self) -> &Described {
        &self.described
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        let dim = self.dim();
        let mut pixels = vec![0u8; dim];
        let offset = self.data_offset + (i * dim) as u64;
        self.file
            .read_exact_at(&mut pixels, offset)
            .with_context(|| format!("{}: reading image {i} at byte offset {offset}", self.name()))?;
        out.extend(pixels.iter().map(|&p| p as f32 / 255.0));
        Ok(())
    }
}

/// CIFAR-10 / CIFAR-100 binary batches: records read one by one, labels in
/// memory (one sequential pass at open).
pub struct CifarFiles {
    files: Vec<(PathBuf, File)>,
    /// The first example of each file, and the total at the end.
    starts: Vec<usize>,
    label_bytes: usize,
    described: Described,
}

impl CifarFiles {
    /// Opens the batch files in order; `label_bytes` is 1 (CIFAR-10) or 2 (CIFAR-100).
    pub fn open(paths: &[PathBuf], label_bytes: usize) -> Result<CifarFiles> {
        if !(1..=2).contains(&label_bytes) {
            bail!("CIFAR records have 1 (CIFAR-10) or 2 (CIFAR-100) label bytes");
        }
        let record = label_bytes + 3072;
        let limit = if label_bytes == 1 { 10 } else { 100 };
        let (mut files, mut starts, mut labels) = (Vec::new(), vec![0], Vec::new());
        for path in paths {
            let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
            let len = file.metadata()?.len() as usize;
            if len == 0 || !len.is_multiple_of(record) {
                bail!(
                    "{}: {len} bytes is not a whole number of {record}-byte records (the last record starts at byte offset {} and is cut short)",
                    path.display(),
                    len / record * record
                );
            }
            let mut reader = BufReader::with_capacity(1 << 20, &file);
            let mut chunk = vec![0u8; record];
            for r in 0..len / record {
                reader.read_exact(&mut chunk).with_context(|| format!("reading {}", path.display()))?;
                let label = chunk[label_bytes - 1] as i64;
                if label >= limit {
                    bail!(
                        "{}: label {label} at byte offset {} is not below {limit}",
                        path.display(),
                        r * record + label_bytes - 1
                    );
                }
                labels.push(label);
            }
            starts.push(labels.len());
            files.push((path.clone(), file));
        }
        let name = paths.first().map_or("CIFAR batches".into(), |p| p.display().to_string());
        let classes = if label_bytes == 1 { 10 } else { 100 };
        let described = Described { name, shape: vec![3, 32, 32], labels, classes };
        Ok(CifarFiles { files, starts, label_bytes, described })
    }
}

impl ExampleSource for CifarFiles {
    fn described(&self) -> &Described {
        &self.described
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        let f = self.starts.partition_point(|&s| s <= i) - 1;
        let (path, file) = &self.files[f];
        let record = self.label_bytes + 3072;
        let offset = ((i - self.starts[f]) * record + self.label_bytes) as u64;
        let mut pixels = vec![0u8; 3072];
        file.read_exact_at(&mut pixels, offset)
            .with_context(|| format!("{}: reading record at byte offset {offset}", path.display()))?;
        out.extend(pixels.iter().map(|&p| p as f32 / 255.0));
        Ok(())
    }
}

/// A plain CSV file: one pass at open checks every row and keeps the labels
/// and each row's byte offset; a row's features are parsed again when read.
pub struct CsvFile {
    described: Described,
    file: File,
    /// Byte range of each data row.
    rows: Vec<(u64, u64)>,
    label_column: usize,
}

impl CsvFile {
    /// Opens `path`; `label_column` as in [`readers::csv_text`].
    pub fn open(path: &Path, label_column: isize) -> Result<CsvFile> {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.display().to_string();
        let mut parser = readers::CsvRows::new(label_column, &name);
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        let mut reader = readers::csv_reader(BufReader::with_capacity(1 << 20, &file));
        let mut record = csv::StringRecord::new();
        let mut scratch = Vec::new();
        while reader.read_record(&mut record).map_err(|e| csv_error(e, &name))? {
            let start = record.position().map_or(0, |p| p.byte());
            let end = reader.position().byte();
            scratch.clear();
            if let Some(label) = parser.row(&record, &mut scratch)? {
                labels.push(label);
                rows.push((start, end));
            }
        }
        let Some(width) = parser.width() else { bail!("{name}: no rows") };
        let classes = classes_of(&labels, &name)?;
        let label_column = parser.label_index().expect("known with the width");
        let described = Described { name, shape: vec![width - 1], labels, classes };
        Ok(CsvFile { described, file, rows, label_column })
    }
}

/// A CSV reading error as a message naming the file and line.
fn csv_error(e: csv::Error, name: &str) -> crate::error::DataError {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => {
            let line = pos.as_ref().map_or(0, |p| p.line());
            crate::error::invalid!("{name}:{line}: not UTF-8 text; save the file as UTF-8")
        }
        _ => crate::error::DataError::from(e).context(format!("{name}: not valid CSV")),
    }
}

impl ExampleSource for CsvFile {
    fn described(&self) -> &Described {
        &self.described
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        let (start, end) = self.rows[i];
        let mut bytes = vec![0u8; (end - start) as usize];
        self.file
            .read_exact_at(&mut bytes, start)
            .with_context(|| format!("{}: reading row {i} at byte offset {start}", self.name()))?;
        let mut reader = readers::csv_reader(bytes.as_slice());
        let mut record = csv::StringRecord::new();
        if !reader.read_record(&mut record)? {
            bail!("{}: row {i} at byte offset {start} changed since it was opened", self.name());
        }
        for (c, cell) in record.iter().enumerate().filter(|(c, _)| *c != self.label_column) {
            let v: f64 = cell
                .parse()
                .with_context(|| format!("{}: column {} of row {i} changed since it was opened", self.name(), c + 1))?;
            out.push(v as f32);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_npy_decodes_every_dtype_to_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<u8> = [0i64, 2, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        readers::write_npy(&dir.path().join("y.npy"), "<i8", &[3], &labels).unwrap();
        let floats = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.5];
        let cases: [(&str, Vec<u8>, Vec<f32>); 3] = [
            ("<f4", floats.iter().flat_map(|v| v.to_le_bytes()).collect(), floats.to_vec()),
            ("<f8", floats.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect(), floats.to_vec()),
            ("|u1", vec![1, 2, 3, 4, 5, 255], vec![1.0, 2.0, 3.0, 4.0, 5.0, 255.0]),
        ];
        for (descr, bytes, want) in cases {
            let x = dir.path().join(format!("x{}.npy", &descr[1..]));
            readers::write_npy(&x, descr, &[3, 2], &bytes).unwrap();
            let mapped = read_all(&NpyFile::open(&x, &dir.path().join("y.npy")).unwrap()).unwrap();
            let expected = Dataset { features: want, shape: vec![2], labels: vec![0, 2, 1], classes: 3 };
            assert_eq!(mapped, expected, "{descr}");
        }
    }

    #[test]
    fn a_non_finite_npy_value_is_named_when_its_example_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<u8> = [1.0f32, f32::NAN, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        readers::write_npy(&dir.path().join("x.npy"), "<f4", &[2, 2], &x).unwrap();
        readers::write_npy(&dir.path().join("y.npy"), "|u1", &[2], &[0, 1]).unwrap();
        let source = NpyFile::open(&dir.path().join("x.npy"), &dir.path().join("y.npy")).unwrap();
        let err = source.read(0, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("x.npy: value 1 of example 0 is NaN"), "{err}");
        source.read(1, &mut Vec::new()).unwrap();
    }

    #[test]
    fn csv_rows_read_back_by_position_equal_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "a,b,label\n1,2,0\n\n3.5,-4,1\n5,6e2,2\n").unwrap();
        let streamed = CsvFile::open(&path, -1).unwrap();
        assert_eq!(read_all(&streamed).unwrap(), readers::csv(&path, -1).unwrap());
        assert_eq!(streamed.labels(), &[0, 1, 2]);
    }

    #[test]
    fn idx_and_cifar_records_are_read_by_position() {
        let dir = tempfile::tempdir().unwrap();
        let idx = |dims: &[u32], data: &[u8]| {
            let mut b = vec![0, 0, 8, dims.len() as u8];
            dims.iter().for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
            b.extend_from_slice(data);
            b
        };
        std::fs::write(dir.path().join("x"), idx(&[3, 2, 2], &(0..12).collect::<Vec<u8>>())).unwrap();
        std::fs::write(dir.path().join("y"), idx(&[3], &[1, 0, 1])).unwrap();
        let images = IdxFiles::open(&dir.path().join("x"), &dir.path().join("y")).unwrap();
        let mut third = Vec::new();
        images.read(2, &mut third).unwrap();
        assert_eq!(third, [8.0, 9.0, 10.0, 11.0].map(|p| p / 255.0));
        assert_eq!((images.labels(), images.shape()), (&[1, 0, 1][..], &[1, 2, 2][..]));
        let mut batch = Vec::new();
        for r in 0..3u8 {
            batch.push(r);
            batch.extend((0..3072).map(|p| (p % 251) as u8 ^ r));
        }
        let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
        std::fs::write(&a, &batch).unwrap();
        std::fs::write(&b, &batch[..3073]).unwrap();
        let records = CifarFiles::open(&[a, b], 1).unwrap();
        assert_eq!(records.labels(), &[0, 1, 2, 0]);
        let mut fourth = Vec::new();
        records.read(3, &mut fourth).unwrap();
        assert_eq!((fourth.len(), fourth[1], fourth[3071]), (3072, 1.0 / 255.0, (3071 % 251) as f32 / 255.0));
        let mut second = Vec::new();
        records.read(1, &mut second).unwrap();
        assert_eq!(second[0], 1.0 / 255.0, "record 1 is xor 1: pixel 0 is 1");
    }
}
