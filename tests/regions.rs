//! The published targets table and region look-up.

use culturetune::dimension::{DimScores, Dimension};
use culturetune::regions::{RegionError, RegionTable};

#[test]
fn the_shipped_table_has_all_111_rows() {
    let t = RegionTable::builtin();
    assert_eq!(t.all().len(), 111);
    assert_eq!(t.all().iter().filter(|r| r.scores.count() == 6).count(), 65);
}

#[test]
fn published_values_come_back_exactly() {
    let t = RegionTable::builtin();
    let cases = [
        ("USA", [40.0, 91.0, 62.0, 46.0, 26.0, 68.0]),
        ("CHI", [80.0, 20.0, 66.0, 30.0, 87.0, 24.0]),
        ("IND", [77.0, 48.0, 56.0, 40.0, 51.0, 26.0]),
        ("ARA", [80.0, 38.0, 53.0, 68.0, 23.0, 34.0]),
        ("GRE", [60.0, 35.0, 57.0, 112.0, 45.0, 50.0]),
    ];
    for (code, v) in cases {
        assert_eq!(t.find(code).unwrap().scores, DimScores::full(v), "{code}");
    }
    let sau = t.find("SAU").unwrap();
    assert_eq!(sau.scores.count(), 2);
    assert_eq!(sau.scores.get(Dimension::Lto), Some(36.0));
    assert_eq!(sau.scores.get(Dimension::Ivr), Some(52.0));
    assert_eq!(sau.scores.get(Dimension::Pdi), None);
}

#[test]
fn lookup_by_code_or_name_ignores_case() {
    let t = RegionTable::builtin();
    assert_eq!(t.find("usa").unwrap().name, "U.S.A.");
    assert_eq!(t.find("u.s.a.").unwrap().code, "USA");
    assert_eq!(t.find(" arab COUNTRIES ").unwrap().code, "ARA");
    assert_eq!(t.find("Korea South").unwrap().code, "KOR");
}

#[test]
fn unknown_region_lists_closest_matches() {
    let t = RegionTable::builtin();
    let err = t.find("Germny").unwrap_err();
    let RegionError::Unknown { suggestions, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(suggestions[0], "GER (Germany)", "{suggestions:?}");
    assert!(err.to_string().contains("unknown region \"Germny\""));
    let RegionError::Unknown { suggestions, .. } = t.find("Belgium Dutch").unwrap_err() else {
        panic!()
    };
    assert!(
        suggestions.iter().take(3).any(|s| s.starts_with("BEN")),
        "{suggestions:?}"
    );
    let RegionError::Unknown { suggestions, .. } = t.find("Swiss").unwrap_err() else {
        panic!()
    };
    assert!(
        suggestions.iter().take(3).any(|s| s.starts_with("SW")),
        "{suggestions:?}"
    );
}

#[test]
fn a_bad_targets_file_names_the_line_and_column() {
    let csv = "country,code,pdi,idv,mas,uai,lto,ivr\nA,AAA,1,2,3,4,5,6\nB,BBB,1,two,3,4,5,6\n";
    let err = RegionTable::from_reader(csv.as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t.csv: line 3") && err.contains("column idv") && err.contains("\"two\""),
        "{err}"
    );
    // The same file saved with CRLF line ends names the same line.
    let err = RegionTable::from_reader(csv.replace('\n', "\r\n").as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.csv: line 3"), "{err}");
    let err = RegionTable::from_reader("name,code\n".as_bytes(), "t.csv")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1") && err.contains("expected country,code,pdi"),
        "{err}"
    );
}
