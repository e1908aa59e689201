//! The thin layer over llama.cpp's C API (through `llama-cpp-sys-2`). Every `unsafe` block of
//! culturetune lives in this file; everything it exports is safe to call.
//!
//! Rules this layer enforces so that llama.cpp never aborts the process: the backend is
//! initialised once; batch sizes are checked against `n_batch` before `llama_decode`; token ids
//! and embedding widths are checked against the model; every pointer llama.cpp returns is
//! checked for NULL.

// The one module allowed `unsafe` (the workspace denies it elsewhere); clippy's
// `undocumented_unsafe_blocks` makes every block here carry its `// SAFETY:` reasoning.
#![allow(unsafe_code)]

use llama_cpp_sys_2 as sys;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static INIT: Once = Once::new();
static VERBOSE: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn log_callback(
    _level: sys::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if VERBOSE.load(Ordering::Relaxed) && !text.is_null() {
        // SAFETY: llama.cpp passes a NUL-terminated string that lives for the call.
        let s = unsafe { CStr::from_ptr(text) };
        eprint!("{}", s.to_string_lossy());
    }
}

/// Initialises llama.cpp once per process and sets whether its log reaches stderr.
pub fn init_backend(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    INIT.call_once(|| {
        // SAFETY: llama_log_set stores a plain function pointer (valid for the whole process)
        // and is called before any other llama.cpp function, as its docs require for silence;
        // llama_backend_init is called exactly once thanks to `Once`.
        unsafe {
            sys::llama_log_set(Some(log_callback), std::ptr::null_mut());
            sys::llama_backend_init();
        }
    });
}

/// Initialises llama.cpp if needed, leaving the log setting as it is.
pub fn ensure_backend() {
    init_backend(VERBOSE.load(Ordering::Relaxed));
}

/// Whether this build has a GPU backend that can take layers.
pub fn supports_gpu_offload() -> bool {
    // SAFETY: a pure query with no arguments.
    unsafe { sys::llama_supports_gpu_offload() }
}

/// One compute device as ggml's backend registry reports it.
pub struct RawDevice {
    /// Device name (`CPU`, `CUDA0`, `Vulkan0`, ...).
    pub name: String,
    /// Description (the GPU's or CPU's model name).
    pub description: String,
    /// The backend that provides it (`CPU`, `CUDA`, `Vulkan`, `Metal`, ...).
    pub backend: String,
    /// ggml's device type: 0 CPU, 1 GPU, 2 integrated GPU, 3 accelerator.
    pub kind: u32,
    /// Free memory in bytes, as the driver reports it now.
    pub free: u64,
    /// Total memory in bytes.
    pub total: u64,
}

fn owned(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: checked non-NULL; ggml's device and registry names are NUL-terminated strings
    // that live as long as the registry (the whole process).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Every device llama.cpp can run on, in ggml's registry order.
pub fn devices() -> Vec<RawDevice> {
    ensure_backend();
    // SAFETY: a pure query of the static registry, after llama_backend_init.
    let n = unsafe { sys::ggml_backend_dev_count() };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: i < ggml_backend_dev_count(); the registry returns a device pointer that
        // stays valid for the process, or NULL, which we skip.
        let dev = unsafe { sys::ggml_backend_dev_get(i) };
        if dev.is_null() {
            continue;
        }
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: dev is a valid device; the two out-pointers point at live locals.
        unsafe { sys::ggml_backend_dev_memory(dev, &mut free, &mut total) };
        // SAFETY: dev is valid; these return static strings, a plain enum and a registry
        // pointer (checked for NULL before its name is read).
        let (name, description, kind, reg) = unsafe {
            (
                sys::ggml_backend_dev_name(dev),
                sys::ggml_backend_dev_description(dev),
                sys::ggml_backend_dev_type(dev),
                sys::ggml_backend_dev_backend_reg(dev),
            )
        };
        let backend = if reg.is_null() {
            String::new()
        } else {
            // SAFETY: reg is a valid, non-NULL registry entry.
            owned(unsafe { sys::ggml_backend_reg_name(reg) })
        };
        out.push(RawDevice {
            name: owned(name),
            description: owned(description),
            backend,
            // The C enum's Rust type is platform-dependent (u32 here, i32 on MSVC).
            #[allow(clippy::unnecessary_cast)]
            kind: kind as u32,
            free: free as u64,
            total: total as u64,
        });
    }
    out
}

