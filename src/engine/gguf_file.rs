//! A GGUF file read whole, metadata and tensor infos, so that a new file can be written from
//! it: every key and tensor copied unchanged except those the caller edits. Pure Rust, no
//! llama.cpp: the file is first validated by [`super::gguf::inspect`] (the same checks any
//! model file passes before llama.cpp sees it), and a written file is checked so again.
//!
//! Layout (GGUF v2/v3, little-endian): magic, version, tensor count, key count; the keys
//! (name, type, value); the tensor infos (name, dimensions, type, offset from the start of the
//! data); padding to `general.alignment` (32 by default); the data, each tensor padded to the
//! alignment.

use super::error::EngineError;
use super::ffi;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One metadata value, kept exactly as stored (strings as bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8: the bytes of a string (UTF-8 by the format's rule, not checked on copy).
    Str(Vec<u8>),
    /// Type 9: the element type and the elements.
    Array(u32, Vec<MetaValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

/// Element type of arrays of `i32` (token types).
pub const TYPE_I32: u32 = 5;
/// Element type of arrays of `f32` (token scores).
pub const TYPE_F32: u32 = 6;
/// Element type of arrays of strings (tokens, merges).
pub const TYPE_STR: u32 = 8;

impl MetaValue {
    /// A string value.
    pub fn string(s: &str) -> MetaValue {
        MetaValue::Str(s.as_bytes().to_vec())
    }

    fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::Str(_) => 8,
            MetaValue::Array(..) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    /// The value as text, when it is a UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The elements, when the value is an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(_, v) => Some(v),
            _ => None,
        }
    }

    fn write_to(&self, w: &mut dyn Write) -> std::io::Result<()> {
        match self {
            MetaValue::U8(v) => w.write_all(&[*v]),
            MetaValue::I8(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::U16(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::I16(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::U32(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::I32(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::F32(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::Bool(v) => w.write_all(&[u8::from(*v)]),
            MetaValue::Str(b) => write_bytes(w, b),
            MetaValue::Array(et, items) => {
                w.write_all(&et.to_le_bytes())?;
                w.write_all(&(items.len() as u64).to_le_bytes())?;
                for item in items {
                    if item.type_id() != *et {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!(
                                "an array of type {et} holds a value of type {}",
                                item.type_id()
                            ),
                        ));
                    }
                    item.write_to(w)?;
                }
                Ok(())
            }
            MetaValue::U64(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::I64(v) => w.write_all(&v.to_le_bytes()),
            MetaValue::F64(v) => w.write_all(&v.to_le_bytes()),
        }
    }
}

fn write_bytes(w: &mut dyn Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u64).to_le_bytes())?;
    w.write_all(b)
}

/// One tensor's info.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Its name (`token_embd.weight`).
    pub name: String,
    /// Its dimensions, innermost first (`[n_embd, n_vocab]`).
    pub ne: Vec<u64>,
    /// Its ggml type.
    pub ggml_type: u32,
    /// Offset of its data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Bytes of its data; `None` for a type or shape ggml does not know.
    pub fn bytes(&self) -> Option<u64> {
        let row = ffi::row_size(self.ggml_type, *self.ne.first()?)? as u64;
        self.ne[1..]
            .iter()
            .try_fold(row, |acc, &n| acc.checked_mul(n))
    }

    /// Bytes of one row (`ne[0]` values).
    pub fn row_bytes(&self) -> Option<usize> {
        ffi::row_size(self.ggml_type, *self.ne.first()?)
    }
}

/// A GGUF file's metadata and tensor infos, with the path its data is read from.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// The file.
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Every key, in file order.
    pub kv: Vec<(String, MetaValue)>,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts in the file.
    pub data_start: u64,
}

const ALIGNMENT_DEFAULT: u64 = 32;
/// Largest string or array length read (as `gguf::inspect` bounds them).
const MAX_LEN: u64 = 1 << 30;

impl GgufFile {
    /// Reads a model file's metadata and tensor infos, after [`super::gguf::inspect`] has
    /// validated it.
    pub fn read(path: &Path) -> Result<GgufFile, EngineError> {
        super::gguf::inspect(path)?;
        let p = path.display().to_string();
        let f = crate::input_file::open_regular(path).map_err(|source| EngineError::Io {
            path: p.clone(),
            source,
        })?;
        let mut r = Parser {
            r: BufReader::with_capacity(1 << 20, f),
            path: p.clone(),
        };
        r.bytes(4)?; // the magic, checked by inspect
        let version = r.u32()?;
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        let mut kv = Vec::new();
        for _ in 0..n_kv {
            let key = String::from_utf8_lossy(&r.string()?).into_owned();
            let ty = r.u32()?;
            kv.push((key, r.value(ty)?));
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = String::from_utf8_lossy(&r.string()?).into_owned();
            let n_dims = r.u32()?;
            let ne = (0..n_dims)
                .map(|_| r.u64())
                .collect::<Result<Vec<_>, _>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo {
                name,
                ne,
                ggml_type,
                offset,
            });
        }
        let header_end = r.r.stream_position().map_err(|source| EngineError::Io {
            path: p.clone(),
            source,
        })?;
        let mut file = GgufFile {
            path: path.to_path_buf(),
            version,
            kv,
            tensors,
            data_start: 0,
        };
        file.data_start = header_end.next_multiple_of(file.alignment());
        Ok(file)
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets a key: replaces its value in place, or appends it.
    pub fn set(&mut self, key: &str, value: MetaValue) {
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.kv.push((key.to_string(), value)),
        }
    }

    /// Data alignment (`general.alignment`, 32 when absent).
    pub fn alignment(&self) -> u64 {
        self.get("general.alignment")
            .and_then(MetaValue::as_u64)
            .filter(|&a| a > 0)
            .unwrap_or(ALIGNMENT_DEFAULT)
    }

    /// A tensor's info by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Copies a tensor's data, as stored in this file, to `w`.
    pub fn copy_tensor(&self, t: &TensorInfo, w: &mut dyn Write) -> std::io::Result<()> {
        let n = t.bytes().ok_or_else(|| bad_shape(t))?;
        let mut f = crate::input_file::open_regular(&self.path)?;
        f.seek(SeekFrom::Start(self.data_start + t.offset))?;
        let copied = std::io::copy(&mut f.take(n), w)?;
        if copied != n {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the file ends inside tensor {}",
                    self.path.display(),
                    t.name
                ),
            ));
        }
        Ok(())
    }

    /// Reads a tensor's data, as stored in this file.
    pub fn read_tensor(&self, name: &str) -> Result<Vec<u8>, EngineError> {
        let t = self.tensor(name).ok_or_else(|| EngineError::BadGguf {
            path: self.path.display().to_string(),
            detail: format!("no tensor {name}"),
        })?;
        let mut out = Vec::with_capacity(t.bytes().unwrap_or(0) as usize);
        self.copy_tensor(t, &mut out)
            .map_err(|source| EngineError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        Ok(out)
    }

    /// Reads `len` bytes of a tensor's data from byte `from` of it.
    pub fn read_tensor_part(
        &self,
        t: &TensorInfo,
        from: u64,
        len: usize,
    ) -> Result<Vec<u8>, EngineError> {
        let io = |source| EngineError::Io {
            path: self.path.display().to_string(),
            source,
        };
        if from.saturating_add(len as u64) > t.bytes().unwrap_or(0) {
            return Err(EngineError::BadGguf {
                path: self.path.display().to_string(),
                detail: format!(
                    "tensor {} holds fewer than {} bytes",
                    t.name,
                    from + len as u64
                ),
            });
        }
        let mut f = crate::input_file::open_regular(&self.path).map_err(io)?;
        let mut out = vec![0u8; len];
        f.seek(SeekFrom::Start(self.data_start + t.offset + from))
            .and_then(|_| f.read_exact(&mut out))
            .map_err(io)?;
        Ok(out)
    }

    /// Writes a GGUF with this metadata and these tensors to `w`: the offsets are laid out
    /// anew in the order of `tensors`, and `data(tensor, w)` writes each tensor's data, which
    /// must be exactly [`TensorInfo::bytes`] long.
    pub fn write(
        &self,
        w: &mut dyn Write,
        data: &mut dyn FnMut(&TensorInfo, &mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let align = self.alignment();
        let mut tensors = self.tensors.clone();
        let mut offset = 0u64;
        for t in &mut tensors {
            t.offset = offset;
            offset += t
                .bytes()
                .ok_or_else(|| bad_shape(t))?
                .next_multiple_of(align);
        }
        let mut header = Vec::new();
        header.extend_from_slice(b"GGUF");
        header.extend_from_slice(&self.version.max(2).to_le_bytes());
        header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            write_bytes(&mut header, k.as_bytes())?;
            header.extend_from_slice(&v.type_id().to_le_bytes());
            v.write_to(&mut header)?;
        }
        for t in &tensors {
            write_bytes(&mut header, t.name.as_bytes())?;
            header.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
            for n in &t.ne {
                header.extend_from_slice(&n.to_le_bytes());
            }
            header.extend_from_slice(&t.ggml_type.to_le_bytes());
            header.extend_from_slice(&t.offset.to_le_bytes());
        }
        pad(&mut header, align);
        w.write_all(&header)?;
        for t in &tensors {
            let n = t.bytes().ok_or_else(|| bad_shape(t))?;
            let mut counted = Counted { w, n: 0 };
            data(t, &mut counted)?;
            if counted.n != n {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "tensor {}: {} bytes written, expected {n}",
                        t.name, counted.n
                    ),
                ));
            }
            let fill = n.next_multiple_of(align) - n;
            w.write_all(&vec![0u8; fill as usize])?;
        }
        Ok(())
    }

    /// Writes this metadata with every tensor's data copied unchanged from `source` (which
    /// must hold each tensor by the same name and size): a file with edited keys only.
    pub fn write_copying(&self, source: &GgufFile, w: &mut dyn Write) -> std::io::Result<()> {
        self.write(w, &mut |t, w| {
            let from = source.tensor(&t.name).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}: no tensor {}", source.path.display(), t.name),
                )
            })?;
            source.copy_tensor(from, w)
        })
    }
}

