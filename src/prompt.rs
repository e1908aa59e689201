//! Prompt wording: the persona of the *naive* method, the in-context (*ICL*) profile, the
//! respondent panel, and the chat messages for one survey item. Pure text, no model.
//!
//! Layout of every item prompt (system message, then user message):
//!
//! ```text
//! system: <PERSONA BLOCK> <instructions> <respondent sentence>
//! user:   <item text> <numbered answer options> <answer request>
//! ```
//!
//! The persona block comes first so that only the chat template's opening tokens precede it;
//! it is the part a soft prompt replaces, and everything after it is shared between items
//! and respondents as far as the text allows (the engine decodes it as a prefix tree).

use crate::dimension::Dimension;
use crate::regions::Region;
use crate::soft_prompt::AnswerAnchor;
use crate::survey::{Item, Survey};
use serde::{Deserialize, Serialize};

/// Text that opens the assistant turn of every item prompt, so the next token is the answer.
pub const ANSWER_PREFIX: &str = "Answer: ";

/// The instruction after the persona block in a chat.
pub const CHAT_INSTRUCTIONS: &str = "Answer in a few sentences, from your own point of view.";

/// A prompting method compared on the same measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Persona only: "you are a person from <region>".
    Naive,
    /// Persona plus a short description of the region's published cultural profile.
    Icl,
}

/// Instructions shared by every item, after the persona block.
pub const INSTRUCTIONS: &str = "You are taking part in a survey. Answer each question honestly, \
from your own point of view, by choosing one of the numbered options. Reply with the number only.";

/// The request that closes each user message, unless the survey words its own: `{first}` and
/// `{last}` are the scale's lowest and highest code ("Reply with one number from 1 to 5.").
pub const ANSWER_REQUEST: &str = "Reply with one number from {first} to {last}.";

/// The request of an item: the survey's wording or [`ANSWER_REQUEST`], with its scale's codes.
pub fn answer_request(survey: &Survey, item: &Item) -> String {
    let (first, last) = survey.scale_of(item).range();
    survey
        .request
        .as_deref()
        .unwrap_or(ANSWER_REQUEST)
        .replace("{first}", &first.to_string())
        .replace("{last}", &last.to_string())
}

/// The natural name of a region for a sentence ("the United States"), from its table name.
pub fn display_name(region: &Region) -> String {
    let special = match region.code.as_str() {
        "USA" => Some("the United States"),
        "GBR" => Some("Great Britain"),
        "ARA" => Some("an Arab country"),
        "KOR" => Some("South Korea"),
        "CZE" => Some("the Czech Republic"),
        "SLK" => Some("Slovakia"),
        "DOM" => Some("the Dominican Republic"),
        "KYR" => Some("Kyrgyzstan"),
        "MAC" => Some("North Macedonia"),
        "NET" => Some("the Netherlands"),
        "PHI" => Some("the Philippines"),
        "AFE" => Some("East Africa"),
        "AFW" => Some("West Africa"),
        "GEE" => Some("East Germany"),
        "BEF" => Some("French-speaking Belgium"),
        "BEN" => Some("Dutch-speaking Belgium"),
        "CAF" => Some("French-speaking Canada"),
        "SWF" => Some("French-speaking Switzerland"),
        "SWG" => Some("German-speaking Switzerland"),
        "SAW" => Some("South Africa (white population)"),
        _ => None,
    };
    special.map_or_else(|| region.name.clone(), str::to_string)
}

/// The naive persona sentence for a region.
pub fn persona(region: &Region) -> String {
    format!("You are a person from {}.", display_name(region))
}

/// The ICL persona block: the persona plus the region's published profile in words.
pub fn icl_persona(region: &Region) -> String {
    let mut s = persona(region);
    if region.scores.iter().all(|(d, _)| d.is_hofstede()) {
        s.push_str(" On Hofstede's cultural dimensions (0 to 100), your society scores:");
    } else {
        s.push_str(" On the survey's cultural dimensions, your society scores:");
    }
    for (d, v) in region.scores.iter() {
        let level = if v < 35.0 {
            "low"
        } else if v > 65.0 {
            "high"
        } else {
            "moderate"
        };
        s.push_str(&format!(
            " {} {v:.0} ({level}, {});",
            d.name().to_lowercase(),
            meaning(d, level)
        ));
    }
    s.pop();
    s.push('.');
    s
}

/// What a level of a dimension means: Hofstede's six in culturetune's words, another
/// dimension in its survey file's (`high`, `low`), "in between" for a moderate score.
fn meaning(d: Dimension, level: &str) -> &'static str {
    let high = level == "high";
    let low = level == "low";
    if let Some((h, l)) = d.meaning() {
        return match level {
            "high" => h,
            "low" => l,
            _ => "in between",
        };
    }
    match d {
        Dimension::Pdi if high => "people accept hierarchy and unequal power",
        Dimension::Pdi if low => "people expect power to be shared and question authority",
        Dimension::Idv if high => "people look after themselves and their close family",
        Dimension::Idv if low => {
            "people belong to close groups that care for them in return for loyalty"
        }
        Dimension::Mas if high => "society is driven by competition, achievement and success",
        Dimension::Mas if low => "caring for others and quality of life matter most",
        Dimension::Uai if high => "people feel uneasy with ambiguity and prefer clear rules",
        Dimension::Uai if low => "people are relaxed about uncertainty and flexible about rules",
        Dimension::Lto if high => "people value persistence, thrift and preparing for the future",
        Dimension::Lto if low => "people value tradition and quick results",
        Dimension::Ivr if high => "people freely enjoy life and having fun",
        Dimension::Ivr if low => "people restrain their desires under strict social norms",
        _ => "in between",
    }
}

