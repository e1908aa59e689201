//! The six Hofstede dimensions and a small fixed-size map keyed by them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Largest magnitude a target score or a constant may have (published indices are about
/// 0..120): bounded so that no finite input can make an index or a loss overflow.
pub const MAX_SCORE: f64 = 1000.0;

/// One of Hofstede's six cultural dimensions, in the canonical order PDI, IDV, MAS, UAI, LTO, IVR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Dimension {
    /// Power distance.
    Pdi,
    /// Individualism versus collectivism.
    Idv,
    /// Masculinity versus femininity (motivation towards achievement and success).
    Mas,
    /// Uncertainty avoidance.
    Uai,
    /// Long-term versus short-term orientation.
    Lto,
    /// Indulgence versus restraint.
    Ivr,
}

impl Dimension {
    /// All six dimensions in canonical order.
    pub const ALL: [Dimension; 6] = [
        Dimension::Pdi,
        Dimension::Idv,
        Dimension::Mas,
        Dimension::Uai,
        Dimension::Lto,
        Dimension::Ivr,
    ];

    /// The three-letter upper-case code, e.g. `"PDI"`.
    pub fn code(self) -> &'static str {
        match self {
            Dimension::Pdi => "PDI",
            Dimension::Idv => "IDV",
            Dimension::Mas => "MAS",
            Dimension::Uai => "UAI",
            Dimension::Lto => "LTO",
            Dimension::Ivr => "IVR",
        }
    }

    /// The dimension's full English name.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Pdi => "Power Distance",
            Dimension::Idv => "Individualism",
            Dimension::Mas => "Masculinity",
            Dimension::Uai => "Uncertainty Avoidance",
            Dimension::Lto => "Long-Term Orientation",
            Dimension::Ivr => "Indulgence",
        }
    }

    /// Position of this dimension in [`Dimension::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Dimension {
    type Err = String;

    /// Parses a dimension code case-insensitively (`"pdi"`, `"PDI"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown dimension {s:?}; expected one of PDI, IDV, MAS, UAI, LTO, IVR")
            })
    }
}

/// A value per dimension, any of which may be absent (a region without a published score,
/// a survey that does not define a dimension). Serialises as a map `{"PDI": 40.0, ...}` of the
/// present values in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "BTreeMap<Dimension, f64>", from = "BTreeMap<Dimension, f64>")]
pub struct DimScores(pub [Option<f64>; 6]);

impl From<DimScores> for BTreeMap<Dimension, f64> {
    fn from(s: DimScores) -> Self {
        s.iter().collect()
    }
}

impl From<BTreeMap<Dimension, f64>> for DimScores {
    fn from(m: BTreeMap<Dimension, f64>) -> Self {
        let mut s = DimScores::default();
        for (d, v) in m {
            s.set(d, Some(v));
        }
        s
    }
}

impl DimScores {
    /// Builds a map with all six values present, in canonical order.
    pub fn full(values: [f64; 6]) -> Self {
        DimScores(values.map(Some))
    }

    /// The value for `d`, if present.
    pub fn get(&self, d: Dimension) -> Option<f64> {
        self.0[d.index()]
    }

    /// Sets the value for `d`.
    pub fn set(&mut self, d: Dimension, value: Option<f64>) {
        self.0[d.index()] = value;
    }

    /// The present values, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (Dimension, f64)> + '_ {
        Dimension::ALL
            .into_iter()
            .filter_map(|d| self.get(d).map(|v| (d, v)))
    }

    /// How many dimensions have a value.
    pub fn count(&self) -> usize {
        self.0.iter().filter(|v| v.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_case_insensitively() {
        assert_eq!("pdi".parse::<Dimension>().unwrap(), Dimension::Pdi);
        assert_eq!(" IVR ".parse::<Dimension>().unwrap(), Dimension::Ivr);
        let err = "XYZ".parse::<Dimension>().unwrap_err();
        assert!(err.contains("XYZ") && err.contains("PDI"), "{err}");
    }

    #[test]
    fn dimscores_iterates_present_values_in_order() {
        let mut s = DimScores::default();
        s.set(Dimension::Ivr, Some(3.0));
        s.set(Dimension::Pdi, Some(1.0));
        let v: Vec<_> = s.iter().collect();
        assert_eq!(v, vec![(Dimension::Pdi, 1.0), (Dimension::Ivr, 3.0)]);
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn dimscores_serialises_as_a_map_in_canonical_order() {
        let mut s = DimScores::default();
        s.set(Dimension::Ivr, Some(3.5));
        s.set(Dimension::Pdi, Some(1.0));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"PDI":1.0,"IVR":3.5}"#);
        let back: DimScores = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
