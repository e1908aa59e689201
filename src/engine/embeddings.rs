//! The model's input embedding matrix (`token_embd.weight`), read from the GGUF file and
//! dequantized row by row, so that a soft prompt can start from the rows of a text.

use super::error::EngineError;
use super::ffi::{self, TensorLocation};
use super::model::Model;
use std::io::{Read, Seek, SeekFrom};

/// The raw `token_embd.weight` tensor, dequantized on demand.
pub struct EmbeddingTable {
    loc: TensorLocation,
    raw: Vec<u8>,
    scale: f32,
}

impl EmbeddingTable {
    /// Reads the table of a loaded model from its file.
    pub fn load(model: &Model) -> Result<EmbeddingTable, EngineError> {
        let (loc, scale) = locate(model)?;
        let mut raw = vec![0u8; loc.row_bytes * loc.ne1];
        read_at(model, [loc.offset], &mut raw, |_| Ok(()))?;
        Ok(EmbeddingTable { loc, raw, scale })
    }

    /// Embedding width.
    pub fn n_embd(&self) -> usize {
        self.loc.ne0
    }

    /// The storage type of the table (e.g. `q8_0`).
    pub fn type_name(&self) -> String {
        ffi::ggml_type_name(self.loc.ggml_type)
    }

    /// The input row of a token, exactly as llama.cpp would feed it for that token.
    pub fn row(&self, token: i32) -> Result<Vec<f32>, EngineError> {
        let t = row_index(&self.loc, token)?;
        let bytes = &self.raw[t * self.loc.row_bytes..(t + 1) * self.loc.row_bytes];
        input_row(&self.loc, self.scale, bytes)
    }

    /// The rows of several tokens, flattened row-major (`tokens.len() * n_embd` values).
    pub fn rows(&self, tokens: &[i32]) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::with_capacity(tokens.len() * self.n_embd());
        for &t in tokens {
            out.extend(self.row(t)?);
        }
        Ok(out)
    }

    /// Standard deviation of all entries of the (scaled) matrix; used to scale soft-prompt
    /// perturbations to the embeddings' own spread.
    pub fn std(&self) -> Result<f64, EngineError> {
        let (mut n, mut mean, mut m2) = (0f64, 0f64, 0f64);
        for t in 0..self.loc.ne1 {
            for v in self.row(t as i32)? {
                n += 1.0;
                let d = f64::from(v) - mean;
                mean += d / n;
                m2 += d * (f64::from(v) - mean);
            }
        }
        Ok((m2 / n.max(1.0)).sqrt())
    }
}

/// Where a loaded model's `token_embd.weight` lies in its file, checked to be n_embd x n_vocab
/// of a type this build dequantizes, and the scale llama.cpp applies to token rows only.
fn locate(model: &Model) -> Result<(TensorLocation, f32), EngineError> {
    let info = model.info();
    let path = info.path.display().to_string();
    let loc = ffi::locate_tensor(&info.path, "token_embd.weight").ok_or_else(|| {
        EngineError::Unsupported {
            path: path.clone(),
            detail: "no readable token_embd.weight tensor".into(),
        }
    })?;
    if loc.ne0 != info.n_embd || loc.ne1 != info.n_vocab {
        return Err(EngineError::Unsupported {
            path,
            detail: format!(
                "token_embd.weight is {}x{}, expected {}x{}",
                loc.ne0, loc.ne1, info.n_embd, info.n_vocab
            ),
        });
    }
    // Probe a type so an unsupported one fails here, not in the middle of a search.
    if ffi::dequantize_row(loc.ggml_type, &vec![0u8; loc.row_bytes], loc.ne0).is_none() {
        return Err(EngineError::Unsupported {
            path,
            detail: format!(
                "cannot dequantize token_embd.weight of type {}",
                ffi::ggml_type_name(loc.ggml_type)
            ),
        });
    }
    Ok((loc, super::token_row_scale(&info.architecture, info.n_embd)))
}

/// The table row of `token`, or an error for an id outside the vocabulary.
fn row_index(loc: &TensorLocation, token: i32) -> Result<usize, EngineError> {
    usize::try_from(token)
        .ok()
        .filter(|&t| t < loc.ne1)
        .ok_or_else(|| {
            EngineError::Prompt(format!(
                "token id {token} outside the vocabulary (0..{})",
                loc.ne1
            ))
        })
}

/// One stored row dequantized and scaled as llama.cpp feeds it.
fn input_row(loc: &TensorLocation, scale: f32, bytes: &[u8]) -> Result<Vec<f32>, EngineError> {
    let mut row = ffi::dequantize_row(loc.ggml_type, bytes, loc.ne0)
        .ok_or_else(|| EngineError::Prompt("dequantization failed".into()))?;
    if scale != 1.0 {
        row.iter_mut().for_each(|v| *v *= scale);
    }
    Ok(row)
}

/// Reads `buf.len()` bytes of the model's file at each offset in turn, one open of the file;
/// `each` gets the bytes read at every offset.
fn read_at(
    model: &Model,
    offsets: impl IntoIterator<Item = u64>,
    buf: &mut [u8],
    mut each: impl FnMut(&[u8]) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let info = model.info();
    let io = |source| EngineError::Io {
        path: info.path.display().to_string(),
        source,
    };
    let mut f = crate::input_file::open_regular(&info.path).map_err(io)?;
    for offset in offsets {
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(buf))
            .map_err(io)?;
        each(buf)?;
    }
    Ok(())
}

/// The input rows of a few tokens, exactly as llama.cpp would feed them for those tokens,
/// read from the model's file row by row (without loading the whole table), flattened.
pub(super) fn token_rows(model: &Model, tokens: &[i32]) -> Result<Vec<f32>, EngineError> {
    let (loc, scale) = locate(model)?;
    let offsets = tokens
        .iter()
        .map(|&t| row_index(&loc, t).map(|t| loc.offset + (t * loc.row_bytes) as u64))
        .collect::<Result<Vec<u64>, EngineError>>()?;
    let mut out = Vec::with_capacity(tokens.len() * loc.ne0);
    let mut raw = vec![0u8; loc.row_bytes];
    read_at(model, offsets, &mut raw, |bytes| {
        out.extend(input_row(&loc, scale, bytes)?);
        Ok(())
    })?;
    Ok(out)
}
