//! Validation of a GGUF file in plain Rust, before llama.cpp sees it: the file exists and is
//! readable, has the GGUF magic and a supported version, its metadata parses, it names an
//! architecture, and every tensor's data lies inside the file.

use super::error::EngineError;
use super::ffi;
use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// What the GGUF header says about a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// GGUF format version.
    pub version: u32,
    /// `general.architecture` (e.g. `llama`).
    pub architecture: String,
    /// `general.name`, if present.
    pub name: Option<String>,
    /// `tokenizer.chat_template`, if present.
    pub chat_template: Option<String>,
    /// Number of tensors.
    pub n_tensors: u64,
    /// File size in bytes.
    pub file_size: u64,
    /// Total number of weights over all tensors.
    pub n_elements: u64,
    /// `<architecture>.embedding_length`: the width of the input embeddings, if present.
    pub n_embd: Option<u64>,
    /// `<architecture>.block_count`: transformer layers, if present.
    pub n_layer: Option<u64>,
    /// `general.file_type`: llama.cpp's code for the file's main weight type, if present.
    pub file_type: Option<u32>,
    /// `<architecture>.attention.head_count`, if present.
    pub n_head: Option<u64>,
    /// `<architecture>.attention.head_count_kv` (the head count when absent).
    pub n_head_kv: Option<u64>,
    /// Bytes of each layer's tensors (`blk.<i>.*`), by layer index: what offloading that
    /// layer puts on the GPU.
    pub layer_bytes: Vec<u64>,
    /// Bytes of the output tensors (`output.weight`, or `token_embd.weight` when the output
    /// is tied to it, and `output_norm.weight`): what offloading the output layer adds.
    pub output_bytes: u64,
}

impl GgufInfo {
    /// The quantization named by `general.file_type` (e.g. `Q4_1`), or `None` when the file
    /// does not say or uses a code this build does not know.
    pub fn quantization(&self) -> Option<&'static str> {
        Some(match self.file_type? {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            7 => "Q8_0",
            8 => "Q5_0",
            9 => "Q5_1",
            10 => "Q2_K",
            11 => "Q3_K_S",
            12 => "Q3_K_M",
            13 => "Q3_K_L",
            14 => "Q4_K_S",
            15 => "Q4_K_M",
            16 => "Q5_K_S",
            17 => "Q5_K_M",
            18 => "Q6_K",
            19 => "IQ2_XXS",
            20 => "IQ2_XS",
            21 => "Q2_K_S",
            22 => "IQ3_XS",
            23 => "IQ3_XXS",
            24 => "IQ1_S",
            25 => "IQ4_NL",
            26 => "IQ3_S",
            27 => "IQ3_M",
            28 => "IQ2_S",
            29 => "IQ2_M",
            30 => "IQ4_XS",
            31 => "IQ1_M",
            32 => "BF16",
            36 => "TQ1_0",
            37 => "TQ2_0",
            _ => return None,
        })
    }
}

/// A metadata value that `inspect` keeps: strings and unsigned or non-negative integers.
enum Value {
    Str(String),
    Int(u64),
    Other,
}

const MAGIC: &[u8; 4] = b"GGUF";
const ALIGNMENT_DEFAULT: u64 = 32;
/// Upper bound for one metadata string or array length; real files stay far below it.
const MAX_LEN: u64 = 1 << 30;

struct Reader<R> {
    r: R,
    path: String,
}

