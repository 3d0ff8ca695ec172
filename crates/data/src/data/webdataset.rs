//! WebDataset-style tar shards: a sample is the files of a tar that share a
//! key (the name up to the first dot of its last component), e.g.
//! `000017.png` + `000017.cls`. Features come from `.npy` (any supported
//! dtype), `.png` or `.jpg`/`.jpeg` (decoded to channels × height × width in
//! [0, 1]); the label from `.cls` (an integer as text) or `.json` (`label` or
//! `cls`). Opening reads the tar headers and the labels; a sample's features
//! are read (one `pread`) and decoded when the sample is read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};

use super::examples::{Described, ExampleSource};
use super::readers::{self, classes_of};

/// How a sample's features are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    /// A `.npy` array.
    Npy,
    /// A PNG or JPEG image.
    Image,
}

/// Where one sample's features lie.
#[derive(Debug, Clone)]
struct Member {
    tar: u32,
    offset: u64,
    length: u64,
    encoding: Encoding,
    key: String,
}

/// The samples of one or more tar shards, in order.
pub struct TarShards {
    tars: Vec<(PathBuf, File)>,
    members: Vec<Member>,
    described: Described,
}

/// A sample being assembled from its files.
#[derive(Default)]
struct Pending {
    key: String,
    features: Option<(u64, u64, Encoding)>,
    label: Option<i64>,
}

/// The key and extension of a member's name (`a/b.c.d` → `a/b`, `c.d`).
fn split_key(name: &str) -> (&str, &str) {
    let base_at = name.rfind('/').map_or(0, |s| s + 1);
    match name[base_at..].find('.') {
        Some(dot) => (&name[..base_at + dot], &name[base_at + dot + 1..]),
        None => (name, ""),
    }
}

/// A label written as text (`.cls`) or JSON (`.json`: `label` or `cls`).
fn parse_label(ext: &str, text: &str, tar: &Path, key: &str) -> Result<i64> {
    let value = if ext == "json" {
        let json: serde_json::Value =
            serde_json::from_str(text).with_context(|| format!("{}: {key}.json is not JSON", tar.display()))?;
        json.get("label").or_else(|| json.get("cls")).and_then(serde_json::Value::as_i64)
    } else {
        text.trim().parse::<i64>().ok()
    };
    match value {
        Some(l) if l >= 0 => Ok(l),
        _ => bail!("{}: the label of sample `{key}` ({key}.{ext}) is not a non-negative integer", tar.display()),
    }
}

impl TarShards {
    /// Indexes the tar files `paths`, in order.
    pub fn open(paths: &[PathBuf]) -> Result<TarShards> {
        let (mut tars, mut members, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for (t, path) in paths.iter().enumerate() {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            index_tar(path, &file, t as u32, &mut members, &mut labels)?;
            tars.push((path.clone(), file));
        }
        if members.is_empty() {
            bail!(
                "{}: no samples (files sharing a key, with .npy/.png/.jpg features and a .cls/.json label)",
                paths.first().map_or("data.files".into(), |p| p.display().to_string())
            );
        }
        let name = paths[0].display().to_string();
        let classes = classes_of(&labels, &name)?;
        let mut shards = TarShards { tars, members, described: Described { name, shape: vec![], labels, classes } };
        let mut first = Vec::new();
        shards.described.shape = shards.decode(0, &mut first)?;
        Ok(shards)
    }

    /// Decodes sample `i`'s features into `out`; returns their shape.
    fn decode(&self, i: usize, out: &mut Vec<f32>) -> Result<Vec<usize>> {
        let m = &self.members[i];
        let (path, file) = &self.tars[m.tar as usize];
        let mut bytes = vec![0u8; m.length as usize];
        file.read_exact_at(&mut bytes, m.offset)
            .with_context(|| format!("{}: reading sample `{}` at byte offset {}", path.display(), m.key, m.offset))?;
        let name = || PathBuf::from(format!("{}: {}", path.display(), m.key));
        match m.encoding {
            Encoding::Npy => {
                let array = readers::npy_bytes(&bytes, &name())?;
                if array.values.is_empty() {
                    bail!("{}: sample `{}` has shape {:?}: no features", path.display(), m.key, array.shape);
                }
                let start = out.len();
                out.extend(array.values.iter().map(|&v| v as f32));
                if let Some(k) = out[start..].iter().position(|v| !v.is_finite()) {
                    bail!("{}: value {k} of sample `{}` is not finite", path.display(), m.key);
                }
                Ok(if array.shape.is_empty() { vec![1] } else { array.shape })
            }
            Encoding::Image => {
                let image = decode_image(&bytes)
                    .with_context(|| format!("{}: sample `{}` is not a readable image", path.display(), m.key))?;
                let (w, h) = (image.width() as usize, image.height() as usize);
                let (channels, pixels) = if image.color().has_color() {
                    (3, image.to_rgb8().into_raw())
                } else {
                    (1, image.to_luma8().into_raw())
                };
                // Stored height × width × channels; Tessera's images are channels first.
                for c in 0..channels {
                    out.extend((0..h * w).map(|p| pixels[p * channels + c] as f32 / 255.0));
                }
                Ok(vec![channels, h, w])
            }
        }
    }
}

/// The most bytes one sample's feature file may have (a member's size comes
/// from its tar header, and is checked against this and the file before
/// anything is allocated).
pub const MAX_MEMBER_BYTES: u64 = 1 << 30;
/// The most bytes a `.cls` or `.json` label file may have.
const MAX_LABEL_BYTES: u64 = 1 << 16;
/// The largest image a sample may decode to (width × height), and the most
/// memory its decoding may take: the header's dimensions are checked first.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// A PNG or JPEG decoded within [`MAX_IMAGE_PIXELS`] (the header's
/// dimensions are read and checked first); a JPEG must end (an end-of-image
/// marker after its last scan), where the decoder would fill a cut one in.
fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage> {
    let reader = || image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format();
    let (w, h) = reader()?.into_dimensions()?;
    if w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        bail!("its header declares {w} × {h} pixels, more than Tessera decodes ({MAX_IMAGE_PIXELS})");
    }
    if reader()?.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_whole(bytes) {
        bail!("the JPEG is cut short (no end-of-image marker after its last scan)");
    }
    let mut decoder = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    decoder.limits(limits);
    Ok(decoder.decode()?)
}