fn pad(buf: &mut Vec<u8>, align: u64) {
    let len = (buf.len() as u64).next_multiple_of(align);
    buf.resize(len as usize, 0);
}

fn bad_shape(t: &TensorInfo) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "tensor {}: type {} with shape {:?} has no known size",
            t.name, t.ggml_type, t.ne
        ),
    )
}

/// A writer that counts what passes through it.
struct Counted<'a> {
    w: &'a mut dyn Write,
    n: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

struct Parser<R> {
    r: R,
    path: String,
}

impl<R: Read> Parser<R> {
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, EngineError> {
        if n > MAX_LEN {
            return Err(EngineError::BadGguf {
                path: self.path.clone(),
                detail: format!("implausible length {n}"),
            });
        }
        let mut b = vec![0u8; n as usize];
        self.r
            .read_exact(&mut b)
            .map_err(|_| EngineError::Truncated {
                path: self.path.clone(),
                detail: "file ends inside the metadata".into(),
            })?;
        Ok(b)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let b = self.bytes(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&b);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, EngineError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, EngineError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<Vec<u8>, EngineError> {
        let n = self.u64()?;
        self.bytes(n)
    }
    fn value(&mut self, ty: u32) -> Result<MetaValue, EngineError> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>()?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array()?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array()?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array()?)),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array()?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array()?)),
            7 => MetaValue::Bool(self.array::<1>()?[0] != 0),
            8 => MetaValue::Str(self.string()?),
            9 => {
                let et = self.u32()?;
                let n = self.u64()?;
                if n > MAX_LEN {
                    return Err(EngineError::BadGguf {
                        path: self.path.clone(),
                        detail: format!("an array of implausible length {n}"),
                    });
                }
                let items = (0..n)
                    .map(|_| self.value(et))
                    .collect::<Result<Vec<_>, _>>()?;
                MetaValue::Array(et, items)
            }
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array()?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array()?)),
            _ => {
                return Err(EngineError::BadGguf {
                    path: self.path.clone(),
                    detail: format!("unknown value type {ty}"),
                })
            }
        })
    }
}

