//! One array of a graph (offsets, targets): held in memory, or read in
//! place from a memory-mapped cache file, so that workers reading the same
//! parsed graph share its pages instead of each holding a copy.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::file_map::FileMap;

/// A value type that a file's bytes can be viewed as (`bytemuck::Pod`: any
/// bit pattern is a value), stored little-endian.
pub trait Plain: bytemuck::Pod {}
impl Plain for u64 {}
impl Plain for u32 {}
impl Plain for f32 {}

/// A graph array: a `Vec`, or a stretch of a mapped file. It reads as a
/// slice; writing to a mapped one copies it into memory first.
#[derive(Clone)]
pub enum Column<T: Plain> {
    /// In memory.
    Owned(Vec<T>),
    /// `len` values from byte `start` of a mapped file.
    Mapped {
        /// The file.
        map: Arc<FileMap>,
        /// Byte offset of the first value (a multiple of its alignment).
        start: usize,
        /// Number of values.
        len: usize,
    },
}

impl<T: Plain> Column<T> {
    /// `len` values of `T` from byte `start` of `map`, where the host is
    /// little-endian and the values are aligned; `None` otherwise.
    pub fn mapped(map: Arc<FileMap>, start: usize, len: usize) -> Option<Column<T>> {
        let fits = len.checked_mul(size_of::<T>()).and_then(|b| b.checked_add(start)).is_some_and(|e| e <= map.len());
        let aligned = fits && bytemuck::try_cast_slice::<u8, T>(map.bytes(start, len * size_of::<T>())).is_ok();
        (cfg!(target_endian = "little") && fits && aligned).then_some(Column::Mapped { map, start, len })
    }

    /// Whether the values are read from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Column::Mapped { .. })
    }

    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        self
    }
}

impl<T: Plain> Deref for Column<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Column::Owned(values) => values,
            Column::Mapped { map, start, len } => {
                // `mapped` checked the range, the alignment and the byte order.
                bytemuck::cast_slice(map.bytes(*start, len * size_of::<T>()))
            }
        }
    }
}

impl<T: Plain> DerefMut for Column<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        if self.is_mapped() {
            *self = Column::Owned(self.to_vec());
        }
        match self {
            Column::Owned(values) => values,
            Column::Mapped { .. } => unreachable!("copied into memory above"),
        }
    }
}

impl<T: Plain> From<Vec<T>> for Column<T> {
    fn from(values: Vec<T>) -> Self {
        Column::Owned(values)
    }
}

impl<'a, T: Plain> IntoIterator for &'a Column<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Plain> Default for Column<T> {
    fn default() -> Self {
        Column::Owned(Vec::new())
    }
}

impl<T: Plain + std::fmt::Debug> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Plain + PartialEq> PartialEq for Column<T> {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl<T: Plain + PartialEq> PartialEq<Vec<T>> for Column<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self[..] == other[..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_column_reads_the_files_values_and_copies_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("values");
        let bytes: Vec<u8> = [7u64, 8, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&file, bytes).unwrap();
        let map = Arc::new(FileMap::open(&file).unwrap());
        let mut column = Column::<u64>::mapped(map.clone(), 8, 2).unwrap();
        assert!(column.is_mapped());
        assert_eq!(column, Column::from(vec![8u64, 9]));
        assert!(Column::<u64>::mapped(map.clone(), 8, 3).is_none(), "past the end");
        assert!(Column::<u64>::mapped(map, 4, 1).is_none(), "misaligned");
        column[0] = 1;
        assert!(!column.is_mapped());
        assert_eq!(column.as_slice(), &[1, 9]);
    }
}
