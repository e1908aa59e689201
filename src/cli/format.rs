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
