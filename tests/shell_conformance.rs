//! BuildKit's shell-lexer vectors (`envVarTest`, `wordsTest`), read from the
//! shared conformance folder and interpreted as its README describes.

mod common;

use hoist::dockerfile::shell::ShellLexer;

/// There are 228 A/U vectors and 24 word vectors; a lower count means the
/// file or its reading changed, and the test must not pass on less.
const MIN_ENV_VAR_VECTORS: usize = 228;
const MIN_WORDS_VECTORS: usize = 24;

fn read_vectors(name: &str) -> String {
    let path = common::conformance_dir().join("buildkit/frontend/dockerfile/shell").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read conformance vectors {}: {e}", path.display()))
}

#[test]
fn env_var_vectors_expand_as_single_words() {
    let text = read_vectors("envVarTest");
    let env: Vec<(String, String)> =
        [("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")]
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let lexer = ShellLexer::new('\\');
    let mut checked = 0;
    let mut failures = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            panic!("envVarTest line {number}: expected 3 fields separated by '|': {line:?}");
        };
        match platform {
            "A" | "U" => {}
            "W" => continue,
            other => panic!("envVarTest line {number}: unknown platform {other:?}"),
        }
        checked += 1;
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(out), expected) => expected != "error" && out.value == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!("line {number}: {input:?} expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} envVarTest vectors failed:\n{}", failures.len(), failures.join("\n"));
    assert!(
        checked >= MIN_ENV_VAR_VECTORS,
        "only {checked} envVarTest vectors checked, expected at least {MIN_ENV_VAR_VECTORS}"
    );
}

#[test]
fn words_vectors_expand_and_split() {
    let text = read_vectors("wordsTest");
    let lexer = ShellLexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            // The value keeps trailing spaces; a bare name is set to empty.
            let assignment = assignment.trim_start();
            let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
            env.push((name.to_owned(), value.to_owned()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        let [input, expected] = fields[..] else {
            panic!("wordsTest line {number}: expected exactly one '|': {line:?}");
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start().split(',').collect();
        checked += 1;
        let got = match lexer.process_words(input, &env) {
            Ok(out) => out.words,
            Err(_) => vec!["error".to_owned()],
        };
        if got != expected {
            failures.push(format!("line {number}: {input:?} expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} wordsTest vectors failed:\n{}", failures.len(), failures.join("\n"));
    assert!(
        checked >= MIN_WORDS_VECTORS,
        "only {checked} wordsTest vectors checked, expected at least {MIN_WORDS_VECTORS}"
    );
}
