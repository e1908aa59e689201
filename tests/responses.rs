//! Reading human responses CSVs, and scoring them by hand-computed values.

use culturetune::dimension::{DimScores, Dimension};
use culturetune::responses::{Responses, ResponsesError};
use culturetune::scoring::{indices, Constants};
use culturetune::survey::Survey;

fn header() -> String {
    let mut h = vec!["respondent".to_string()];
    h.extend((1..=24).map(|k| format!("q{k:02}")));
    h.join(",")
}

fn row(id: &str, codes: [u8; 24]) -> String {
    let mut r = vec![id.to_string()];
    r.extend(codes.iter().map(|c| c.to_string()));
    r.join(",")
}

fn parse(text: &str) -> Result<Responses, ResponsesError> {
    Responses::from_reader(
        text.as_bytes(),
        "people.csv",
        &Survey::builtin("vsm13").unwrap(),
    )
}

#[test]
fn three_respondents_give_hand_computed_means_and_indices() {
    let a = [
        1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4,
    ];
    let b = [2; 24];
    let c = [
        3, 1, 1, 3, 2, 2, 4, 5, 2, 1, 3, 3, 2, 1, 4, 2, 3, 1, 2, 5, 2, 1, 4, 2,
    ];
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        header(),
        row("r1", a),
        row("r2", b),
        row("r3", c)
    );
    let r = parse(&text).unwrap();
    assert_eq!(r.respondents, 3);
    let m = |k: usize| r.item_means[k - 1];
    assert_eq!(m(1), 2.0); // (1+2+3)/3
    assert_eq!(m(7), 8.0 / 3.0); // (2+2+4)/3
    let s = indices(
        &Survey::builtin("vsm13").unwrap(),
        &r.item_means,
        &Constants::Zero,
    )
    .unwrap();
    // Hand computation: m02=5/3, m07=8/3, m20=(5+2+5)/3=4, m23=(3+2+4)/3=3 -> PDI = 35 + 25 = 60
    let pdi = s.get(Dimension::Pdi).unwrap();
    assert!((pdi - 60.0).abs() < 1e-9, "{pdi}");
    // m01=2, m04=3, m06=5/3, m09=8/3 -> IDV = 35*1 + 35*1 = 70
    assert!((s.get(Dimension::Idv).unwrap() - 70.0).abs() < 1e-9);
}

#[test]
fn blank_cells_are_unanswered_and_excluded_from_the_mean() {
    let mut text = format!("{}\n{}\n", header(), row("r1", [2; 24]));
    text.push_str(&row("r2", [4; 24]).replacen(",4", ",", 1)); // r2 skips q01
    text.push('\n');
    let r = parse(&text).unwrap();
    assert_eq!(r.answered[0], 1);
    assert_eq!(r.item_means[0], 2.0);
    assert_eq!(r.item_means[1], 3.0);
}

#[test]
fn a_code_outside_1_to_5_names_line_and_column() {
    let mut c = [3u8; 24];
    c[6] = 6;
    let text = format!("{}\n{}\n{}\n", header(), row("r1", [2; 24]), row("r2", c));
    let msg = parse(&text).unwrap_err().to_string();
    assert!(
        msg.contains("people.csv: line 3, column \"q07\": \"6\""),
        "{msg}"
    );
    assert!(msg.contains("expected a whole number 1..5"), "{msg}");
    let text = format!(
        "{}\n{}\n",
        header(),
        row("r1", [2; 24]).replace(",2,2,2", ",2.5,2,2")
    );
    let msg = parse(&text).unwrap_err().to_string();
    assert!(msg.contains("\"2.5\"") && msg.contains("line 2"), "{msg}");
}

#[test]
fn a_missing_column_is_named() {
    let text = format!(
        "{}\n{}\n",
        header().replace(",q13", ",q13x"),
        row("r1", [2; 24])
    );
    let msg = parse(&text).unwrap_err().to_string();
    assert!(msg.contains("missing column \"q13\""), "{msg}");
}

#[test]
fn an_empty_file_or_header_only_is_rejected() {
    let msg = parse(&format!("{}\n", header())).unwrap_err().to_string();
    assert!(msg.contains("people.csv: no respondents"), "{msg}");
    let msg = parse("").unwrap_err().to_string();
    assert!(msg.contains("missing column \"q01\""), "{msg}");
}

#[test]
fn a_ragged_row_is_a_csv_error_with_its_line() {
    let text = format!("{}\n{}\n1,2,3\n", header(), row("r1", [2; 24]));
    let msg = parse(&text).unwrap_err().to_string();
    assert!(
        msg.contains("line 3") && msg.contains("malformed CSV"),
        "{msg}"
    );
}

#[test]
fn all_equal_respondents_give_the_given_constants() {
    let text = format!(
        "{}\n{}\n{}\n",
        header(),
        row("r1", [3; 24]),
        row("r2", [3; 24])
    );
    let r = parse(&text).unwrap();
    let c = Constants::Given {
        values: DimScores::full([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    };
    let s = indices(&Survey::builtin("vsm13").unwrap(), &r.item_means, &c).unwrap();
    assert_eq!(s, DimScores::full([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
}
