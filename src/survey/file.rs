//! The TOML survey file format: raw deserialisation and validation into a [`Survey`].

use super::model::{Formula, Item, Scale, Survey, SurveyError, Term};
use crate::dimension::{DimScores, Dimension};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSurvey {
    survey: RawHeader,
    scales: BTreeMap<String, RawScale>,
    items: Spanned<Vec<RawItem>>,
    dimensions: BTreeMap<String, RawDimension>,
    #[serde(default)]
    constants: BTreeMap<String, Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    id: Spanned<String>,
    name: String,
    #[serde(default)]
    description: String,
    provenance: String,
    /// The request that closes each question (`{first}` and `{last}`: the scale's codes).
    request: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScale {
    labels: Spanned<Vec<Spanned<String>>>,
    /// The code of the first label (default 1).
    first_code: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: Spanned<String>,
    #[serde(default)]
    construct: String,
    scale: Spanned<String>,
    text: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    terms: Spanned<Vec<RawTerm>>,
    /// The dimension's name (a new code; Hofstede's six keep theirs).
    name: Option<Spanned<String>>,
    /// What a high score means, in a few words (the ICL profile's wording).
    high: Option<Spanned<String>>,
    /// What a low score means.
    low: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerm {
    coef: Spanned<f64>,
    plus: Option<Spanned<String>>,
    minus: Option<Spanned<String>>,
}

/// Collects the context needed to turn a span into a located error.
struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, field: String, message: String) -> SurveyError {
        SurveyError::Invalid {
            origin: self.origin.to_string(),
            line: line_of(self.text, span.start),
            field,
            message,
        }
    }
}

