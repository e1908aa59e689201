//! Regions and their published Hofstede scores: loading the targets CSV and looking regions up.

use crate::dimension::{DimScores, Dimension};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The published 6-D table shipped with culturetune (`surveys/hofstede-6d-2015.csv`).
pub const BUILTIN_TARGETS_CSV: &str = include_str!("../surveys/hofstede-6d-2015.csv");

/// Characters of a query and of each name that the suggestions for an unknown region compare.
pub const SUGGEST_CHARS: usize = 48;
/// Regions the suggestions for an unknown region look at (the first in file order).
pub const SUGGEST_REGIONS: usize = 100_000;

/// A country or region with its published scores.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Region {
    /// Short code, e.g. `USA`.
    pub code: String,
    /// Name as published, e.g. `U.S.A.`.
    pub name: String,
    /// Published scores; absent where none was published.
    pub scores: DimScores,
}

/// Why the targets table could not be loaded or a region not found.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The targets file could not be read.
    #[error("cannot read targets file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The targets CSV is malformed.
    #[error("{origin}: line {line}: {message}")]
    Format {
        /// The file.
        origin: String,
        /// 1-based line.
        line: u64,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A name that several regions share (their codes tell them apart).
    #[error("region {query:?} is ambiguous: the targets table has several regions of that name (codes {}); give the code", codes.join(", "))]
    Ambiguous {
        /// What the user asked for.
        query: String,
        /// The codes of the regions with that name.
        codes: Vec<String>,
    },
    /// No region matches the query.
    #[error("unknown region {query:?}; closest matches: {}", suggestions.join(", "))]
    Unknown {
        /// What the user asked for.
        query: String,
        /// `CODE (Name)` of the closest regions, best first.
        suggestions: Vec<String>,
    },
}

impl RegionError {
    /// The stable code of this error.
    pub fn code(&self) -> crate::error_code::ErrorCode {
        match self {
            RegionError::Unknown { .. } | RegionError::Ambiguous { .. } => {
                crate::error_code::ErrorCode::RegionUnknown
            }
            _ => crate::error_code::ErrorCode::InvalidInput,
        }
    }
}

/// All regions of a targets table, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionTable {
    regions: Vec<Region>,
}

/// The columns of the shipped table (any table: `country,code`, then dimension codes).
const COLUMNS: [&str; 8] = ["country", "code", "pdi", "idv", "mas", "uai", "lto", "ivr"];

/// The dimension of each score column of a targets header (`country,code,` then one column per
/// dimension code, each code once), made known; the message says what was expected.
fn score_columns(header: &csv::StringRecord) -> Result<Vec<Dimension>, String> {
    let shown = || header.iter().collect::<Vec<_>>().join(",");
    let expected = || {
        format!(
            "expected {} (country, code, then one column per dimension code)",
            COLUMNS.join(",")
        )
    };
    let lead: Vec<String> = header
        .iter()
        .take(2)
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if lead != ["country", "code"] || header.len() < 3 {
        return Err(format!("header is {:?}; {}", shown(), expected()));
    }
    let mut dims: Vec<Dimension> = Vec::new();
    for h in header.iter().skip(2) {
        let d = Dimension::register(h, None, None)
            .map_err(|m| format!("header is {:?}: column {h:?}: {m}", shown()))?;
        if dims.contains(&d) {
            return Err(format!(
                "header is {:?}: column {h:?} appears twice",
                shown()
            ));
        }
        dims.push(d);
    }
    Ok(dims)
}

impl RegionTable {
    /// The table shipped inside the binary.
    pub fn builtin() -> RegionTable {
        RegionTable::from_reader(
            BUILTIN_TARGETS_CSV.as_bytes(),
            "builtin:hofstede-6d-2015.csv",
        )
        .expect("the shipped targets table is valid (checked by tests)")
    }

