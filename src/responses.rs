//! Human survey data: a CSV of respondents (one row each, a column per item id with its scale's
//! codes, 1..5 for the VSM 2013)
//! reduced to per-item mean answers and answer distributions, optionally only the rows of one
//! group (`--group COLUMN=VALUE`) and weighted by a column (`--weight COLUMN`).

use crate::survey::Survey;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a responses file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResponsesError {
    /// The file could not be opened or read.
    #[error("cannot read responses file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CSV itself is malformed (ragged row, bad UTF-8, ...).
    #[error("{origin}: line {line}: malformed CSV: {message}")]
    Csv {
        /// The file.
        origin: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// The CSV reader's message.
        message: String,
    },
    /// The header lacks a column for an item of the survey.
    #[error("{origin}: line 1 (header): missing column {column:?} for survey {survey}; expected one column per item: {expected}")]
    MissingColumn {
        /// The file.
        origin: String,
        /// The missing item id.
        column: String,
        /// The survey id.
        survey: String,
        /// All expected item columns.
        expected: String,
    },
    /// The header names the same item column twice.
    #[error("{origin}: line 1 (header): column {column:?} appears more than once")]
    DuplicateColumn {
        /// The file.
        origin: String,
        /// The repeated column.
        column: String,
    },
    /// A cell holds something other than one of its item's codes (or blank).
    #[error("{origin}: line {line}, column {column:?}: {value:?} is not a valid answer; expected a whole number {first}..{last} (or an empty cell for no answer)")]
    BadCode {
        /// The file.
        origin: String,
        /// 1-based line in the file.
        line: u64,
        /// The item column.
        column: String,
        /// The cell's text.
        value: String,
        /// The item's lowest code.
        first: u32,
        /// Its highest code.
        last: u32,
    },
    /// The file has a header but no respondent rows.
    #[error("{origin}: no respondents; expected a header line and at least one data row")]
    Empty {
        /// The file.
        origin: String,
    },
    /// A column named by `--group` or `--weight` is not in the header.
    #[error("{origin}: line 1 (header): no column {column:?} (named by {flag}); the header has: {header}")]
    NoSuchColumn {
        /// The file.
        origin: String,
        /// The column asked for.
        column: String,
        /// The option that named it (`--group`, `--weight`).
        flag: String,
        /// The header's columns.
        header: String,
    },
    /// No row belongs to the group asked for.
    #[error("{origin}: no row has {column} = {value:?}; values found: {found}")]
    NoSuchGroup {
        /// The file.
        origin: String,
        /// The group column.
        column: String,
        /// The value asked for.
        value: String,
        /// Some values the column holds.
        found: String,
    },
    /// A weight cell is not a finite number >= 0.
    #[error("{origin}: line {line}, column {column:?}: {value:?} is not a valid weight; expected a number >= 0")]
    BadWeight {
        /// The file.
        origin: String,
        /// 1-based line in the file.
        line: u64,
        /// The weight column.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// The weights of the rows used sum to zero.
    #[error("{origin}: the weights of the rows used sum to 0; at least one respondent needs a weight > 0")]
    ZeroWeight {
        /// The file.
        origin: String,
    },
    /// An item has no answer from any respondent, so its mean is undefined.
    #[error(
        "{origin}: column {column:?} has no answers in any row; every item needs at least one"
    )]
    NoAnswers {
        /// The file.
        origin: String,
        /// The item column.
        column: String,
    },
}

impl ResponsesError {
    /// The stable code of this error (bad input: `invalid_input`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::InvalidInput
    }
}

/// Which rows of a responses file count, and how much: `group` keeps only the rows whose
/// column holds the value (compared without regard to ASCII case), `weight` names a column of
/// non-negative respondent weights. The default uses every row with weight 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    /// `(column, value)`: only the rows of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<(String, String)>,
    /// The weight column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
}