/// llama.cpp's description of the CPU features it was built with.
pub fn system_info() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string (or NULL).
    let p = unsafe { sys::llama_print_system_info() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: checked non-NULL above; the string is static.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn path_cstring(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).ok()
}

/// Renders chat messages `(role, content)` with a template (a template text, or the name of
/// one of llama.cpp's built-in templates); `None` if llama.cpp does not recognise the template
/// or a string contains NUL. Needs no model: llama.cpp matches the template text itself.
pub fn apply_chat_template(
    template: &str,
    messages: &[(&str, &str)],
    add_assistant: bool,
) -> Option<String> {
    let tmpl = CString::new(template).ok()?;
    let owned: Vec<(CString, CString)> = messages
        .iter()
        .map(|(r, c)| Some((CString::new(*r).ok()?, CString::new(*c).ok()?)))
        .collect::<Option<_>>()?;
    let msgs: Vec<sys::llama_chat_message> = owned
        .iter()
        .map(|(r, c)| sys::llama_chat_message {
            role: r.as_ptr(),
            content: c.as_ptr(),
        })
        .collect();
    let mut len = 2 * messages
        .iter()
        .map(|(r, c)| r.len() + c.len())
        .sum::<usize>()
        + 256;
    loop {
        let mut buf = vec![0u8; len];
        // SAFETY: all strings are NUL-terminated and outlive the call; buf is writable for
        // `len` bytes; the return value is the full length needed.
        let n = unsafe {
            sys::llama_chat_apply_template(
                tmpl.as_ptr(),
                msgs.as_ptr(),
                msgs.len(),
                add_assistant,
                buf.as_mut_ptr().cast(),
                len as i32,
            )
        };
        if n < 0 {
            return None;
        }
        if (n as usize) <= len {
            buf.truncate(n as usize);
            return String::from_utf8(buf).ok();
        }
        len = n as usize;
    }
}

/// Whether llama.cpp can render chats with `template` (a template text or a built-in name):
/// a system and a user message rendered as a test.
pub fn chat_template_known(template: &str) -> bool {
    apply_chat_template(template, &[("system", "s"), ("user", "u")], true).is_some()
}

