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
            items: Some(culturetune::item_fit::ItemFit {
                train: 1.0,
                heldout: Some(1.0),
                per_item: [("q01".to_string(), 1.0)].into_iter().collect(),
            }),
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

/// `interface name -> (field names, whether it has an index signature)` of every
/// `export interface NAME { ... }` in a TypeScript file (one level of braces).
fn ts_interfaces(text: &str) -> BTreeMap<String, (BTreeSet<String>, bool)> {
    let mut out = BTreeMap::new();
    for block in text.split("export interface ").skip(1) {
        let name = block[..block.find(|c: char| !c.is_alphanumeric()).unwrap()].to_string();
        let body = &block[block.find('{').unwrap() + 1..block.find('}').unwrap()];
        let mut fields = BTreeSet::new();
        let mut open = false;
        for part in body.split(';') {
            let Some((field, _)) = part.split_once(':') else {
                continue;
            };
            let field = field.trim();
            if field.starts_with('[') {
                open = true;
                continue;
            }
            fields.insert(field.trim_end_matches('?').to_string());
        }
        out.insert(name, (fields, open));
    }
    out
}

fn keys<T: serde::Serialize>(v: &T) -> BTreeSet<String> {
    let v = serde_json::to_value(v).unwrap();
    v.as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect()
}

/// One value of every report type the window reads, every optional field present, keyed by
/// the name of its TypeScript interface in ui/src/api.ts.
fn report_samples() -> Vec<(&'static str, BTreeSet<String>)> {
    use culturetune::engine::file_report::FileReport;
    use culturetune::engine::offload::{Device, DeviceKind, LayerPlan};
    use culturetune::store::{EvaluationRecord, RunRecord};
    use culturetune::tuning::history::*;
    use culturetune::tuning::report::Comparison;
    use culturetune::tuning::TuneConfig;
    let s = DimScores::full([1.0; 6]);
    let mut config = TuneConfig::new("USA", "m.gguf", "ab", 1);
    config.region_row = culturetune::regions::RegionTable::builtin()
        .find("USA")
        .ok()
        .cloned();
    let run = RunRecord {
        id: 1,
        region: "USA".into(),
        survey: "vsm13".into(),
        method: MethodLabel::Naive,
        model_sha256: "ab".into(),
        config: serde_json::to_value(&config).unwrap(),
        seed: 1,
        status: RunStatus::Done,
        error: Some("e".into()),
        created_at: "t".into(),
        updated_at: "t".into(),
    };
    let summary = RunSummary {
        id: 1,
        status: RunStatus::Done,
        region: "USA".into(),
        survey: "vsm13".into(),
        seed: 1,
        evals: Some(1),
        best_loss: Some(1.0),
        created_at: "t".into(),
        updated_at: "t".into(),
        error: Some("e".into()),
    };
    let point = TrajectoryPoint {
        generation: 0,
        evals: 1,
        best_loss: 1.0,
        mean_loss: 1.0,
        best_scores: s,
        elapsed_s: 1.0,
    };
    let evaluation = EvaluationRecord {
        run_id: Some(1),
        model_sha256: "ab".into(),
        method: MethodLabel::Tuned,
        survey: "vsm13".into(),
        region: "USA".into(),
        constants: serde_json::json!({"policy": "zero"}),
        indices: s,
        loss: 1.0,
        loss_mean: 1.0,
        dims_used: 6,
        digit_mass: 1.0,
        items: Some(culturetune::item_fit::ItemFit {
            train: 1.0,
            heldout: Some(1.0),
            per_item: [("q01".to_string(), 1.0)].into_iter().collect(),
        }),
    };
    let region = culturetune::regions::RegionTable::builtin()
        .find("USA")
        .unwrap()
        .clone();
    let comparison = Comparison::from_evaluations(
        &region,
        &culturetune::scoring::Constants::Zero,
        &[],
        "vsm13",
        "vsm13-alt",
        None,
    );
    let detail = RunDetail {
        run: run.clone(),
        trajectory: vec![point.clone()],
        evaluations: vec![evaluation.clone()],
        config: config.clone(),
        comparison,
    };
    let losses = Losses {
        naive: Some(1.0),
        icl: Some(1.0),
        tuned: Some(1.0),
    };
    let spread = Spread::of(&[1.0, 2.0]);
    let seeds = SeedSpread {
        runs: vec![1],
        train: spread,
        heldout: spread,
    };
    let row = CompareRow {
        region: "USA".into(),
        name: "U.S.A.".into(),
        run: Some(1),
        train: Some(losses),
        heldout: Some(losses),
        train_survey: Some("vsm13".into()),
        heldout_survey: Some("vsm13-alt".into()),
        seeds: Some(seeds.clone()),
    };
    let device = Device {
        name: "d".into(),
        description: "d".into(),
        backend: "CPU".into(),
        kind: DeviceKind::Cpu,
        free_bytes: 1,
        total_bytes: 1,
    };
    let plan = LayerPlan {
        gpu_layers: 0,
        n_layer: 1,
        budget_bytes: Some(1),
        margin_bytes: 1,
        per_layer_bytes: 1,
        output_bytes: 1,
        full_offload_bytes: 1,
        note: "n".into(),
    };
    let file = FileReport {
        path: "m.gguf".into(),
        is_default: true,
        name: Some("m".into()),
        architecture: "llama".into(),
        file_size: 1,
        n_params: 1,
        quantization: Some("Q4_1"),
        file_type: Some(1),
        n_embd: Some(1),
        n_layer: Some(1),
        gguf_version: 3,
        has_chat_template: true,
        chat_template_usable: true,
        builtin_chat_templates: vec!["chatml".into()],
        gpu_available: false,
        gpu_reason: Some("r"),
        devices: vec![device.clone()],
        gpu_plan: plan.clone(),
    };
    vec![
        ("RunSummary", keys(&summary)),
        ("RunRecord", keys(&run)),
        ("Checkpoint", keys(&point)),
        ("Evaluation", keys(&evaluation)),
        ("RunDetail", keys(&detail)),
        ("Losses", keys(&losses)),
        ("Spread", keys(&spread)),
        ("SeedSpread", keys(&seeds)),
        ("CompareRow", keys(&row)),
        ("ModelInfo", keys(&file)),
        ("Device", keys(&device)),
        ("LayerPlan", keys(&plan)),
        ("RunConfig", keys(&config)),
    ]
}

#[test]
fn the_front_ends_report_types_match_the_library() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/api.ts")).unwrap();
    let declared = ts_interfaces(&text);
    for (name, rust) in report_samples() {
        let (ts, open) = declared
            .get(name)
            .unwrap_or_else(|| panic!("ui/src/api.ts declares no interface {name}"));
        if *open {
            // A partial view (an index signature for the rest): the fields it names exist.
            let unknown: Vec<_> = ts.difference(&rust).collect();
            assert!(
                unknown.is_empty(),
                "{name}: {unknown:?} are not in the Rust type"
            );
        } else {
            assert_eq!(ts, &rust, "ui/src/api.ts {name} vs the Rust report");
        }
    }
}