impl Selection {
    /// Parses `--group COLUMN=VALUE` and `--weight COLUMN` (both optional).
    pub fn parse(group: Option<&str>, weight: Option<&str>) -> Result<Selection, String> {
        let group = match group {
            None => None,
            Some(g) => match g.split_once('=') {
                Some((c, v)) if !c.trim().is_empty() && !v.trim().is_empty() => {
                    Some((c.trim().to_string(), v.trim().to_string()))
                }
                _ => {
                    return Err(format!(
                        "--group {g:?}: expected COLUMN=VALUE, e.g. country=DEU"
                    ))
                }
            },
        };
        let weight = match weight.map(str::trim) {
            Some("") => return Err("--weight: expected a column name".into()),
            w => w.map(str::to_string),
        };
        Ok(Selection { group, weight })
    }

    /// The selection as a user wrote it, e.g. `country=DEU, weighted by w`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((c, v)) = &self.group {
            parts.push(format!("{c}={v}"));
        }
        if let Some(w) = &self.weight {
            parts.push(format!("weighted by {w}"));
        }
        if parts.is_empty() {
            "all rows, unweighted".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Per-item means and answer distributions computed from a responses file.
#[derive(Debug, Clone, PartialEq)]
pub struct Responses {
    /// Number of respondent rows used (in the group, answering at least one item).
    pub respondents: usize,
    /// Mean code per item (weighted), in survey item order.
    pub item_means: Vec<f64>,
    /// How many respondents answered each item, in survey item order.
    pub answered: Vec<usize>,
    /// Share of each of the item's codes among its answers (weighted, in code order), in
    /// survey item order.
    pub distributions: Vec<Vec<f64>>,
}

/// Running sums of one item's answers.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Weight per code, in code order.
    weight: Vec<f64>,
    answered: usize,
    /// The item's lowest code.
    first: u32,
}

impl Responses {
    /// Reads a responses CSV for `survey`, every row unweighted.
    pub fn from_path(path: &Path, survey: &Survey) -> Result<Responses, ResponsesError> {
        Responses::from_path_with(path, survey, &Selection::default())
    }

