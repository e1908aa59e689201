//! Small helpers for the plain-text tables the CLI prints.

use crate::dimension::{DimScores, Dimension};

/// A score cell: the value with at most one decimal, or `-` when absent.
pub fn cell(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "-".to_string(),
    }
}

/// The six dimension codes, right-aligned in `width`-wide columns.
pub fn dim_header(width: usize) -> String {
    Dimension::ALL
        .iter()
        .map(|d| format!("{:>width$}", d.code()))
        .collect()
}

/// The six values of `s`, right-aligned in `width`-wide columns.
pub fn dim_row(s: &DimScores, width: usize) -> String {
    Dimension::ALL
        .iter()
        .map(|&d| format!("{:>width$}", cell(s.get(d))))
        .collect()
}

/// Prints `value` as pretty JSON when `json` is set (the `--json` of every command); says
/// whether it did.
pub fn json<T: serde::Serialize>(
    out: &mut dyn std::io::Write,
    json: bool,
    value: &T,
) -> anyhow::Result<bool> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    }
    Ok(json)
}