/// The names of llama.cpp's built-in chat templates (`chatml`, `llama3`, `gemma`, ...).
pub fn builtin_chat_templates() -> Vec<String> {
    // SAFETY: with a null output and length 0 llama.cpp writes nothing and returns the count.
    let n = unsafe { sys::llama_chat_builtin_templates(std::ptr::null_mut(), 0) };
    let mut names: Vec<*const std::os::raw::c_char> = vec![std::ptr::null(); n.max(0) as usize];
    // SAFETY: `names` is writable for its length; llama.cpp fills it with pointers to static
    // NUL-terminated strings and returns the count.
    let got = unsafe { sys::llama_chat_builtin_templates(names.as_mut_ptr(), names.len()) };
    names.truncate(got.clamp(0, n.max(0)) as usize);
    names
        .into_iter()
        .filter(|p| !p.is_null())
        .map(|p| {
            // SAFETY: each pointer is a static NUL-terminated string owned by llama.cpp.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// A loaded model. Owns the `llama_model`.
pub struct RawModel {
    ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
    /// Layers it was loaded with on a GPU.
    n_gpu_layers: i32,
}

// SAFETY: llama.cpp's model is immutable after loading and documented as usable from several
// contexts on several threads at once.
unsafe impl Send for RawModel {}
// SAFETY: as above; all methods take &self and only read the model.
unsafe impl Sync for RawModel {}

impl Drop for RawModel {
    fn drop(&mut self) {
        // SAFETY: the pointer came from llama_model_load_from_file and is freed exactly once.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) }
    }
}

impl RawModel {
    /// Loads a model file; `None` when llama.cpp rejects it (it logs why).
    pub fn load(path: &Path, n_gpu_layers: i32) -> Option<RawModel> {
        let c = path_cstring(path)?;
        // SAFETY: default params are plain data; we only set the layer count.
        let mut params = unsafe { sys::llama_model_default_params() };
        params.n_gpu_layers = n_gpu_layers;
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call; llama.cpp
        // catches its own exceptions and returns NULL on failure.
        let ptr = NonNull::new(unsafe { sys::llama_model_load_from_file(c.as_ptr(), params) })?;
        // SAFETY: ptr is a live model.
        let vocab = unsafe { sys::llama_model_get_vocab(ptr.as_ptr()) };
        let Some(vocab) = NonNull::new(vocab as *mut _) else {
            // SAFETY: free the model we own before giving up.
            unsafe { sys::llama_model_free(ptr.as_ptr()) };
            return None;
        };
        Some(RawModel {
            ptr,
            vocab,
            n_gpu_layers,
        })
    }

    /// Width of the input embeddings.
    pub fn n_embd(&self) -> usize {
        // SAFETY: live model pointer.
        unsafe { sys::llama_model_n_embd(self.ptr.as_ptr()) }.max(0) as usize
    }

    /// Context length the model was trained with.
    pub fn n_ctx_train(&self) -> usize {
        // SAFETY: live model pointer.
        unsafe { sys::llama_model_n_ctx_train(self.ptr.as_ptr()) }.max(0) as usize
    }

    /// Number of parameters.
    pub fn n_params(&self) -> u64 {
        // SAFETY: live model pointer.
        unsafe { sys::llama_model_n_params(self.ptr.as_ptr()) }
    }

    /// Vocabulary size.
    pub fn n_vocab(&self) -> usize {
        // SAFETY: live vocab pointer owned by the model.
        unsafe { sys::llama_vocab_n_tokens(self.vocab.as_ptr()) }.max(0) as usize
    }

    /// llama.cpp's one-line description (architecture, size, quantization).
    pub fn desc(&self) -> String {
        let mut buf = vec![0u8; 256];
        // SAFETY: buf is writable for its length; the function NUL-terminates within it.
        let n =
            unsafe { sys::llama_model_desc(self.ptr.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(n.clamp(0, 255) as usize);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Tokenizes text. `parse_special` makes control tokens such as `<|im_start|>` special.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Option<Vec<i32>> {
        let len = i32::try_from(text.len()).ok()?;
        let mut out = vec![0i32; text.len() + 8];
        loop {
            // SAFETY: text is valid for `len` bytes (need not be NUL-terminated); out is
            // writable for out.len() tokens; a negative result is the size needed.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab.as_ptr(),
                    text.as_ptr().cast(),
                    len,
                    out.as_mut_ptr(),
                    out.len() as i32,
                    add_special,
                    parse_special,
                )
            };
            if n == i32::MIN {
                return None;
            }
            if n >= 0 {
                out.truncate(n as usize);
                return Some(out);
            }
            out.resize((-n) as usize, 0);
        }
    }

    /// The text of one token (special tokens rendered).
    pub fn token_piece(&self, token: i32) -> String {
        if token < 0 || token as usize >= self.n_vocab() {
            return String::new();
        }
        let mut buf = vec![0u8; 64];
        loop {
            // SAFETY: token is in range (checked above); buf is writable for its length.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab.as_ptr(),
                    token,
                    buf.as_mut_ptr().cast(),
                    buf.len() as i32,
                    0,
                    true,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return String::from_utf8_lossy(&buf).into_owned();
            }
            buf.resize((-n) as usize, 0);
        }
    }

    /// Whether a token ends generation (end of turn / end of stream).
    pub fn is_eog(&self, token: i32) -> bool {
        // SAFETY: live vocab; llama.cpp bounds-checks the id internally for this query.
        token >= 0
            && (token as usize) < self.n_vocab()
            && unsafe { sys::llama_vocab_is_eog(self.vocab.as_ptr(), token) }
    }
}

/// Settings of a llama.cpp context that change results or speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextParams {
    /// KV cache cells.
    pub n_ctx: u32,
    /// Largest batch accepted by one decode call.
    pub n_batch: u32,
    /// Physical micro-batch size.
    pub n_ubatch: u32,
    /// Number of sequence ids usable in batches.
    pub n_seq_max: u32,
    /// CPU threads.
    pub n_threads: i32,
    /// Flash attention on or off.
    pub flash_attn: bool,
    /// One KV cache for all sequences (`kv_unified`), or one stream per sequence id: then a
    /// token may carry one sequence id only, every sequence has `n_ctx / n_seq_max` cells
    /// (llama.cpp pads that to a multiple of 256), and a decode's micro-batches hold equally
    /// many tokens of consecutive sequence ids.
    pub unified: bool,
}

/// A llama.cpp context (KV cache + compute buffers). Owns the `llama_context`; borrows the
/// model it was made from for `'m`, so the compiler keeps the model alive while it exists
/// (llama.cpp's context reads the model's weights on every decode).
pub struct RawContext<'m> {
    ptr: NonNull<sys::llama_context>,
    params: ContextParams,
    n_vocab: usize,
    n_embd: usize,
    model: std::marker::PhantomData<&'m RawModel>,
}

// SAFETY: a context may move between threads; it is never shared (no Sync). The model it
// borrows is only read.
unsafe impl Send for RawContext<'_> {}

impl Drop for RawContext<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from llama_init_from_model and is freed exactly once.
        unsafe { sys::llama_free(self.ptr.as_ptr()) }
    }
}

