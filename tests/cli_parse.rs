//! `hoist parse` as a user runs it: output formats, errors and exit codes.

mod common;

use std::process::{Command, Output};

fn hoist(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hoist runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dump_matches_a_reference_result() {
    let case =
        common::conformance_dir().join("buildkit/frontend/dockerfile/parser/testfiles/brimstone-consuldock");
    let out = hoist(&["parse", "-f", case.join("Dockerfile").to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), std::fs::read_to_string(case.join("result")).unwrap());
}

#[test]
fn json_format_has_spans_flags_form_and_heredocs() {
    let src = "# syntax=docker/dockerfile:1\nFROM alpine AS build\nCOPY --chown=1:1 <<EOF /f\nhi\nEOF\nCMD [\"sh\"]\n";
    let out = hoist(&["parse", "-f", "-", "--format", "json"], Some(src));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["escape"], "\\");
    assert_eq!(json["directives"][0]["name"], "syntax");
    let copy = &json["instructions"][1];
    assert_eq!(copy["keyword"], "copy");
    assert_eq!(copy["span"]["start"], 3);
    assert_eq!(copy["span"]["end"], 5);
    assert_eq!(copy["flags"][0], "--chown=1:1");
    assert_eq!(copy["form"], "shell");
    assert_eq!(copy["heredocs"][0]["name"], "EOF");
    assert_eq!(copy["heredocs"][0]["content"], "hi\n");
    assert_eq!(json["instructions"][2]["form"], "exec");
}

#[test]
fn unknown_instruction_shows_line_caret_and_hint() {
    let out = hoist(&["parse", "-f", "-"], Some("FROM a\n  RUNN echo hi\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("-:2:3: error: unknown instruction: RUNN"), "{err}");
    assert!(err.contains("2 |   RUNN echo hi"), "{err}");
    assert!(err.contains("  |   ^"), "{err}");
    assert!(err.contains("did you mean RUN?"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unterminated_heredoc_names_delimiter_and_start_line() {
    let out = hoist(&["parse", "-f", "-"], Some("FROM a\nRUN <<SCRIPT\necho hi\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("<<SCRIPT opened on line 2"), "{err}");
    assert!(err.contains("hint: end the heredoc with a line that is exactly `SCRIPT`"), "{err}");
}

#[test]
fn flag_the_instruction_does_not_take_is_an_error() {
    let out = hoist(&["parse", "-f", "-"], Some("FROM a\nRUN --mnt=type=cache true\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("-:2:5: error: unknown flag: --mnt for RUN"), "{err}");
    assert!(err.contains("did you mean --mount?"), "{err}");
}

#[test]
fn instruction_before_from_is_an_error() {
    let out = hoist(&["parse", "-f", "-"], Some("RUN echo\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("before any FROM"));
}

#[test]
fn missing_file_is_a_user_error() {
    let out = hoist(&["parse", "-f", "/nonexistent/Dockerfile"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/Dockerfile"));
}

#[test]
fn bad_flag_is_a_usage_error() {
    let out = hoist(&["parse", "--format", "yaml"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_lists_subcommands_and_version_prints() {
    let out = hoist(&["--help"], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("parse"));
    let out = hoist(&["--version"], None);
    assert!(text(&out.stdout).starts_with("hoist "));
}
