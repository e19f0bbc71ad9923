//! The history's `created_by` text, as BuildKit's Dockerfile frontend
//! writes it: mostly Go's `fmt` rendering of the parsed instruction (so
//! `CMD ["a" "b"]`, `SHELL [/bin/sh -c]`, `EXPOSE map[80/tcp:{}]`, and a
//! HEALTHCHECK as a quoted struct), with RUN, COPY and ADD suffixed
//! `# buildkit`, COPY and ADD without their flags, and the stage's build
//! args before a RUN (`RUN |2 A=1 B=2 /bin/sh -c …`).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::dockerfile::instructions::{Command, CommandLine, Healthcheck};
use crate::dockerfile::parse::go_quote;
use crate::plan::{Step, StepKind};

use super::{argv_text, heredoc_argv};

/// `created_by` for a step.
pub fn created_by(step: &Step) -> String {
    match &step.kind {
        StepKind::Run { argv, run } => {
            let mut text = String::from("RUN ");
            if !step.history_args.is_empty() {
                text.push_str(&format!("|{} ", step.history_args.len()));
                for (k, v) in &step.history_args {
                    text.push_str(&format!("{k}={v} "));
                }
            }
            text.push_str(&argv_text(&heredoc_argv(argv, run)));
            text.push_str(" # buildkit");
            text
        }
        StepKind::Copy { files, .. } => format!("COPY {} # buildkit", sources_and_dest(files)),
        StepKind::Add { files, .. } => format!("ADD {} # buildkit", sources_and_dest(files)),
        StepKind::Config(command) => config_text(step, command),
    }
}

fn sources_and_dest(files: &crate::dockerfile::instructions::SourcesAndDest) -> String {
    let mut words: Vec<String> = files.sources.clone();
    words.extend(files.contents.iter().map(|c| format!("<<{}", c.path)));
    words.push(files.dest.clone());
    words.join(" ")
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| go_quote(i)).collect::<Vec<_>>().join(" "))
}

fn with_shell(step: &Step, line: &CommandLine) -> Vec<String> {
    if !line.prepend_shell {
        return line.args.clone();
    }
    let mut out =
        if step.shell.is_empty() { vec!["/bin/sh".into(), "-c".into()] } else { step.shell.clone() };
    out.extend(line.args.iter().cloned());
    out
}

fn config_text(step: &Step, command: &Command) -> String {
    let pairs = |pairs: &[crate::dockerfile::instructions::KeyValue]| {
        pairs.iter().map(|p| format!("{}={}", p.key, p.value)).collect::<Vec<_>>().join(" ")
    };
    match command {
        Command::Arg { args } => {
            let decls: Vec<String> = args
                .iter()
                .map(|a| match &a.default {
                    Some(d) => format!("{}={d}", a.name),
                    None => a.name.clone(),
                })
                .collect();
            format!("ARG {}", decls.join(" "))
        }
        Command::Env { pairs: p } => format!("ENV {}", pairs(p)),
        Command::Label { pairs: p } => format!("LABEL {}", pairs(p)),
        Command::Cmd(line) => format!("CMD {}", go_quoted_list(&with_shell(step, line))),
        Command::Entrypoint(line) => format!("ENTRYPOINT {}", go_quoted_list(&with_shell(step, line))),
        Command::Shell { shell } => format!("SHELL {}", go_list(shell)),
        Command::Workdir { .. } => format!("WORKDIR {}", step.workdir),
        Command::User { user } => format!("USER {user}"),
        Command::Volume { paths } => format!("VOLUME {}", go_list(paths)),
        Command::StopSignal { signal } => format!("STOPSIGNAL {signal}"),
        Command::Maintainer { author } => format!("MAINTAINER {author}"),
        Command::Expose { ports } => {
            let ports: BTreeSet<String> = ports
                .iter()
                .map(|p| if p.contains('/') { p.to_lowercase() } else { format!("{p}/tcp") })
                .collect();
            format!("EXPOSE map[{}]", ports.iter().map(|p| format!("{p}:{{}}")).collect::<Vec<_>>().join(" "))
        }
        Command::Healthcheck(check) => {
            let (test, durations, retries) = match check {
                Healthcheck::None => (vec!["NONE".to_string()], [None; 4], 0),
                Healthcheck::Cmd { test, interval, timeout, start_period, start_interval, retries } => (
                    test.clone(),
                    [*interval, *timeout, *start_period, *start_interval],
                    retries.unwrap_or(0),
                ),
            };
            let durations: Vec<String> =
                durations.iter().map(|d| go_quote(&go_duration(d.unwrap_or_default()))).collect();
            format!(
                "HEALTHCHECK &{{{} {} {}}}",
                go_quoted_list(&test),
                durations.join(" "),
                go_quote_rune(retries)
            )
        }
        // No history row (see `records_history`); kept total for callers.
        Command::Onbuild(onbuild) => format!("ONBUILD {}", onbuild.expression),
        Command::From(_) | Command::Run(_) | Command::Add(_) | Command::Copy(_) => String::new(),
    }
}

/// Whether BuildKit writes a history row for this step (ONBUILD only
/// changes the config, silently).
pub fn records_history(step: &Step) -> bool {
    !matches!(step.kind, StepKind::Config(Command::Onbuild(_)))
}

/// Go's `time.Duration.String()`: `0s`, `300ms`, `1.5s`, `1m30s`, `2h0m0s`.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let fraction = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.to_string().len() - 1;
            let text = format!("{whole}.{rest:0digits$}");
            text.trim_end_matches('0').to_string()
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Go's `%q` of an integer: the quoted rune (`'\x04'`, `'A'`).
fn go_quote_rune(value: u32) -> String {
    let Some(c) = char::from_u32(value) else { return "'\u{fffd}'".into() };
    let body = match c {
        '\u{7}' => "\\a".to_string(),
        '\u{8}' => "\\b".to_string(),
        '\u{c}' => "\\f".to_string(),
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\t' => "\\t".to_string(),
        '\u{b}' => "\\v".to_string(),
        '\'' => "\\'".to_string(),
        '\\' => "\\\\".to_string(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
        c if c.is_control() => format!("\\u{:04x}", c as u32),
        c => c.to_string(),
    };
    format!("'{body}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
    }

    #[test]
    fn retries_print_as_go_quotes_a_rune() {
        assert_eq!(go_quote_rune(4), "'\\x04'");
        assert_eq!(go_quote_rune(0), "'\\x00'");
        assert_eq!(go_quote_rune(10), "'\\n'");
        assert_eq!(go_quote_rune(65), "'A'");
    }
}