/// Whether a JPEG's last end-of-image marker (FF D9) follows its last
/// start-of-scan (FF DA): a file cut inside its scan data has none after it.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(scan), Some(end)) if end > scan)
}

/// Adds the samples of one tar to `members` and `labels`.
fn index_tar(path: &Path, file: &File, t: u32, members: &mut Vec<Member>, labels: &mut Vec<i64>) -> Result<()> {
    let file_len = file.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    let mut archive = tar::Archive::new(file);
    let mut pending = Pending::default();
    let mut finish = |p: &mut Pending| -> Result<()> {
        let p = std::mem::take(p);
        if p.key.is_empty() {
            return Ok(());
        }
        let ((offset, length, encoding), label) = match (p.features, p.label) {
            (Some(f), Some(l)) => (f, l),
            (None, _) => bail!("{}: sample `{}` has no .npy, .png or .jpg file", path.display(), p.key),
            (_, None) => bail!("{}: sample `{}` has no .cls or .json label", path.display(), p.key),
        };
        members.push(Member { tar: t, offset, length, encoding, key: p.key });
        labels.push(label);
        Ok(())
    };
    let entries = archive.entries_with_seek().with_context(|| format!("{}: not a tar file", path.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{}: a broken tar header", path.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let (key, ext) = split_key(&name);
        if key != pending.key {
            finish(&mut pending)?;
            pending.key = key.to_string();
        }
        let ext = ext.to_ascii_lowercase();
        let encoding = match ext.rsplit('.').next().unwrap_or("") {
            "npy" => Some(Encoding::Npy),
            "png" | "jpg" | "jpeg" => Some(Encoding::Image),
            _ => None,
        };
        if let Some(encoding) = encoding {
            let (offset, size) = (entry.raw_file_position(), entry.size());
            if size > MAX_MEMBER_BYTES || offset.checked_add(size).is_none_or(|end| end > file_len) {
                bail!(
                    "{}: member {name} at byte offset {offset} declares {size} bytes; the file has {file_len} (at most {MAX_MEMBER_BYTES} a member)",
                    path.display()
                );
            }
            pending.features = Some((offset, size, encoding));
        } else if ext == "cls" || ext == "json" {
            if entry.size() > MAX_LABEL_BYTES {
                bail!("{}: label file {name} declares {} bytes (a label is a few)", path.display(), entry.size());
            }
            let mut text = String::new();
            entry.read_to_string(&mut text).with_context(|| format!("{}: reading {name}", path.display()))?;
            pending.label = Some(parse_label(&ext, &text, path, key)?);
        }
    }
    finish(&mut pending)
}

impl ExampleSource for TarShards {
    fn described(&self) -> &Described {
        &self.described
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        let shape = self.decode(i, out)?;
        if shape != self.shape() {
            let m = &self.members[i];
            bail!(
                "{}: sample `{}` has shape {shape:?}, the first sample {:?}; every sample must have one shape",
                self.tars[m.tar as usize].0.display(),
                m.key,
                self.shape()
            );
        }
        Ok(())
    }
}

/// Writes a tar shard of `samples` (key, extension, bytes), for tests and
/// examples that need WebDataset data.
pub fn write_tar(path: &Path, samples: &[(String, &str, Vec<u8>)]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut builder = tar::Builder::new(file);
    for (key, ext, bytes) in samples {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("{key}.{ext}"), bytes.as_slice())?;
    }
    builder.into_inner()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
        let pixels: Vec<u8> = (0..w * h * 3).map(|p| (p as u8).wrapping_mul(7).wrapping_add(seed)).collect();
        let mut bytes = Vec::new();
        image::RgbImage::from_raw(w, h, pixels)
            .unwrap()
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn keys_split_at_the_first_dot_of_the_last_component() {
        assert_eq!(split_key("a.b/000017.seg.png"), ("a.b/000017", "seg.png"));
        assert_eq!(split_key("x"), ("x", ""));
    }

    #[test]
    fn png_samples_decode_channels_first_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tar");
        let mut samples = Vec::new();
        for k in 0..3u8 {
            samples.push((format!("{k:06}"), "png", png(4, 2, k)));
            samples.push((format!("{k:06}"), "cls", format!("{}\n", k % 2).into_bytes()));
        }
        write_tar(&path, &samples).unwrap();
        let shards = TarShards::open(&[path]).unwrap();
        assert_eq!(
            (shards.len(), shards.shape(), shards.labels(), shards.classes()),
            (3, &[3, 2, 4][..], &[0, 1, 0][..], 2)
        );
        let mut x = Vec::new();
        shards.read(1, &mut x).unwrap();
        let rgb = image::load_from_memory(&png(4, 2, 1)).unwrap().to_rgb8();
        assert_eq!(x[0], rgb.get_pixel(0, 0)[0] as f32 / 255.0);
        assert_eq!(x[8 + 5], rgb.get_pixel(1, 1)[1] as f32 / 255.0, "green plane, row 1, column 1");
    }

    #[test]
    fn npy_samples_and_json_labels_read_and_a_missing_label_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let npy = |v: [f32; 2]| {
            let p = dir.path().join("tmp.npy");
            readers::write_npy(&p, "<f4", &[2], &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
            std::fs::read(p).unwrap()
        };
        let path = dir.path().join("a.tar");
        let samples = vec![
            ("k0".to_string(), "npy", npy([1.0, 2.0])),
            ("k0".to_string(), "json", br#"{"label": 3}"#.to_vec()),
            ("k1".to_string(), "npy", npy([3.0, 4.0])),
            ("k1".to_string(), "cls", b"1".to_vec()),
        ];
        write_tar(&path, &samples).unwrap();
        let shards = TarShards::open(std::slice::from_ref(&path)).unwrap();
        let mut x = Vec::new();
        shards.read(1, &mut x).unwrap();
        assert_eq!((x, shards.labels().to_vec(), shards.classes()), (vec![3.0, 4.0], vec![3, 1], 4));
        write_tar(&path, &samples[..3]).unwrap();
        let err = TarShards::open(&[path]).err().unwrap().to_string();
        assert!(err.contains("a.tar: sample `k1` has no .cls or .json label"), "{err}");
    }

    #[test]
    fn an_image_header_declaring_a_huge_image_is_refused_before_decoding() {
        let mut png = Vec::new();
        let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let crc = crc32fast::hash(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
        };
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = 100_000u32.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        let mut idat = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut idat, &[0; 64]).unwrap();
        chunk(&mut png, b"IDAT", &idat.finish().unwrap());
        chunk(&mut png, b"IEND", &[]);
        let err = tessera_util::error::chain(&decode_image(&png).unwrap_err());
        assert!(err.contains("100000 × 100000 pixels"), "{err}");
    }

    #[test]
    fn a_jpeg_cut_in_its_scan_is_refused_and_a_whole_one_decodes() {
        let pixels: Vec<u8> = (0..64 * 64).map(|i| (i * 37 % 256) as u8).collect();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode(&pixels, 64, 64, image::ExtendedColorType::L8).unwrap();
        assert!(jpeg_is_whole(&jpeg) && decode_image(&jpeg).is_ok());
        let cut = &jpeg[..jpeg.len() * 9 / 10];
        assert!(!jpeg_is_whole(cut));
        assert!(tessera_util::error::chain(&decode_image(cut).unwrap_err()).contains("cut short"));
    }

    #[test]
    fn a_member_declaring_more_bytes_than_the_file_has_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tar");
        write_tar(&path, &[("000000".into(), "npy", vec![0u8; 600]), ("000000".into(), "cls", b"1".to_vec())]).unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..900]).unwrap();
        let err = tessera_util::error::chain(&TarShards::open(std::slice::from_ref(&path)).err().unwrap());
        assert!(err.contains("member 000000.npy at byte offset 512 declares 600 bytes; the file has 900"), "{err}");
    }
}
