//! BuildKit's parser test cases, read from the shared conformance folder.

mod common;

use std::fs;
use std::path::PathBuf;

use hoist::dockerfile::parse_bytes;

fn parser_dir() -> PathBuf {
    common::conformance_dir().join("buildkit/frontend/dockerfile/parser")
}

fn cases(folder: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(parser_dir().join(folder))
        .unwrap_or_else(|e| panic!("reading {folder}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Dockerfile").is_file())
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_testfile_dumps_byte_identical() {
    let cases = cases("testfiles");
    assert!(cases.len() >= 33, "expected at least 33 cases, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let source = fs::read(case.join("Dockerfile")).unwrap();
        let expected = String::from_utf8(fs::read(case.join("result")).unwrap()).unwrap();
        match parse_bytes(&source) {
            Ok(file) if file.dump() == expected => {}
            Ok(file) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{}",
                case.display(),
                file.dump()
            )),
            Err(e) => failures.push(format!("{}: unexpected error {e}", case.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_negative_testfile_is_rejected() {
    let cases = cases("testfiles-negative");
    assert!(cases.len() >= 4, "expected at least 4 negative cases, found {}", cases.len());
    for case in &cases {
        let source = fs::read(case.join("Dockerfile")).unwrap();
        assert!(parse_bytes(&source).is_err(), "{} parsed but must be rejected", case.display());
    }
}

#[test]
fn line_numbers_match_the_reference() {
    let source = fs::read(parser_dir().join("testfile-line/Dockerfile")).unwrap();
    let file = parse_bytes(&source).expect("testfile-line parses");
    let spans: Vec<(usize, usize)> = file.nodes.iter().map(|n| (n.span.start, n.span.end)).collect();
    assert_eq!(spans, vec![(5, 5), (11, 12), (17, 31)]);
    assert_eq!(file.directives.len(), 1);
    assert_eq!(file.directives[0].line, 1);
    assert!(!file.warnings.is_empty(), "empty continuation lines must warn");
}
