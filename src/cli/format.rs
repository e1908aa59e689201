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

/// The columns of a table of `scores`: Hofstede's six when every value is one of them (so
/// a region without a published score shows `-`), else every dimension any of them has.
pub fn dims_of(scores: &[&DimScores]) -> Vec<Dimension> {
    let mut dims: Vec<Dimension> = scores.iter().flat_map(|s| s.dims()).collect();
    dims.sort();
    dims.dedup();
    if dims.iter().all(|d| d.is_hofstede()) {
        return Dimension::HOFSTEDE.to_vec();
    }
    dims
}

/// The dimension codes, right-aligned in `width`-wide columns.
pub fn dim_header(dims: &[Dimension], width: usize) -> String {
    dims.iter()
        .map(|d| format!("{:>width$}", d.code()))
        .collect()
}

/// The values of `s` on `dims`, right-aligned in `width`-wide columns.
pub fn dim_row(s: &DimScores, dims: &[Dimension], width: usize) -> String {
    dims.iter()
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
