//! The history's `created_by` text, as BuildKit's Dockerfile frontend
//! writes it.
//!
//! - Mostly Go's `fmt` rendering of the parsed instruction: `CMD ["a" "b"]`,
//!   `SHELL [/bin/sh -c]`, `EXPOSE map[80/tcp:{}]`, a HEALTHCHECK as a
//!   quoted struct.
//! - RUN, COPY and ADD suffixed `# buildkit`; COPY and ADD without flags.
//! - The stage's build args before a RUN: `RUN |2 A=1 B=2 /bin/sh -c …`.
//! - ONBUILD writes no row.

use std::collections::BTreeSet;
use std::time::Duration;

use super::ops::ConfigChange;
use crate::dockerfile::parse::go_quote;
use crate::image::config::HealthConfig;

/// `created_by` of a RUN: `argv` is the lowered command (heredocs folded
/// in), `args` the stage's build args with their values.
pub fn run(args: &[(String, String)], argv: &[String]) -> String {
    let mut text = String::from("RUN ");
    if !args.is_empty() {
        text.push_str(&format!("|{} ", args.len()));
        for (k, v) in args {
            text.push_str(&format!("{k}={v} "));
        }
    }
    text.push_str(&argv.join(" "));
    text.push_str(" # buildkit");
    text
}

/// `created_by` of a COPY or ADD: the sources, the heredoc files as
/// `<<name`, the destination as written.
pub fn copy(instruction: &str, sources: &[String], inline_names: &[String], dest: &str) -> String {
    let mut words: Vec<String> = sources.to_vec();
    words.extend(inline_names.iter().map(|name| format!("<<{name}")));
    words.push(dest.to_string());
    format!("{instruction} {} # buildkit", words.join(" "))
}

/// `created_by` of a config change; `None` for ONBUILD, which BuildKit
/// records silently.
pub fn config(change: &ConfigChange) -> Option<String> {
    let pairs = |pairs: &[(String, String)]| {
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    };
    Some(match change {
        ConfigChange::Arg(decls) => {
            let decls: Vec<String> = decls
                .iter()
                .map(|(name, default)| match default {
                    Some(d) => format!("{name}={d}"),
                    None => name.clone(),
                })
                .collect();
            format!("ARG {}", decls.join(" "))
        }
        ConfigChange::Env(p) => format!("ENV {}", pairs(p)),
        ConfigChange::Label(p) => format!("LABEL {}", pairs(p)),
        ConfigChange::Cmd(argv) => format!("CMD {}", go_quoted_list(argv)),
        ConfigChange::Entrypoint(argv) => format!("ENTRYPOINT {}", go_quoted_list(argv)),
        ConfigChange::Shell(shell) => format!("SHELL {}", go_list(shell)),
        ConfigChange::Workdir(path) => format!("WORKDIR {path}"),
        ConfigChange::User(user) => format!("USER {user}"),
        ConfigChange::Volume(paths) => format!("VOLUME {}", go_list(paths)),
        ConfigChange::StopSignal(signal) => format!("STOPSIGNAL {signal}"),
        ConfigChange::Maintainer(author) => format!("MAINTAINER {author}"),
        ConfigChange::Expose(ports) => {
            let ports: BTreeSet<&String> = ports.iter().collect();
            format!("EXPOSE map[{}]", ports.iter().map(|p| format!("{p}:{{}}")).collect::<Vec<_>>().join(" "))
        }
        ConfigChange::Healthcheck(check) => healthcheck(check),
        ConfigChange::Onbuild(_) => return None,
    })
}

fn healthcheck(check: &HealthConfig) -> String {
    let durations: Vec<String> = [check.interval, check.timeout, check.start_period, check.start_interval]
        .iter()
        .map(|nanos| go_quote(&go_duration(Duration::from_nanos(*nanos))))
        .collect();
    format!(
        "HEALTHCHECK &{{{} {} {}}}",
        go_quoted_list(&check.test),
        durations.join(" "),
        go_quote_rune(u32::try_from(check.retries).unwrap_or(u32::MAX))
    )
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| go_quote(i)).collect::<Vec<_>>().join(" "))
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