    /// Loads a targets CSV with columns `country,code`, then one per dimension code (the
    /// shipped table: `pdi,idv,mas,uai,lto,ivr`).
    pub fn from_path(path: &Path) -> Result<RegionTable, RegionError> {
        let bytes = crate::input_file::read_capped(path, crate::input_file::MAX_TABLE_BYTES)
            .map_err(|source| RegionError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        RegionTable::from_reader(&bytes[..], &path.display().to_string())
    }

    /// Parses a targets CSV; `origin` names it in error messages.
    pub fn from_reader(reader: impl Read, origin: &str) -> Result<RegionTable, RegionError> {
        let fmt = |line: u64, message: String| RegionError::Format {
            origin: origin.to_string(),
            line,
            message,
        };
        let text = crate::csv_lines::CsvText::read(reader).map_err(|e| fmt(0, e.to_string()))?;
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(&text.data[..]);
        let header = csv.headers().map_err(|e| fmt(1, e.to_string()))?.clone();
        let dims = score_columns(&header).map_err(|m| fmt(1, m))?;
        let mut regions: Vec<Region> = Vec::new();
        // Code -> index of its region: the duplicate check stays linear in the rows (with a
        // scan per row, a million-row table had not loaded after 14 minutes).
        let mut seen = std::collections::HashMap::new();
        for rec in csv.records() {
            let rec = rec.map_err(|e| fmt(text.line_of(e.position()), e.to_string()))?;
            let line = text.line_of(rec.position());
            let name = rec[0].to_string();
            let code = rec[1].to_ascii_uppercase();
            if name.is_empty() || code.is_empty() {
                return Err(fmt(line, "country and code must not be empty".into()));
            }
            if let Some(&prev) = seen.get(&code) {
                let prev: &Region = &regions[prev];
                return Err(fmt(
                    line,
                    format!("code {code} is used twice (also by {:?})", prev.name),
                ));
            }
            seen.insert(code.clone(), regions.len());
            let mut scores = DimScores::default();
            for (i, &d) in dims.iter().enumerate() {
                let cell = &rec[i + 2];
                if cell.is_empty() {
                    continue;
                }
                let v: f64 = cell.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                    fmt(
                        line,
                        format!("column {}: {:?} is not a number (leave the cell empty when no score is published)", &header[i + 2], crate::csv_lines::cut(cell)),
                    )
                })?;
                if v.abs() > crate::dimension::MAX_SCORE {
                    return Err(fmt(
                        line,
                        format!(
                            "column {}: {v:e} is out of range; expected a score from -{m} to {m}",
                            &header[i + 2],
                            m = crate::dimension::MAX_SCORE
                        ),
                    ));
                }
                scores.set(d, Some(v));
            }
            regions.push(Region { code, name, scores });
        }
        if regions.is_empty() {
            return Err(fmt(1, "no regions; expected at least one data row".into()));
        }
        Ok(RegionTable { regions })
    }

    /// All regions, in file order.
    pub fn all(&self) -> &[Region] {
        &self.regions
    }

    /// Finds a region by code or name, ignoring case and surrounding spaces. Codes are
    /// matched first (they are unique), so a region *named* like another's code never takes
    /// its place; a name shared by several regions is [`RegionError::Ambiguous`]. An unknown
    /// query gives [`RegionError::Unknown`] with the closest matches.
    pub fn find(&self, query: &str) -> Result<&Region, RegionError> {
        let q = query.trim();
        if let Some(r) = self.regions.iter().find(|r| r.code.eq_ignore_ascii_case(q)) {
            return Ok(r);
        }
        let mut named = self
            .regions
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case(q));
        match (named.next(), named.next()) {
            (Some(r), None) => Ok(r),
            (Some(a), Some(b)) => Err(RegionError::Ambiguous {
                query: crate::csv_lines::cut(q),
                codes: [a, b]
                    .into_iter()
                    .chain(named)
                    .map(|r| r.code.clone())
                    .collect(),
            }),
            _ => Err(RegionError::Unknown {
                query: crate::csv_lines::cut(query),
                suggestions: self.closest(q, 5),
            }),
        }
    }

    /// The `n` regions whose code or name is closest to `query`, as `CODE (Name)`. Bounded
    /// work whatever the input: the query and the names are compared on their first
    /// [`SUGGEST_CHARS`] characters, over at most [`SUGGEST_REGIONS`] regions.
    fn closest(&self, query: &str, n: usize) -> Vec<String> {
        let short = |s: &str| {
            s.chars()
                .take(SUGGEST_CHARS)
                .collect::<String>()
                .to_lowercase()
        };
        let q = short(query);
        let mut scored: Vec<(f64, &Region)> = self
            .regions
            .iter()
            .take(SUGGEST_REGIONS)
            .map(|r| {
                let name = short(&r.name);
                let mut s =
                    strsim::jaro_winkler(&q, &name).max(strsim::jaro_winkler(&q, &short(&r.code)));
                if !q.is_empty() && (name.contains(&q) || q.contains(&name)) {
                    s += 1.0;
                }
                (s, r)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(n)
            .map(|(_, r)| format!("{} ({})", r.code, r.name))
            .collect()
    }
}