/// The persona block of a method for a region.
pub fn persona_block(method: Method, region: &Region) -> String {
    match method {
        Method::Naive => persona(region),
        Method::Icl => icl_persona(region),
    }
}

/// The text a soft prompt starts from in the answer-side placement: the first words of the
/// assistant's turn, right before its answer opening ("Speaking as a person from China.
/// Answer: "). With z = 0 the soft prompt is exactly these words, so the starting point is a
/// meaningful hard prompt (the naive persona in the system message plus this sentence).
pub fn answer_anchor(region: &Region) -> String {
    format!("Speaking as a person from {}.", display_name(region))
}

/// The two texts around an answer-side soft prompt: what its rows stand for at z = 0, and
/// the answer opening after them. Together they open the assistant's turn.
pub fn answer_parts(anchor: AnswerAnchor, region: &Region) -> (String, String) {
    match anchor {
        AnswerAnchor::Persona => (answer_anchor(region), format!(" {ANSWER_PREFIX}")),
        // "Answer: " split where the tokenizer splits it: "Answer", ":" | " ".
        AnswerAnchor::Opening => (
            ANSWER_PREFIX.trim_end().to_string(),
            ANSWER_PREFIX[ANSWER_PREFIX.trim_end().len()..].to_string(),
        ),
    }
}

/// One member of the respondent panel; the panel's answers are averaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Respondent {
    /// Short label, e.g. `woman 35-54`.
    pub label: String,
    /// The sentence added to the system message ("" for the single neutral respondent).
    pub sentence: String,
}

/// A panel of `n` respondents varying gender and age group, in a fixed order. `n = 1` is a
/// single neutral respondent; larger panels take (woman, man) x (35-54, 18-34, 55+) in turn.
pub fn panel(n: usize) -> Vec<Respondent> {
    if n <= 1 {
        return vec![Respondent {
            label: "anyone".into(),
            sentence: String::new(),
        }];
    }
    let ages = ["35 to 54", "18 to 34", "55 or older"];
    let mut out = Vec::new();
    'outer: for age in ages {
        for gender in ["woman", "man"] {
            if out.len() == n {
                break 'outer;
            }
            out.push(Respondent {
                label: format!(
                    "{gender} {}",
                    age.replace(" to ", "-").replace(" or older", "+")
                ),
                sentence: format!(" You are a {gender} aged {age}."),
            });
        }
    }
    out
}

/// The largest panel [`panel`] can build.
pub const MAX_PANEL: usize = 6;

/// The system message of an item prompt.
pub fn system_message(persona_block: &str, respondent: &Respondent) -> String {
    format!("{persona_block} {INSTRUCTIONS}{}", respondent.sentence)
}

/// The user message of an item: the question and its options, numbered by the scale's codes.
/// With `reversed`, the labels are listed from the last code's down to the first's (numbered
/// in ascending order as shown), for counterbalancing; the answer at shown position i then
/// means the label at position n - 1 - i.
pub fn user_message(survey: &Survey, item: &Item, reversed: bool) -> String {
    let scale = survey.scale_of(item);
    let n = scale.len();
    let mut s = format!("{}\n", item.text);
    for i in 0..n {
        let label = if reversed {
            &scale.labels[n - 1 - i]
        } else {
            &scale.labels[i]
        };
        s.push_str(&format!("\n{}. {label}", scale.code(i)));
    }
    s.push_str("\n\n");
    s.push_str(&answer_request(survey, item));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::RegionTable;

    #[test]
    fn personas_name_the_region_naturally() {
        let t = RegionTable::builtin();
        assert_eq!(
            persona(t.find("USA").unwrap()),
            "You are a person from the United States."
        );
        assert_eq!(
            persona(t.find("CHI").unwrap()),
            "You are a person from China."
        );
        let icl = icl_persona(t.find("CHI").unwrap());
        assert!(
            icl.starts_with("You are a person from China. On Hofstede"),
            "{icl}"
        );
        assert!(
            icl.contains("power distance 80 (high, people accept hierarchy"),
            "{icl}"
        );
        assert!(icl.contains("individualism 20 (low,"), "{icl}");
        assert!(icl.ends_with("strict social norms)."), "{icl}");
        assert_eq!(
            answer_anchor(t.find("ARA").unwrap()),
            "Speaking as a person from an Arab country."
        );
        // Saudi Arabia has two published dimensions: only those are described.
        let sau = icl_persona(t.find("SAU").unwrap());
        assert!(
            !sau.contains("power distance") && sau.contains("indulgence 52"),
            "{sau}"
        );
    }

    #[test]
    fn panel_is_ordered_and_bounded() {
        assert_eq!(panel(1).len(), 1);
        assert_eq!(panel(1)[0].sentence, "");
        let p = panel(4);
        let labels: Vec<_> = p.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["woman 35-54", "man 35-54", "woman 18-34", "man 18-34"]
        );
        assert_eq!(p[1].sentence, " You are a man aged 35 to 54.");
        assert_eq!(panel(99).len(), MAX_PANEL);
    }

    #[test]
    fn reversed_options_list_code_5_first() {
        let s = Survey::builtin("vsm13").unwrap();
        let item = &s.items[19]; // q20: never .. always
        let fwd = user_message(&s, item, false);
        let rev = user_message(&s, item, true);
        assert!(
            fwd.contains("\n1. never\n") && fwd.contains("\n5. always\n"),
            "{fwd}"
        );
        assert!(
            rev.contains("\n1. always\n") && rev.contains("\n5. never\n"),
            "{rev}"
        );
    }
}