/// The values of `n_rows` rows of a tensor's data (`bytes`, rows of `t.ne[0]` values of
/// `t`'s type) dequantized to f32 as llama.cpp reads them, flattened; `None` for a type
/// this build cannot dequantize.
pub fn dequantize_rows(t: &TensorInfo, bytes: &[u8]) -> Option<Vec<f32>> {
    let row = t.row_bytes()?;
    let ne0 = *t.ne.first()? as usize;
    if row == 0 || bytes.len() % row != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / row * ne0);
    for chunk in bytes.chunks_exact(row) {
        out.extend(ffi::dequantize_row(t.ggml_type, chunk, ne0)?);
    }
    Some(out)
}

/// ggml's type id of f32.
pub const GGML_F32: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_write_to() {
        let v = MetaValue::Array(
            TYPE_STR,
            vec![MetaValue::string("a"), MetaValue::string("<|ct_0|>")],
        );
        let mut buf = Vec::new();
        v.write_to(&mut buf).unwrap();
        let mut p = Parser {
            r: std::io::Cursor::new(buf),
            path: "mem".into(),
        };
        assert_eq!(p.value(9).unwrap(), v);
        let bad = MetaValue::Array(TYPE_I32, vec![MetaValue::U8(1)]);
        assert!(bad.write_to(&mut Vec::new()).is_err());
    }
}
