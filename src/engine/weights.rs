//! Optional conversion of a model's weights to another storage type, cached beside the model.
//! On CPU, the weight type decides much of the speed (see `culturetune bench`).

use super::error::EngineError;
use super::{ffi, gguf};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Storage type of the weights used for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum WeightType {
    /// F16 when that copy is at most 1 GiB (small models: about twice as fast on CPU as
    /// 4-bit weights, measured with `culturetune bench`), else the file as given.
    Auto,
    /// The file as given.
    Original,
    /// 8-bit blocks (Q8_0).
    #[cfg_attr(feature = "cli", value(name = "q8_0"))]
    Q8_0,
    /// 16-bit floats.
    F16,
    /// 32-bit floats (exact dequantization of the original).
    F32,
}

impl WeightType {
    fn ftype(self) -> Option<(u32, &'static str)> {
        match self {
            WeightType::Original | WeightType::Auto => None,
            WeightType::Q8_0 => Some((7, "q8_0")),
            WeightType::F16 => Some((1, "f16")),
            WeightType::F32 => Some((0, "f32")),
        }
    }
}

/// Largest F16 copy `auto` makes.
const AUTO_F16_MAX_BYTES: u64 = 1 << 30;

/// The file to load for `weights`: the model itself, or a converted copy in a `cache/` folder
/// beside it, created on first use (written under a temporary name, then renamed).
pub fn converted_path(
    model: &Path,
    weights: WeightType,
    threads: i32,
) -> Result<PathBuf, EngineError> {
    let info = gguf::inspect(model)?;
    let weights = match weights {
        WeightType::Auto if info.n_elements.saturating_mul(2) <= AUTO_F16_MAX_BYTES => {
            WeightType::F16
        }
        other => other,
    };
    let Some((ftype, suffix)) = weights.ftype() else {
        return Ok(model.to_path_buf());
    };
    let dir = model.parent().unwrap_or(Path::new(".")).join("cache");
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = dir.join(format!("{stem}.{}-{suffix}.gguf", info.file_size));
    if gguf::inspect(&out).is_ok() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).map_err(|source| EngineError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    // A short temporary name: the model's own name may already be near the 255-byte limit.
    let tmp = crate::atomic_file::temp_sibling(&dir, "convert");
    ffi::ensure_backend();
    if !ffi::convert_model(model, &tmp, ftype, threads) {
        let _ = std::fs::remove_file(&tmp);
        return Err(EngineError::LoadFailed {
            path: model.display().to_string(),
        });
    }
    std::fs::rename(&tmp, &out).map_err(|source| EngineError::Io {
        path: out.display().to_string(),
        source,
    })?;
    Ok(out)
}