impl<R: Read> Reader<R> {
    fn truncated(&self, what: &str) -> EngineError {
        EngineError::Truncated {
            path: self.path.clone(),
            detail: format!("file ends inside {what}"),
        }
    }
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], EngineError> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| self.truncated(what))?;
        Ok(b)
    }
    fn u32(&mut self, what: &str) -> Result<u32, EngineError> {
        Ok(u32::from_le_bytes(self.bytes::<4>(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, EngineError> {
        Ok(u64::from_le_bytes(self.bytes::<8>(what)?))
    }
    fn len(&mut self, what: &str) -> Result<u64, EngineError> {
        let n = self.u64(what)?;
        if n > MAX_LEN {
            return Err(EngineError::BadGguf {
                path: self.path.clone(),
                detail: format!("{what}: implausible length {n}"),
            });
        }
        Ok(n)
    }
    fn string(&mut self, what: &str) -> Result<String, EngineError> {
        let n = self.len(what)? as usize;
        let mut b = vec![0u8; n];
        self.r
            .read_exact(&mut b)
            .map_err(|_| self.truncated(what))?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
    fn skip(&mut self, n: u64, what: &str) -> Result<(), EngineError> {
        let got = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|_| self.truncated(what))?;
        if got != n {
            return Err(self.truncated(what));
        }
        Ok(())
    }
    /// Reads an array that must hold distinct strings (the vocabulary: llama.cpp maps each
    /// token's text to its id and asserts, aborting the process, when two are the same).
    /// Returns its length.
    fn distinct_strings(&mut self, what: &str) -> Result<u64, EngineError> {
        let et = self.u32(what)?;
        let n = self.len(what)?;
        if et != 8 {
            return Err(EngineError::BadGguf {
                path: self.path.clone(),
                detail: format!("{what}: an array of type {et}, expected strings (8)"),
            });
        }
        let mut seen = std::collections::HashMap::new();
        for i in 0..n {
            let l = self.len(what)? as usize;
            let mut b = vec![0u8; l];
            self.r
                .read_exact(&mut b)
                .map_err(|_| self.truncated(what))?;
            if let Some(first) = seen.insert(b, i) {
                return Err(EngineError::BadGguf {
                    path: self.path.clone(),
                    detail: format!("{what}: tokens {first} and {i} have the same text"),
                });
            }
        }
        Ok(n)
    }

    /// Reads (or skips) a value of GGUF type `ty`; returns strings and integers.
    fn value(&mut self, ty: u32, what: &str) -> Result<Value, EngineError> {
        match ty {
            0 | 1 | 7 => self.skip(1, what)?,
            2 | 3 => self.skip(2, what)?,
            4 => return Ok(Value::Int(u64::from(self.u32(what)?))),
            5 => {
                let v = self.u32(what)? as i32;
                return Ok(u64::try_from(v).map_or(Value::Other, Value::Int));
            }
            6 => self.skip(4, what)?,
            10 => return Ok(Value::Int(self.u64(what)?)),
            11 => {
                let v = self.u64(what)? as i64;
                return Ok(u64::try_from(v).map_or(Value::Other, Value::Int));
            }
            12 => self.skip(8, what)?,
            8 => return Ok(Value::Str(self.string(what)?)),
            9 => {
                let et = self.u32(what)?;
                let n = self.len(what)?;
                match et {
                    0 | 1 | 7 => self.skip(n, what)?,
                    2 | 3 => self.skip(2 * n, what)?,
                    4..=6 => self.skip(4 * n, what)?,
                    10..=12 => self.skip(8 * n, what)?,
                    8 => {
                        for _ in 0..n {
                            let l = self.len(what)?;
                            self.skip(l, what)?;
                        }
                    }
                    _ => {
                        return Err(EngineError::BadGguf {
                            path: self.path.clone(),
                            detail: format!("{what}: unknown array element type {et}"),
                        })
                    }
                }
            }
            _ => {
                return Err(EngineError::BadGguf {
                    path: self.path.clone(),
                    detail: format!("{what}: unknown value type {ty}"),
                })
            }
        }
        Ok(Value::Other)
    }
}

/// Checks a model file and reads what culturetune needs from its header.
pub fn inspect(path: &Path) -> Result<GgufInfo, EngineError> {
    let p = path.display().to_string();
    let file = crate::input_file::open_nonblocking(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EngineError::NotFound { path: p.clone() }
        } else {
            EngineError::Io {
                path: p.clone(),
                source,
            }
        }
    })?;
    let meta = file.metadata().map_err(|source| EngineError::Io {
        path: p.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(EngineError::NotGguf {
            path: p,
            detail: format!(
                "it is {}; expected a regular file",
                crate::input_file::kind_of(&meta.file_type())
            ),
        });
    }
    check(BufReader::with_capacity(1 << 16, file), meta.len(), p)
}

/// Checks a GGUF image held in memory as [`inspect`] checks a file (`name` stands for its
/// path in errors). For tests and fuzzing of the validation.
pub fn inspect_bytes(bytes: &[u8], name: &str) -> Result<GgufInfo, EngineError> {
    check(
        std::io::Cursor::new(bytes),
        bytes.len() as u64,
        name.to_string(),
    )
}

/// What the metadata says that [`check`] needs.
struct Metadata {
    architecture: String,
    name: Option<String>,
    chat_template: Option<String>,
    ints: HashMap<String, u64>,
    n_vocab_tokens: Option<u64>,
    alignment: u64,
}

/// What the tensor infos say: where the data ends, the weights, each tensor's shape and bytes.
struct Tensors {
    data_end: u64,
    n_elements: u64,
    shapes: HashMap<String, [u64; 4]>,
    sizes: HashMap<String, u64>,
}

fn check<R: Read + Seek>(reader: R, file_size: u64, p: String) -> Result<GgufInfo, EngineError> {
    let mut r = Reader {
        r: reader,
        path: p.clone(),
    };
    let (version, n_tensors, n_kv) = r.header()?;
    let m = r.metadata(n_kv)?;
    let t = r.tensors(n_tensors)?;
    let header_end = r.r.stream_position().map_err(|source| EngineError::Io {
        path: p.clone(),
        source,
    })?;
    let alignment = m.alignment.max(1);
    let data_start = header_end.div_ceil(alignment) * alignment;
    let needed = data_start.saturating_add(t.data_end);
    if needed > file_size {
        return Err(EngineError::Truncated {
            path: p,
            detail: format!("tensor data needs {needed} bytes but the file has {file_size} (incomplete download?)"),
        });
    }
    let (arch, ints) = (&m.architecture, &m.ints);
    check_hyperparameters(&p, arch, ints, m.n_vocab_tokens, &t.shapes)?;
    let (layer_bytes, output_bytes) = offload_sizes(&t.sizes);
    let int = |key: String| ints.get(&key).copied();
    let n_head = int(format!("{arch}.attention.head_count"));
    Ok(GgufInfo {
        n_head,
        n_head_kv: int(format!("{arch}.attention.head_count_kv")).or(n_head),
        layer_bytes,
        output_bytes,
        version,
        n_tensors,
        file_size,
        n_elements: t.n_elements,
        n_embd: int(format!("{arch}.embedding_length")),
        n_layer: int(format!("{arch}.block_count")),
        file_type: int("general.file_type".into()).and_then(|v| u32::try_from(v).ok()),
        name: m.name,
        chat_template: m.chat_template,
        architecture: m.architecture,
    })
}

impl<R: Read + Seek> Reader<R> {
    /// The magic, the version and the counts of tensors and metadata keys.
    fn header(&mut self) -> Result<(u32, u64, u64), EngineError> {
        let p = self.path.clone();
        let mut magic = [0u8; 4];
        let n = (&mut self.r)
            .take(4)
            .read(&mut magic)
            .map_err(|source| EngineError::Io {
                path: p.clone(),
                source,
            })?;
        if n < 4 || &magic != MAGIC {
            return Err(EngineError::NotGguf {
                path: p,
                detail: format!(
                    "it starts with {:?}, not the GGUF magic \"GGUF\"",
                    String::from_utf8_lossy(&magic[..n])
                ),
            });
        }
        let version = self.u32("the header")?;
        if !(2..=3).contains(&version) {
            return Err(EngineError::BadGguf {
                path: p,
                detail: format!("GGUF version {version} is not supported (expected 2 or 3)"),
            });
        }
        let n_tensors = self.u64("the header")?;
        let n_kv = self.u64("the header")?;
        if n_tensors > MAX_LEN || n_kv > MAX_LEN {
            return Err(EngineError::BadGguf {
                path: p,
                detail: format!("implausible counts: {n_tensors} tensors, {n_kv} metadata keys"),
            });
        }
        Ok((version, n_tensors, n_kv))
    }

    /// The `n_kv` metadata entries: the strings and integers [`check`] reads.
    fn metadata(&mut self, n_kv: u64) -> Result<Metadata, EngineError> {
        let (mut architecture, mut name, mut chat_template) = (None, None, None);
        let mut ints = HashMap::new();
        let mut n_vocab_tokens = None;
        let mut alignment = ALIGNMENT_DEFAULT;
        for i in 0..n_kv {
            let key = self.string(&format!("metadata key {i}"))?;
            let ty = self.u32(&format!("metadata {key}"))?;
            if key == "general.alignment" && ty == 4 {
                alignment = u64::from(self.u32("general.alignment")?);
                continue;
            }
            if key == "tokenizer.ggml.tokens" && ty == 9 {
                n_vocab_tokens = Some(self.distinct_strings(&key)?);
                continue;
            }
            match (key.as_str(), self.value(ty, &format!("metadata {key}"))?) {
                ("general.architecture", Value::Str(v)) => architecture = Some(v),
                ("general.name", Value::Str(v)) => name = Some(v),
                ("tokenizer.chat_template", Value::Str(v)) => chat_template = Some(v),
                (_, Value::Int(v)) => {
                    ints.insert(key, v);
                }
                _ => {}
            }
        }
        let architecture = architecture
            .filter(|a: &String| !a.is_empty())
            .ok_or_else(|| EngineError::BadGguf {
                path: self.path.clone(),
                detail: "no general.architecture in the metadata".into(),
            })?;
        Ok(Metadata {
            architecture,
            name,
            chat_template,
            ints,
            n_vocab_tokens,
            alignment,
        })
    }

    /// The `n_tensors` tensor infos, each tensor's data checked to have a known size.
    fn tensors(&mut self, n_tensors: u64) -> Result<Tensors, EngineError> {
        let mut t = Tensors {
            data_end: 0,
            n_elements: 0,
            shapes: HashMap::new(),
            sizes: HashMap::new(),
        };
        for i in 0..n_tensors {
            let tname = self.string(&format!("tensor info {i}"))?;
            let n_dims = self.u32(&format!("tensor {tname}"))?;
            if n_dims == 0 || n_dims > 4 {
                return Err(EngineError::BadGguf {
                    path: self.path.clone(),
                    detail: format!("tensor {tname}: {n_dims} dimensions (expected 1..4)"),
                });
            }
            let mut ne = [1u64; 4];
            for d in ne.iter_mut().take(n_dims as usize) {
                *d = self.u64(&format!("tensor {tname}"))?;
            }
            let ty = self.u32(&format!("tensor {tname}"))?;
            let offset = self.u64(&format!("tensor {tname}"))?;
            let bytes = ffi::row_size(ty, ne[0])
                .and_then(|row| {
                    (row as u64).checked_mul(ne[1].checked_mul(ne[2])?.checked_mul(ne[3])?)
                })
                .ok_or_else(|| EngineError::BadGguf {
                    path: self.path.clone(),
                    detail: format!("tensor {tname}: unknown type {ty} or bad shape {ne:?}"),
                })?;
            t.data_end = t.data_end.max(offset.saturating_add(bytes));
            t.sizes.insert(tname.clone(), bytes);
            t.shapes.insert(tname, ne);
            t.n_elements = t.n_elements.saturating_add(ne.iter().product());
        }
        Ok(t)
    }
}

/// Bytes per layer (`blk.<i>.*`, by index) and of the output layer, from tensor sizes.
fn offload_sizes(sizes: &std::collections::HashMap<String, u64>) -> (Vec<u64>, u64) {
    let mut layers = Vec::new();
    for (name, &bytes) in sizes {
        let Some(i) = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next()?.parse::<usize>().ok())
        else {
            continue;
        };
        // check_hyperparameters bounds the highest index by block_count (at most 512).
        if i < MAX_LAYERS as usize {
            if layers.len() <= i {
                layers.resize(i + 1, 0);
            }
            layers[i] += bytes;
        }
    }
    let output = sizes
        .get("output.weight")
        .or_else(|| sizes.get("token_embd.weight"))
        .copied()
        .unwrap_or(0)
        + sizes.get("output_norm.weight").copied().unwrap_or(0);
    (layers, output)
}

/// llama.cpp's own limit on layers (LLAMA_MAX_LAYERS); it asserts on more.
const MAX_LAYERS: u64 = 512;

/// The architecture's hyper-parameters within llama.cpp's limits and matching the tensors
/// present: llama.cpp asserts (aborts the process) on several of them instead of failing.
fn check_hyperparameters(
    path: &str,
    arch: &str,
    ints: &std::collections::HashMap<String, u64>,
    n_vocab_tokens: Option<u64>,
    shapes: &std::collections::HashMap<String, [u64; 4]>,
) -> Result<(), EngineError> {
    let bad = |detail: String| EngineError::BadGguf {
        path: path.to_string(),
        detail,
    };
    let key = |k: &str| format!("{arch}.{k}");
    let get = |k: &str| ints.get(&key(k)).copied();
    if let Some(n) = get("block_count") {
        if n == 0 || n > MAX_LAYERS {
            return Err(bad(format!(
                "{} is {n}; expected 1..={MAX_LAYERS}",
                key("block_count")
            )));
        }
        // The layers' tensors are named blk.<i>.*: the highest index must be the last layer.
        let highest = shapes
            .keys()
            .filter_map(|t| {
                t.strip_prefix("blk.")?
                    .split('.')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        if let Some(h) = highest {
            if h + 1 != n {
                return Err(bad(format!(
                    "{} is {n} but the file holds tensors of {} layers (blk.0 .. blk.{h})",
                    key("block_count"),
                    h + 1
                )));
            }
        }
    }
    for k in ["embedding_length", "context_length", "attention.head_count"] {
        if get(k) == Some(0) {
            return Err(bad(format!("{} is 0; expected at least 1", key(k))));
        }
    }
    if let (Some(h), Some(kv)) = (get("attention.head_count"), get("attention.head_count_kv")) {
        if kv == 0 || kv > h || h % kv != 0 {
            return Err(bad(format!(
                "{} is {kv} for {h} attention heads; expected a divisor of {h}",
                key("attention.head_count_kv")
            )));
        }
    }
    if let Some(e) = shapes.get("token_embd.weight") {
        if let Some(n) = get("embedding_length") {
            if e[0] != n {
                return Err(bad(format!(
                    "{} is {n} but token_embd.weight rows are {} wide",
                    key("embedding_length"),
                    e[0]
                )));
            }
        }
        if let Some(v) = n_vocab_tokens {
            if e[1] != v {
                return Err(bad(format!(
                    "tokenizer.ggml.tokens lists {v} tokens but token_embd.weight has {} rows",
                    e[1]
                )));
            }
        }
    }
    Ok(())
}