    /// Reads a responses CSV for `survey`, the rows `selection` keeps with its weights.
    pub fn from_path_with(
        path: &Path,
        survey: &Survey,
        selection: &Selection,
    ) -> Result<Responses, ResponsesError> {
        let bytes = crate::input_file::read_capped(path, crate::input_file::MAX_TABLE_BYTES)
            .map_err(|source| ResponsesError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Responses::from_reader_with(&bytes[..], &path.display().to_string(), survey, selection)
    }

    /// Reads responses CSV text, every row unweighted; `origin` names it in error messages.
    pub fn from_reader(
        reader: impl Read,
        origin: &str,
        survey: &Survey,
    ) -> Result<Responses, ResponsesError> {
        Responses::from_reader_with(reader, origin, survey, &Selection::default())
    }

    /// Reads responses CSV text; `origin` names it in error messages.
    ///
    /// Columns not named after an item (respondent id, age, ...) are ignored unless the
    /// selection names them. An empty cell is an unanswered item: it is left out of that
    /// item's mean and distribution, as the VSM manual does. A row outside the group is
    /// skipped before its cells are read.
    pub fn from_reader_with(
        reader: impl Read,
        origin: &str,
        survey: &Survey,
        selection: &Selection,
    ) -> Result<Responses, ResponsesError> {
        let text = crate::csv_lines::CsvText::read(reader).map_err(|e| ResponsesError::Csv {
            origin: origin.to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(&text.data[..]);
        let csv_err = |e: csv::Error| ResponsesError::Csv {
            origin: origin.to_string(),
            line: text.line_of(e.position()),
            message: e.to_string(),
        };
        let header = csv.headers().map_err(csv_err)?.clone();
        let columns = item_columns(&header, origin, survey)?;
        let named = |column: &str, flag: &str| named_column(&header, origin, column, flag);
        let group = match &selection.group {
            Some((c, v)) => Some((named(c, "--group")?, v.as_str())),
            None => None,
        };
        let weight_col = match &selection.weight {
            Some(c) => Some(named(c, "--weight")?),
            None => None,
        };

        let mut tallies: Vec<Tally> = survey.items.iter().map(|i| Tally::of(survey, i)).collect();
        let mut respondents = 0;
        let mut found_groups = std::collections::BTreeSet::new();
        for record in csv.records() {
            let record = record.map_err(csv_err)?;
            let line = text.line_of(record.position());
            if let Some((col, value)) = group {
                let cell = record.get(col).unwrap_or("");
                if !cell.eq_ignore_ascii_case(value) {
                    if found_groups.len() < 10 {
                        found_groups.insert(crate::csv_lines::cut(cell));
                    }
                    continue;
                }
            }
            let weight = match weight_col {
                Some(col) => {
                    parse_weight(record.get(col).unwrap_or(""), origin, line, &header[col])?
                }
                None => 1.0,
            };
            // A row that answers no item (all its item cells empty) is nobody's answers.
            let at = Row {
                origin,
                line,
                weight,
            };
            if tally_row(&record, &columns, &mut tallies, survey, at)? {
                respondents += 1;
            }
        }
        if respondents == 0 {
            if let Some((col, value)) = group {
                return Err(ResponsesError::NoSuchGroup {
                    origin: origin.to_string(),
                    column: header.get(col).unwrap_or("").to_string(),
                    value: value.to_string(),
                    found: found_groups.into_iter().collect::<Vec<_>>().join(", "),
                });
            }
            return Err(ResponsesError::Empty {
                origin: origin.to_string(),
            });
        }
        summarize(&tallies, origin, survey, respondents)
    }
}

impl Tally {
    /// No answers yet to `item`, on its scale.
    fn of(survey: &Survey, item: &crate::survey::Item) -> Tally {
        let scale = survey.scale_of(item);
        Tally {
            weight: vec![0.0; scale.len()],
            answered: 0,
            first: scale.first_code,
        }
    }
}

/// Where a row is and what it weighs.
#[derive(Clone, Copy)]
struct Row<'a> {
    origin: &'a str,
    line: u64,
    weight: f64,
}

/// Adds one respondent's answers (`columns[k]` holds item k) to the tallies; says whether
/// the row answered any item. A cell that is not one of its item's codes is an error.
fn tally_row(
    record: &csv::StringRecord,
    columns: &[usize],
    tallies: &mut [Tally],
    survey: &Survey,
    at: Row<'_>,
) -> Result<bool, ResponsesError> {
    let mut any = false;
    for (k, &col) in columns.iter().enumerate() {
        let cell = record.get(col).unwrap_or("");
        if cell.is_empty() {
            continue;
        }
        any = true;
        let t = &mut tallies[k];
        let slot = cell
            .parse::<u32>()
            .ok()
            .and_then(|c| c.checked_sub(t.first))
            .map(|i| i as usize)
            .filter(|&i| i < t.weight.len());
        let Some(i) = slot else {
            let (first, last) = survey.scale_of(&survey.items[k]).range();
            return Err(ResponsesError::BadCode {
                origin: at.origin.to_string(),
                line: at.line,
                column: survey.items[k].id.clone(),
                value: crate::csv_lines::cut(cell),
                first,
                last,
            });
        };
        t.weight[i] += at.weight;
        t.answered += 1;
    }
    Ok(any)
}

/// The means and distributions of the tallies, refused when an item has no answer or the
/// weights sum to zero.
fn summarize(
    tallies: &[Tally],
    origin: &str,
    survey: &Survey,
    respondents: usize,
) -> Result<Responses, ResponsesError> {
    if let Some(k) = tallies.iter().position(|t| t.answered == 0) {
        return Err(ResponsesError::NoAnswers {
            origin: origin.to_string(),
            column: survey.items[k].id.clone(),
        });
    }
    let mut item_means = Vec::with_capacity(tallies.len());
    let mut distributions = Vec::with_capacity(tallies.len());
    for t in tallies {
        let total: f64 = t.weight.iter().sum();
        if total <= 0.0 {
            return Err(ResponsesError::ZeroWeight {
                origin: origin.to_string(),
            });
        }
        let dist: Vec<f64> = t.weight.iter().map(|w| w / total).collect();
        let coded: f64 = (t.first..)
            .zip(&t.weight)
            .map(|(c, w)| f64::from(c) * w)
            .sum();
        item_means.push(coded / total);
        distributions.push(dist);
    }
    Ok(Responses {
        respondents,
        item_means,
        answered: tallies.iter().map(|t| t.answered).collect(),
        distributions,
    })
}

/// A weight cell: a finite number >= 0 (and below 1e12, so no sum can overflow).
fn parse_weight(cell: &str, origin: &str, line: u64, column: &str) -> Result<f64, ResponsesError> {
    match cell.parse::<f64>() {
        Ok(w) if w.is_finite() && (0.0..1e12).contains(&w) => Ok(w),
        _ => Err(ResponsesError::BadWeight {
            origin: origin.to_string(),
            line,
            column: column.to_string(),
            value: crate::csv_lines::cut(cell),
        }),
    }
}

/// The position of a column named by an option, matched without regard to case.
fn named_column(
    header: &csv::StringRecord,
    origin: &str,
    column: &str,
    flag: &str,
) -> Result<usize, ResponsesError> {
    header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(column))
        .ok_or_else(|| ResponsesError::NoSuchColumn {
            origin: origin.to_string(),
            column: column.to_string(),
            flag: flag.to_string(),
            header: crate::csv_lines::cut(&header.iter().collect::<Vec<_>>().join(",")),
        })
}
/// The column of each survey item in a responses header (matched without regard to case):
/// exactly one per item.
fn item_columns(
    header: &csv::StringRecord,
    origin: &str,
    survey: &Survey,
) -> Result<Vec<usize>, ResponsesError> {
    let mut columns = Vec::with_capacity(survey.items.len());
    for item in &survey.items {
        let found: Vec<usize> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| h.eq_ignore_ascii_case(&item.id))
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [one] => columns.push(*one),
            [] => {
                return Err(ResponsesError::MissingColumn {
                    origin: origin.to_string(),
                    column: item.id.clone(),
                    survey: survey.id.clone(),
                    expected: survey
                        .items
                        .iter()
                        .map(|i| i.id.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                })
            }
            _ => {
                return Err(ResponsesError::DuplicateColumn {
                    origin: origin.to_string(),
                    column: item.id.clone(),
                })
            }
        }
    }
    Ok(columns)
}