/// The input of one decode call: either tokens or embedding rows.
#[derive(Clone, Copy)]
pub enum BatchInput<'a> {
    /// Token ids.
    Tokens(&'a [i32]),
    /// Embedding rows, flattened row-major (`len = n * n_embd`).
    Embeddings(&'a [f32]),
}

/// Why a decode was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The batch breaks a rule checked before llama.cpp sees it.
    #[error("invalid batch: {0}")]
    Invalid(String),
    /// llama.cpp returned a non-zero status.
    #[error("llama_decode failed with status {0} (1 = no KV cache slot: context too small)")]
    Status(i32),
}

impl<'m> RawContext<'m> {
    /// Creates a context on a model; `None` when llama.cpp refuses (e.g. out of memory).
    pub fn new(model: &'m RawModel, p: ContextParams) -> Option<RawContext<'m>> {
        // SAFETY: default params are plain data; we set documented fields only.
        let mut c = unsafe { sys::llama_context_default_params() };
        c.n_ctx = p.n_ctx;
        c.n_batch = p.n_batch;
        c.n_ubatch = p.n_ubatch;
        c.n_seq_max = p.n_seq_max;
        c.n_threads = p.n_threads;
        c.n_threads_batch = p.n_threads;
        c.kv_unified = p.unified;
        c.no_perf = true;
        // With no layer on a GPU, no work goes there either: llama.cpp would otherwise send
        // large matrix products of CPU-resident weights to a GPU backend if one is present
        // (with lavapipe, 30x slower than the CPU). `--gpu-layers 0` means the CPU.
        c.op_offload = model.n_gpu_layers > 0;
        c.flash_attn_type = if p.flash_attn {
            sys::LLAMA_FLASH_ATTN_TYPE_ENABLED
        } else {
            sys::LLAMA_FLASH_ATTN_TYPE_DISABLED
        };
        // SAFETY: model pointer is live for the call; NULL is returned on failure.
        let ptr = NonNull::new(unsafe { sys::llama_init_from_model(model.ptr.as_ptr(), c) })?;
        Some(RawContext {
            ptr,
            params: p,
            n_vocab: model.n_vocab(),
            n_embd: model.n_embd(),
            model: std::marker::PhantomData,
        })
    }

    /// Empties the KV cache.
    pub fn clear(&mut self) {
        // SAFETY: live memory handle of this context.
        unsafe { sys::llama_memory_clear(self.memory(), true) }
    }

    fn memory(&self) -> sys::llama_memory_t {
        // SAFETY: live context; the memory handle belongs to it and lives as long as it.
        unsafe { sys::llama_get_memory(self.ptr.as_ptr()) }
    }

    fn check_seq(&self, seq: i32) -> bool {
        seq >= 0 && (seq as u32) < self.params.n_seq_max
    }

    /// Removes sequence `seq`'s cells with positions in `[p0, p1)` (`p1 < 0`: to the end);
    /// cells no other sequence uses become free. False for a sequence id out of range or when
    /// llama.cpp refuses (a partial removal it cannot do).
    pub fn seq_rm(&mut self, seq: i32, p0: i32, p1: i32) -> bool {
        if !self.check_seq(seq) {
            return false;
        }
        // SAFETY: live memory handle; seq is below n_seq_max (checked), so llama.cpp's own
        // bounds assertion cannot fire; positions may be any values (-1 = open end).
        unsafe { sys::llama_memory_seq_rm(self.memory(), seq, p0, p1) }
    }

    /// Adds sequence `dst` to every cell of sequence `src` with a position in `[p0, p1)`
    /// (negative: open end). With the unified cache nothing is copied: the cells are shared.
    /// With one stream per sequence the whole of `src`'s stream replaces `dst`'s (the data is
    /// copied at the next decode), so only whole copies (`p0`, `p1` negative) are allowed.
    /// False (and nothing done) for a sequence id out of range or a partial copy of a stream.
    pub fn seq_cp(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> bool {
        if !self.check_seq(src) || !self.check_seq(dst) {
            return false;
        }
        if !self.params.unified && (src == dst || p0 >= 0 || p1 >= 0) {
            return false;
        }
        // SAFETY: live memory handle; both ids are below n_seq_max (checked); across streams
        // only whole copies reach llama.cpp (checked), which it asserts.
        unsafe { sys::llama_memory_seq_cp(self.memory(), src, dst, p0, p1) };
        true
    }

    /// The largest position sequence `seq` holds in the cache, or -1 when it holds none (or
    /// the id is out of range).
    pub fn seq_pos_max(&self, seq: i32) -> i32 {
        if !self.check_seq(seq) {
            return -1;
        }
        // SAFETY: live memory handle; seq is below n_seq_max (checked).
        unsafe { sys::llama_memory_seq_pos_max(self.memory(), seq) }
    }

    /// The most entries one decode call takes (`n_batch`).
    pub fn n_batch(&self) -> u32 {
        self.params.n_batch
    }

    /// Decodes one batch. `seqs[i]` are the sequence ids of entry i, `pos[i]` its position,
    /// `logits[i]` whether to compute its output. Every size is checked first.
    pub fn decode(
        &mut self,
        input: BatchInput<'_>,
        pos: &[i32],
        seqs: &[&[i32]],
        logits: &[bool],
    ) -> Result<(), DecodeError> {
        let max_seqs = self.check_batch(input, pos, seqs, logits)?;
        let n = pos.len();
        let batch = Batch::new(
            n,
            if matches!(input, BatchInput::Embeddings(_)) {
                self.n_embd
            } else {
                0
            },
            max_seqs,
        );
        // SAFETY: `batch` was allocated by llama_batch_init for n entries, embd width (or
        // tokens) and max_seqs sequence ids per entry, so every write below is in bounds.
        unsafe {
            let b = &batch.0;
            match input {
                BatchInput::Tokens(t) => std::ptr::copy_nonoverlapping(t.as_ptr(), b.token, n),
                BatchInput::Embeddings(e) => {
                    std::ptr::copy_nonoverlapping(e.as_ptr(), b.embd, e.len())
                }
            }
            for i in 0..n {
                *b.pos.add(i) = pos[i];
                *b.n_seq_id.add(i) = seqs[i].len() as i32;
                let dst = *b.seq_id.add(i);
                std::ptr::copy_nonoverlapping(seqs[i].as_ptr(), dst, seqs[i].len());
                *b.logits.add(i) = i8::from(logits[i]);
            }
        }
        let mut raw = batch.0;
        raw.n_tokens = n as i32;
        // SAFETY: live context; the batch is fully initialised and within n_batch.
        let rc = unsafe { sys::llama_decode(self.ptr.as_ptr(), raw) };
        drop(batch);
        if rc != 0 {
            return Err(DecodeError::Status(rc));
        }
        Ok(())
    }

    /// Checks a batch against every rule llama.cpp would otherwise assert on (or silently
    /// break): equal, non-zero lengths within n_batch, token ids in the vocabulary, finite
    /// rows of whole width, sequence ids below n_seq_max (one per entry with streams).
    /// Returns the most sequence ids of an entry.
    fn check_batch(
        &self,
        input: BatchInput<'_>,
        pos: &[i32],
        seqs: &[&[i32]],
        logits: &[bool],
    ) -> Result<usize, DecodeError> {
        let n = pos.len();
        let n_input = match input {
            BatchInput::Tokens(t) => t.len(),
            BatchInput::Embeddings(e) => {
                if e.len() % self.n_embd != 0 {
                    return Err(DecodeError::Invalid(format!(
                        "{} floats is not a whole number of {}-wide rows",
                        e.len(),
                        self.n_embd
                    )));
                }
                e.len() / self.n_embd
            }
        };
        if n == 0 || n_input != n || seqs.len() != n || logits.len() != n {
            return Err(DecodeError::Invalid(format!(
                "lengths differ or are zero: input {n_input}, pos {n}, seqs {}, logits {}",
                seqs.len(),
                logits.len()
            )));
        }
        if n > self.params.n_batch as usize {
            return Err(DecodeError::Invalid(format!(
                "{n} entries exceed n_batch {}",
                self.params.n_batch
            )));
        }
        if let BatchInput::Tokens(t) = input {
            if let Some(bad) = t.iter().find(|&&t| t < 0 || t as usize >= self.n_vocab) {
                return Err(DecodeError::Invalid(format!(
                    "token id {bad} outside the vocabulary (0..{})",
                    self.n_vocab
                )));
            }
        }
        if let BatchInput::Embeddings(e) = input {
            if e.iter().any(|v| !v.is_finite()) {
                return Err(DecodeError::Invalid(
                    "embedding rows contain NaN or infinity".into(),
                ));
            }
        }
        let max_seqs = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if seqs.iter().any(|s| {
            s.is_empty()
                || s.iter()
                    .any(|&id| id < 0 || id as u32 >= self.params.n_seq_max)
        }) {
            return Err(DecodeError::Invalid(format!(
                "every entry needs 1..{} sequence ids below n_seq_max",
                self.params.n_seq_max
            )));
        }
        if !self.params.unified && max_seqs > 1 {
            return Err(DecodeError::Invalid(
                "with one KV stream per sequence an entry carries one sequence id".into(),
            ));
        }
        Ok(max_seqs)
    }

    /// The logits of output `i` of the last decode (the i-th entry with `logits = true`
    /// counted over the batch, as llama.cpp numbers them by batch index).
    pub fn logits(&mut self, batch_index: usize) -> Option<Vec<f32>> {
        // SAFETY: live context; llama.cpp returns NULL (and logs) for an index without output.
        let p = unsafe { sys::llama_get_logits_ith(self.ptr.as_ptr(), batch_index as i32) };
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-NULL result points at n_vocab floats owned by the context, valid until
        // the next decode; we copy them out at once.
        Some(unsafe { std::slice::from_raw_parts(p, self.n_vocab) }.to_vec())
    }
}

/// RAII owner of a `llama_batch` from `llama_batch_init`.
struct Batch(sys::llama_batch);

impl Batch {
    fn new(n: usize, embd: usize, max_seqs: usize) -> Batch {
        // SAFETY: sizes are positive and small (checked by the caller against n_batch).
        Batch(unsafe { sys::llama_batch_init(n as i32, embd as i32, max_seqs as i32) })
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: allocated by llama_batch_init, freed exactly once.
        unsafe { sys::llama_batch_free(self.0) }
    }
}

/// Where one tensor's data lies in a GGUF file, and how to dequantize it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorLocation {
    /// ggml type id.
    pub ggml_type: u32,
    /// Row width (ne[0]).
    pub ne0: usize,
    /// Number of rows (ne[1]).
    pub ne1: usize,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Bytes per row.
    pub row_bytes: usize,
}

/// Finds a 2-D tensor in a GGUF file through the gguf C API (metadata only, no data read).
pub fn locate_tensor(path: &Path, name: &str) -> Option<TensorLocation> {
    let c = path_cstring(path)?;
    let cname = CString::new(name).ok()?;
    let mut meta: *mut sys::ggml_context = std::ptr::null_mut();
    let params = sys::gguf_init_params {
        no_alloc: true,
        ctx: &mut meta,
    };
    // SAFETY: c is a valid path; with no_alloc only metadata is read; NULL on failure.
    let g = unsafe { sys::gguf_init_from_file(c.as_ptr(), params) };
    if g.is_null() {
        return None;
    }
    // SAFETY: g (and meta, when non-NULL) are live until freed at the end of this block.
    unsafe {
        let id = sys::gguf_find_tensor(g, cname.as_ptr());
        let t = if meta.is_null() {
            std::ptr::null_mut()
        } else {
            sys::ggml_get_tensor(meta, cname.as_ptr())
        };
        let r = if id < 0 || t.is_null() {
            None
        } else {
            let ty = sys::gguf_get_tensor_type(g, id);
            let ne0 = (*t).ne[0];
            let ne1 = (*t).ne[1];
            Some(TensorLocation {
                ggml_type: ty as u32,
                ne0: ne0.max(0) as usize,
                ne1: ne1.max(0) as usize,
                offset: (sys::gguf_get_data_offset(g) + sys::gguf_get_tensor_offset(g, id)) as u64,
                row_bytes: sys::ggml_row_size(ty, ne0),
            })
        };
        sys::gguf_free(g);
        if !meta.is_null() {
            sys::ggml_free(meta);
        }
        r
    }
}

/// The name of a ggml type (`q8_0`, `f32`, ...).
pub fn ggml_type_name(ty: u32) -> String {
    if ty >= sys::GGML_TYPE_COUNT {
        return format!("type{ty}");
    }
    // SAFETY: ggml_type_name returns a static string for any id below GGML_TYPE_COUNT, which
    // was checked above.
    let p = unsafe { sys::ggml_type_name(ty as sys::ggml_type) };
    if p.is_null() {
        return format!("type{ty}");
    }
    // SAFETY: non-NULL static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Dequantizes one row of `ne0` values of type `ty` from `bytes` (exactly one row's bytes).
pub fn dequantize_row(ty: u32, bytes: &[u8], ne0: usize) -> Option<Vec<f32>> {
    if ty >= sys::GGML_TYPE_COUNT {
        return None;
    }
    // SAFETY: bounds-checked type id; row_size is a pure computation.
    let row = unsafe { sys::ggml_row_size(ty as sys::ggml_type, ne0 as i64) };
    if bytes.len() != row {
        return None;
    }
    // SAFETY: bounds-checked type id; traits are a static table.
    let traits = unsafe { sys::ggml_get_type_traits(ty as sys::ggml_type) };
    if traits.is_null() {
        return None;
    }
    let mut out = vec![0f32; ne0];
    // SAFETY: traits is non-NULL and static.
    let to_float = unsafe { (*traits).to_float };
    match to_float {
        // SAFETY: `bytes` holds exactly one row of this type (checked), out has ne0 floats.
        Some(f) => unsafe { f(bytes.as_ptr().cast(), out.as_mut_ptr(), ne0 as i64) },
        None if ty == sys::GGML_TYPE_F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        None => return None,
    }
    Some(out)
}

/// Bytes of one row of `ne0` values of ggml type `ty`; `None` for an unknown type or a width
/// that is not a whole number of the type's blocks.
pub fn row_size(ty: u32, ne0: u64) -> Option<usize> {
    if ty >= sys::GGML_TYPE_COUNT || ne0 > i64::MAX as u64 {
        return None;
    }
    // SAFETY: bounds-checked type id; traits are a static table.
    let traits = unsafe { sys::ggml_get_type_traits(ty as sys::ggml_type) };
    if traits.is_null() {
        return None;
    }
    // SAFETY: non-NULL static table entry.
    let (blck, size) = unsafe { ((*traits).blck_size, (*traits).type_size) };
    if blck <= 0 || size == 0 || ne0 % blck as u64 != 0 {
        return None;
    }
    usize::try_from(ne0 / blck as u64).ok()?.checked_mul(size)
}

/// Rewrites a GGUF model with all weights converted to `ftype` (a `llama_ftype` value):
/// 0 = F32, 1 = F16, 7 = Q8_0. Returns false when llama.cpp reports a failure.
pub fn convert_model(input: &Path, output: &Path, ftype: u32, threads: i32) -> bool {
    let (Some(i), Some(o)) = (path_cstring(input), path_cstring(output)) else {
        return false;
    };
    // SAFETY: default params are plain data; we set documented fields only.
    let mut p = unsafe { sys::llama_model_quantize_default_params() };
    p.ftype = ftype as sys::llama_ftype;
    p.allow_requantize = true;
    p.nthread = threads;
    // SAFETY: both paths are valid NUL-terminated strings and p outlives the call; llama.cpp
    // catches its exceptions and returns non-zero on failure.
    unsafe { sys::llama_model_quantize(i.as_ptr(), o.as_ptr(), &p) == 0 }
}
