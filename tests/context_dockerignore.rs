//! `.dockerignore` matching against moby/patternmatcher's vectors.

mod common;

use std::fs;

use hoist::context::{IgnoreMatcher, read_patterns};

#[test]
fn every_conformance_case_matches_docker() {
    let text = fs::read_to_string(common::conformance_dir().join("dockerignore/cases.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "malformed row {line:?}");
        let (patterns, path, expected) = (fields[0], fields[1], fields[2]);
        let patterns: Vec<&str> =
            if patterns.is_empty() { Vec::new() } else { patterns.split(" | ").collect() };
        let got = match IgnoreMatcher::new(&patterns) {
            Err(_) => "error",
            Ok(m) if m.matches(path) => "match",
            Ok(_) => "nomatch",
        };
        cases += 1;
        if got != expected {
            failures.push(format!("{patterns:?} {path:?}: expected {expected}, got {got}"));
        }
    }
    assert_eq!(cases, 138, "cases.tsv rows");
    assert!(failures.is_empty(), "{} of {cases} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn reading_an_ignore_file_matches_docker_readall() {
    let dir = common::conformance_dir().join("dockerignore");
    let input = fs::read_to_string(dir.join("readall-input.dockerignore")).unwrap();
    let expected = fs::read_to_string(dir.join("readall-expected.txt")).unwrap();
    assert_eq!(read_patterns(&input), expected.lines().collect::<Vec<_>>());
}

#[test]
fn reading_nothing_gives_no_patterns() {
    assert!(read_patterns("").is_empty());
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_pattern() {
    assert_eq!(read_patterns("\u{feff}node_modules\n"), ["node_modules"]);
}

#[test]
fn patterns_are_trimmed_and_empty_ones_dropped() {
    let matcher = IgnoreMatcher::new(&["  *.log  ", "", "   "]).unwrap();
    assert!(matcher.matches("debug.log"));
    assert!(!matcher.matches("debug.txt"));
}

#[test]
fn a_lone_exclamation_mark_is_an_error() {
    assert!(IgnoreMatcher::new(&["!"]).is_err());
    assert!(IgnoreMatcher::parse("ok\n! \n").is_err());
}

#[test]
fn an_excluded_directory_excludes_its_contents() {
    let matcher = IgnoreMatcher::parse("build/\n").unwrap();
    assert!(matcher.matches("build/out/app.o"));
    assert!(!matcher.matches("src/build.rs"));
}
