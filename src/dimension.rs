//! Scored dimensions (Hofstede's six built in, a survey file's own codes made known when it is
//! loaded) and a small fixed-size map keyed by them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Largest magnitude a target score or a constant may have (published indices are about
/// 0..120): bounded so that no finite input can make an index or a loss overflow.
pub const MAX_SCORE: f64 = 1000.0;

/// Most dimension codes one process knows (Hofstede's six and every survey's or stored
/// result's own): a bound, so that a [`DimScores`] stays a small fixed-size value.
pub const MAX_DIMS: usize = 32;

/// A scored dimension, named by its code. Hofstede's six are built in, in the canonical
/// order PDI, IDV, MAS, UAI, LTO, IVR; a survey file adds its own codes
/// ([`Dimension::register`]), which then sort after them in the order they became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dimension(u8);

/// What the process knows about one dimension.
#[derive(Debug, Clone, Copy)]
struct Entry {
    code: &'static str,
    name: &'static str,
    /// What a high and a low score mean, in words (the ICL profile's wording).
    meaning: Option<(&'static str, &'static str)>,
}

const BUILTIN: [(&str, &str); 6] = [
    ("PDI", "Power Distance"),
    ("IDV", "Individualism"),
    ("MAS", "Masculinity"),
    ("UAI", "Uncertainty Avoidance"),
    ("LTO", "Long-Term Orientation"),
    ("IVR", "Indulgence"),
];

fn registry() -> &'static std::sync::RwLock<Vec<Entry>> {
    static R: std::sync::OnceLock<std::sync::RwLock<Vec<Entry>>> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let six = BUILTIN.map(|(code, name)| Entry {
            code,
            name,
            meaning: None,
        });
        std::sync::RwLock::new(six.to_vec())
    })
}

fn entry(d: Dimension) -> Entry {
    let r = registry().read().unwrap_or_else(|e| e.into_inner());
    r[usize::from(d.0)]
}

#[allow(non_upper_case_globals)]
impl Dimension {
    /// Power distance.
    pub const Pdi: Dimension = Dimension(0);
    /// Individualism versus collectivism.
    pub const Idv: Dimension = Dimension(1);
    /// Masculinity versus femininity (motivation towards achievement and success).
    pub const Mas: Dimension = Dimension(2);
    /// Uncertainty avoidance.
    pub const Uai: Dimension = Dimension(3);
    /// Long-term versus short-term orientation.
    pub const Lto: Dimension = Dimension(4);
    /// Indulgence versus restraint.
    pub const Ivr: Dimension = Dimension(5);

    /// Hofstede's six dimensions in canonical order.
    pub const HOFSTEDE: [Dimension; 6] = [
        Dimension::Pdi,
        Dimension::Idv,
        Dimension::Mas,
        Dimension::Uai,
        Dimension::Lto,
        Dimension::Ivr,
    ];