/// Refuses text with a NUL byte or another control character (tabs and line ends aside): it
/// cannot reach the model as the survey's author meant it (llama.cpp's template renderer
/// stops at a NUL).
fn no_control(
    cx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    field: &str,
    text: &str,
) -> Result<(), SurveyError> {
    match text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        None => Ok(()),
        Some((at, c)) => Err(cx.err(
            span,
            field.to_string(),
            format!(
                "contains the control character U+{:04X} at character {}; expected plain text",
                c as u32,
                text[..at].chars().count() + 1
            ),
        )),
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

pub(super) fn parse(text: &str, origin: &str) -> Result<Survey, SurveyError> {
    let raw: RawSurvey = toml::from_str(text).map_err(|e| SurveyError::Syntax {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let cx = Ctx { text, origin };

    let id = raw.survey.id.get_ref().trim().to_string();
    if id.is_empty() {
        return Err(cx.err(
            raw.survey.id.span(),
            "survey.id".into(),
            "must not be empty; expected a short id such as \"vsm13\"".into(),
        ));
    }
    let scales = scales(&cx, &raw)?;
    let request = request(&cx, &raw)?;
    let items = items(&cx, &raw, &scales)?;
    let formulas = formulas(&cx, &raw, &items)?;
    let given_constants = constants(&cx, &raw, &formulas)?;
    Ok(Survey {
        id,
        name: raw.survey.name.trim().to_string(),
        description: raw.survey.description.trim().to_string(),
        provenance: raw.survey.provenance.trim().to_string(),
        scales,
        items,
        formulas,
        given_constants,
        origin: origin.to_string(),
        request,
    })
}

/// The survey's own request wording, checked: plain text that names the codes it asks for.
fn request(cx: &Ctx<'_>, raw: &RawSurvey) -> Result<Option<String>, SurveyError> {
    let Some(r) = &raw.survey.request else {
        return Ok(None);
    };
    let text = r.get_ref().trim();
    if text.is_empty() {
        return Err(cx.err(
            r.span(),
            "survey.request".into(),
            "must not be empty".into(),
        ));
    }
    no_control(cx, r.span(), "survey.request", text)?;
    let rest = text.replace("{first}", "").replace("{last}", "");
    if rest.contains('{') || rest.contains('}') {
        return Err(cx.err(
            r.span(),
            "survey.request".into(),
            "has a placeholder other than {first} and {last} (the scale's lowest and highest code)"
                .into(),
        ));
    }
    Ok(Some(text.to_string()))
}

/// The answer scales, each with 2..=11 non-empty labels and codes from `first_code`.
fn scales(cx: &Ctx<'_>, raw: &RawSurvey) -> Result<Vec<Scale>, SurveyError> {
    use super::model::{MAX_OPTIONS, MIN_OPTIONS};
    let mut scales = Vec::new();
    for (name, scale) in &raw.scales {
        let field = format!("scales.{name}.labels");
        let labels = scale.labels.get_ref();
        let first_code = match &scale.first_code {
            None => 1,
            Some(f) => match u32::try_from(*f.get_ref()) {
                Ok(v) if v <= 1 => v,
                _ => {
                    return Err(cx.err(
                        f.span(),
                        format!("scales.{name}.first_code"),
                        format!(
                            "is {}; expected 0 or 1 (the code of the first label)",
                            f.get_ref()
                        ),
                    ))
                }
            },
        };
        if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&labels.len()) {
            return Err(cx.err(
                scale.labels.span(),
                field,
                format!(
                    "has {} labels; expected {MIN_OPTIONS} to {MAX_OPTIONS} (one per code from {first_code}, in code order)",
                    labels.len()
                ),
            ));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| l.get_ref().trim().is_empty())
        {
            return Err(cx.err(
                l.span(),
                format!("{field}[{i}]"),
                "label must not be empty".into(),
            ));
        }
        for (i, l) in labels.iter().enumerate() {
            no_control(cx, l.span(), &format!("{field}[{i}]"), l.get_ref())?;
        }
        scales.push(Scale {
            name: name.clone(),
            labels: labels
                .iter()
                .map(|l| l.get_ref().trim().to_string())
                .collect(),
            first_code,
        });
    }
    if scales.is_empty() {
        return Err(SurveyError::Invalid {
            origin: cx.origin.to_string(),
            line: 1,
            field: "scales".into(),
            message: "no answer scale defined; expected at least one [scales.NAME] table".into(),
        });
    }

    Ok(scales)
}

/// The items, with ids unique up to case and known scales (by index).
fn items(cx: &Ctx<'_>, raw: &RawSurvey, scales: &[Scale]) -> Result<Vec<Item>, SurveyError> {
    let mut items = Vec::new();
    // Ids are also CSV column names, which responses match without regard to case.
    let mut folded_ids: HashMap<String, usize> = HashMap::new();
    if raw.items.get_ref().is_empty() {
        return Err(cx.err(
            raw.items.span(),
            "items".into(),
            "no items; expected at least one [[items]] entry".into(),
        ));
    }
    for (n, item) in raw.items.get_ref().iter().enumerate() {
        let item_id = item.id.get_ref().trim();
        let valid_id = !item_id.is_empty()
            && item_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_id {
            return Err(cx.err(
                item.id.span(),
                format!("items[{n}].id"),
                format!("{item_id:?} is not a valid item id; expected letters, digits, '_' or '-' (it is also a CSV column name)"),
            ));
        }
        if let Some(first) = folded_ids.get(&item_id.to_ascii_lowercase()) {
            return Err(cx.err(
                item.id.span(),
                format!("items[{n}].id"),
                format!("duplicate item id {item_id:?} (items[{first}] has the same id up to letter case); item ids must be unique, ignoring case, since they name CSV columns"),
            ));
        }
        folded_ids.insert(item_id.to_ascii_lowercase(), n);
        let Some(scale) = scales.iter().position(|s| s.name == *item.scale.get_ref()) else {
            let known: Vec<_> = scales.iter().map(|s| s.name.as_str()).collect();
            return Err(cx.err(
                item.scale.span(),
                format!("items[{n}].scale"),
                format!(
                    "unknown scale {:?}; defined scales: {}",
                    item.scale.get_ref(),
                    known.join(", ")
                ),
            ));
        };
        if item.text.get_ref().trim().is_empty() {
            return Err(cx.err(
                item.text.span(),
                format!("items[{n}].text"),
                "must not be empty".into(),
            ));
        }
        no_control(
            cx,
            item.text.span(),
            &format!("items[{n}].text"),
            item.text.get_ref(),
        )?;
        items.push(Item {
            id: item_id.to_string(),
            construct: item.construct.trim().to_string(),
            scale,
            text: item.text.get_ref().trim().to_string(),
        });
    }
    Ok(items)
}

/// One formula per dimension (sorted by dimension), each term naming items the survey
/// defines.
fn formulas(cx: &Ctx<'_>, raw: &RawSurvey, items: &[Item]) -> Result<Vec<Formula>, SurveyError> {
    let mut formulas: Vec<Formula> = Vec::new();
    if raw.dimensions.is_empty() {
        return Err(SurveyError::Invalid {
            origin: cx.origin.to_string(),
            line: 1,
            field: "dimensions".into(),
            message: "no formula; expected at least one [dimensions.CODE] table".into(),
        });
    }
    for (key, dim) in &raw.dimensions {
        let dimension = dimension(cx, key, dim)?;
        let field = format!("dimensions.{}.terms", dimension.code());
        if dim.terms.get_ref().is_empty() {
            return Err(cx.err(
                dim.terms.span(),
                field,
                "no terms; expected at least one { coef, plus, minus } term".into(),
            ));
        }
        let mut terms = Vec::new();
        for (t, term) in dim.terms.get_ref().iter().enumerate() {
            terms.push(self::term(cx, &format!("{field}[{t}]"), term, items)?);
        }
        formulas.push(Formula { dimension, terms });
    }
    formulas.sort_by_key(|f| f.dimension);
    if let Some(w) = formulas
        .windows(2)
        .find(|w| w[0].dimension == w[1].dimension)
    {
        return Err(SurveyError::Invalid {
            origin: cx.origin.to_string(),
            line: 1,
            field: "dimensions".into(),
            message: format!(
                "dimension {} is defined twice (keys differ only in case)",
                w[0].dimension
            ),
        });
    }

    Ok(formulas)
}

/// The dimension a `[dimensions.CODE]` table defines, made known with its name and meaning.
fn dimension(cx: &Ctx<'_>, key: &str, dim: &RawDimension) -> Result<Dimension, SurveyError> {
    let text = |v: &Option<Spanned<String>>, what: &str| -> Result<Option<String>, SurveyError> {
        let Some(v) = v else { return Ok(None) };
        let field = format!("dimensions.{key}.{what}");
        if v.get_ref().trim().is_empty() {
            return Err(cx.err(v.span(), field, "must not be empty".into()));
        }
        no_control(cx, v.span(), &field, v.get_ref())?;
        Ok(Some(v.get_ref().trim().to_string()))
    };
    let name = text(&dim.name, "name")?;
    let meaning = match (text(&dim.high, "high")?, text(&dim.low, "low")?) {
        (Some(h), Some(l)) => Some((h, l)),
        (None, None) => None,
        (h, _) => {
            let (given, missing) = if h.is_some() {
                ("high", "low")
            } else {
                ("low", "high")
            };
            return Err(cx.err(
                dim.terms.span(),
                format!("dimensions.{key}.{missing}"),
                format!("is missing; `{given}` needs `{missing}` beside it (what a high and a low score mean)"),
            ));
        }
    };
    Dimension::register(
        key,
        name.as_deref(),
        meaning.as_ref().map(|(h, l)| (h.as_str(), l.as_str())),
    )
    .map_err(|m| cx.err(dim.terms.span(), format!("dimensions.{key}"), m))
}

/// One term of a formula (`tfield` names it in errors).
fn term(cx: &Ctx<'_>, tfield: &str, term: &RawTerm, items: &[Item]) -> Result<Term, SurveyError> {
    let coef = *term.coef.get_ref();
    if !(coef.is_finite() && coef.abs() <= super::model::MAX_COEF) {
        return Err(cx.err(
            term.coef.span(),
            format!("{tfield}.coef"),
            format!(
                "is {coef:e}; expected a finite number from -{m} to {m}",
                m = super::model::MAX_COEF
            ),
        ));
    }
    let resolve =
        |which: &str, name: &Option<Spanned<String>>| -> Result<Option<usize>, SurveyError> {
            match name {
                None => Ok(None),
                Some(name) => items
                    .iter()
                    .position(|i| i.id == name.get_ref().trim())
                    .map(Some)
                    .ok_or_else(|| {
                        cx.err(
                            name.span(),
                            format!("{tfield}.{which}"),
                            format!(
                                "names item {:?}, which the survey does not define",
                                name.get_ref()
                            ),
                        )
                    }),
            }
        };
    let plus = resolve("plus", &term.plus)?;
    let minus = resolve("minus", &term.minus)?;
    if plus.is_none() && minus.is_none() {
        return Err(cx.err(
            term.coef.span(),
            tfield.to_string(),
            "needs an item: expected `plus`, `minus` or both".into(),
        ));
    }
    Ok(Term {
        coef: *term.coef.get_ref(),
        plus,
        minus,
    })
}

/// The survey's own constants (`[constants]`), each finite and bounded.
fn constants(
    cx: &Ctx<'_>,
    raw: &RawSurvey,
    formulas: &[Formula],
) -> Result<DimScores, SurveyError> {
    let mut given_constants = DimScores::default();
    for (key, value) in &raw.constants {
        let d = Dimension::lookup(key)
            .filter(|d| formulas.iter().any(|f| f.dimension == *d))
            .ok_or_else(|| {
                let defined: Vec<&str> = formulas.iter().map(|f| f.dimension.code()).collect();
                cx.err(
                    value.span(),
                    format!("constants.{key}"),
                    format!(
                        "the survey has no formula for {key:?}; expected one of {}",
                        defined.join(", ")
                    ),
                )
            })?;
        let v = *value.get_ref();
        if !(v.is_finite() && v.abs() <= crate::dimension::MAX_SCORE) {
            return Err(cx.err(
                value.span(),
                format!("constants.{key}"),
                format!(
                    "is {v:e}; expected a finite number from -{m} to {m}",
                    m = crate::dimension::MAX_SCORE
                ),
            ));
        }
        given_constants.set(d, Some(*value.get_ref()));
    }
    Ok(given_constants)
}
