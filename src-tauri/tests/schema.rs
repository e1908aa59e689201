//! The front end's types of the worker's event stream (ui/src/events.ts) against the Rust
//! schema they describe: every event variant with exactly its fields, and every error code,
//! run status and method label. A field added on one side only fails here.

use culturetune::dimension::DimScores;
use culturetune::error_code::ErrorCode;
use culturetune::events::Event;
use culturetune::store::{MethodLabel, RunStatus};
use std::collections::{BTreeMap, BTreeSet};

/// One event of every variant, every optional field present.
fn samples() -> Vec<Event> {
    let s = DimScores::full([1.0; 6]);
    let all = vec![
        Event::Started {
            run: 1,
            region: "USA".into(),
            survey: "vsm13".into(),
            heldout_survey: "vsm13-alt".into(),
            max_evals: Some(12),
            resumed: false,
        },
        Event::Progress {
            run: Some(1),
            stage: "calibrating vsm13".into(),
            done: 1,
            total: 2,
        },
        Event::Evaluation {
            run: 1,
            method: MethodLabel::Tuned,
            survey: "vsm13".into(),
            indices: s,
            loss: 1.0,
            loss_mean: 1.0,
            dims_used: 6,
            digit_mass: 1.0,
            gap_closed: Some(s),
        },
        Event::Generation {
            run: 1,
            generation: 0,
            evals: 4,
            max_evals: Some(12),
            best_loss: 1.0,
            mean_loss: 2.0,
            best_scores: s,
            elapsed_s: 1.0,
            eta_s: Some(2.0),
        },
        Event::Finished {
            run: 1,
            status: RunStatus::Done,
            best_loss: Some(1.0),
            evals: 12,
            elapsed_s: 3.0,
        },
        Event::Error {
            run: None,
            code: ErrorCode::Engine,
            message: "m".into(),
        },
    ];
    // Exhaustive: a new variant does not compile until it has a sample above.
    for e in &all {
        match e {
            Event::Started { .. }
            | Event::Progress { .. }
            | Event::Evaluation { .. }
            | Event::Generation { .. }
            | Event::Finished { .. }
            | Event::Error { .. } => {}
        }
    }
    all
}

fn ts() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/events.ts")).unwrap()
}

/// `event name -> field names` of the `interface ...Event { ... }` blocks.
fn ts_events(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for block in text.split("export interface ").skip(1) {
        let body = &block[block.find('{').unwrap() + 1..block.find('}').unwrap()];
        let mut fields = BTreeSet::new();
        let mut name = None;
        for part in body.split(';') {
            let Some((field, ty)) = part.split_once(':') else {
                continue;
            };
            let field = field.trim().trim_end_matches('?').to_string();
            if field == "event" {
                name = Some(ty.trim().trim_matches('"').to_string());
            }
            fields.insert(field);
        }
        out.insert(name.expect("an event field"), fields);
    }
    out
}

/// The string literals of `export type NAME = "a" | "b" ...;`.
fn ts_union(text: &str, name: &str) -> BTreeSet<String> {
    let start = text.find(&format!("export type {name} =")).unwrap();
    let decl = &text[start..start + text[start..].find(';').unwrap()];
    decl.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn the_front_ends_event_types_match_the_rust_schema() {
    let text = ts();
    let declared = ts_events(&text);
    let mut expected = BTreeMap::new();
    for e in samples() {
        let v = serde_json::to_value(&e).unwrap();
        let o = v.as_object().unwrap();
        let name = o["event"].as_str().unwrap().to_string();
        expected.insert(name, o.keys().cloned().collect::<BTreeSet<_>>());
    }
    assert_eq!(
        declared, expected,
        "ui/src/events.ts vs culturetune::events::Event"
    );

    let names = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        ts_union(&text, "ErrorCode"),
        names(ErrorCode::ALL.map(|c| c.as_str().to_string()).to_vec())
    );
    assert_eq!(
        ts_union(&text, "RunStatus"),
        names(RunStatus::ALL.map(|c| c.as_str().to_string()).to_vec())
    );
    assert_eq!(
        ts_union(&text, "MethodLabel"),
        names(MethodLabel::ALL.map(|c| c.as_str().to_string()).to_vec())
    );
}