/// Human responses scored (the JSON of `score --json`): the indices of their item means
/// and, with a region, the loss to its published scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreReport {
    /// The survey's id.
    pub survey: String,
    /// The responses file.
    pub responses: PathBuf,
    /// Respondent rows.
    pub respondents: usize,
    /// Mean code per item id.
    pub item_means: std::collections::BTreeMap<String, f64>,
    /// Constants of the index formulas.
    pub constants: crate::scoring::Constants,
    /// The indices.
    pub indices: crate::dimension::DimScores,
    /// The region compared with.
    pub region: Option<crate::regions::Region>,
    /// The loss to its scores (absent without a region or a shared dimension).
    pub loss: Option<crate::scoring::Loss>,
}

impl ScoreReport {
    /// Scores `responses` (read from `path`) on `survey` under `constants`, against `region`.
    pub fn new(
        survey: &Survey,
        path: &Path,
        responses: &Responses,
        constants: crate::scoring::Constants,
        region: Option<&crate::regions::Region>,
    ) -> Result<ScoreReport, crate::scoring::ScoreError> {
        let scores = crate::scoring::indices(survey, &responses.item_means, &constants)?;
        Ok(ScoreReport {
            survey: survey.id.clone(),
            responses: path.to_path_buf(),
            respondents: responses.respondents,
            item_means: survey
                .items
                .iter()
                .zip(&responses.item_means)
                .map(|(i, m)| (i.id.clone(), *m))
                .collect(),
            constants,
            loss: region.and_then(|r| crate::scoring::Loss::between(&scores, &r.scores)),
            indices: scores,
            region: region.cloned(),
        })
    }
}