    /// The upper-case code, e.g. `"PDI"`.
    pub fn code(self) -> &'static str {
        entry(self).code
    }

    /// The dimension's full English name (the code itself when no survey named it).
    pub fn name(self) -> &'static str {
        entry(self).name
    }

    /// What a high and a low score mean in words, when a survey file said so.
    pub fn meaning(self) -> Option<(&'static str, &'static str)> {
        entry(self).meaning
    }

    /// Whether this is one of Hofstede's six.
    pub fn is_hofstede(self) -> bool {
        usize::from(self.0) < BUILTIN.len()
    }

    /// The position of this dimension among every known one (Hofstede's six first): the
    /// index into a [`DimScores`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The known dimension with this code (matched without regard to ASCII case).
    pub fn lookup(code: &str) -> Option<Dimension> {
        let code = code.trim();
        let r = registry().read().unwrap_or_else(|e| e.into_inner());
        r.iter()
            .position(|e| e.code.eq_ignore_ascii_case(code))
            .map(|i| Dimension(i as u8))
    }

    /// Every known dimension, in order.
    pub fn known() -> Vec<Dimension> {
        let n = registry().read().unwrap_or_else(|e| e.into_inner()).len();
        (0..n).map(|i| Dimension(i as u8)).collect()
    }

    /// The dimension with this code, made known if it is new: 1 to 16 ASCII letters, digits
    /// or `_`, starting with a letter, stored upper-case. `name` and `meaning` (what a high
    /// and a low score mean) are kept for a new code, and fill in a code known only by name
    /// so far; Hofstede's six keep theirs. Refused past [`MAX_DIMS`] codes.
    pub fn register(
        code: &str,
        name: Option<&str>,
        meaning: Option<(&str, &str)>,
    ) -> Result<Dimension, String> {
        let code = code.trim();
        let valid = (1..=16).contains(&code.len())
            && code.starts_with(|c: char| c.is_ascii_alphabetic())
            && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "{:?} is not a dimension code; expected 1 to 16 letters, digits or '_', starting with a letter (e.g. PDI)",
                crate::csv_lines::cut(code)
            ));
        }
        let leak = |s: &str| -> &'static str { Box::leak(s.trim().to_string().into_boxed_str()) };
        let mut r = registry().write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = r.iter().position(|e| e.code.eq_ignore_ascii_case(code)) {
            let e = &mut r[i];
            if i >= BUILTIN.len() {
                if let Some(n) = name.filter(|_| e.name == e.code) {
                    e.name = leak(n);
                }
                if let (None, Some((h, l))) = (e.meaning, meaning) {
                    e.meaning = Some((leak(h), leak(l)));
                }
            }
            return Ok(Dimension(i as u8));
        }
        if r.len() >= MAX_DIMS {
            return Err(format!(
                "too many dimension codes: at most {MAX_DIMS} in one run of culturetune"
            ));
        }
        let upper = leak(&code.to_ascii_uppercase());
        r.push(Entry {
            code: upper,
            name: name.map_or(upper, leak),
            meaning: meaning.map(|(h, l)| (leak(h), leak(l))),
        });
        Ok(Dimension((r.len() - 1) as u8))
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Dimension {
    type Err = String;

    /// Parses a known dimension code case-insensitively (`"pdi"`, `"PDI"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::lookup(s).ok_or_else(|| {
            let known: Vec<&str> = Dimension::known().iter().map(|d| d.code()).collect();
            format!(
                "unknown dimension {:?}; expected one of {}",
                crate::csv_lines::cut(s),
                known.join(", ")
            )
        })
    }
}

impl Serialize for Dimension {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Dimension {
    /// A stored code: known, or made known (a result of a survey not loaded in this process).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Dimension::register(&code, None, None).map_err(serde::de::Error::custom)
    }
}

/// A value per dimension, any of which may be absent (a region without a published score,
/// a survey that does not define a dimension). Serialises as a map `{"PDI": 40.0, ...}` of the
/// present values in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "BTreeMap<Dimension, f64>", from = "BTreeMap<Dimension, f64>")]
pub struct DimScores([Option<f64>; MAX_DIMS]);

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
    /// Builds a map with Hofstede's six values present, in canonical order.
    pub fn full(values: [f64; 6]) -> Self {
        let mut s = DimScores::default();
        for (d, v) in Dimension::HOFSTEDE.into_iter().zip(values) {
            s.set(d, Some(v));
        }
        s
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
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (Dimension(i as u8), v)))
    }

    /// The dimensions with a value, in canonical order.
    pub fn dims(&self) -> Vec<Dimension> {
        self.iter().map(|(d, _)| d).collect()
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
    fn a_survey_s_own_codes_are_made_known_once() {
        let a = Dimension::register("tst_a", Some("Test A"), Some(("high", "low"))).unwrap();
        assert_eq!((a.code(), a.name()), ("TST_A", "Test A"));
        assert!(!a.is_hofstede() && a > Dimension::Ivr);
        assert_eq!(
            Dimension::register("TST_A", Some("Other"), None).unwrap(),
            a
        );
        assert_eq!(a.name(), "Test A", "the first name stays");
        assert_eq!("tst_a".parse::<Dimension>().unwrap(), a);
        assert_eq!(
            Dimension::register("pdi", Some("x"), None).unwrap(),
            Dimension::Pdi
        );
        assert_eq!(Dimension::Pdi.name(), "Power Distance");
        for bad in ["", "1ab", "a b", "abcdefghijklmnopq"] {
            assert!(Dimension::register(bad, None, None).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#""TST_A""#);
        let mut s = DimScores::default();
        s.set(a, Some(2.0));
        s.set(Dimension::Idv, Some(1.0));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"IDV":1.0,"TST_A":2.0}"#
        );
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
