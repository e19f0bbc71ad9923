//! The history's `created_by` text, as BuildKit's Dockerfile frontend
//! writes it.
//!
//! - As current BuildKit writes it (`dockerfile2llb/convert.go`): mostly
//!   Go's `fmt` rendering of the dispatched instruction — `CMD ["a" "b"]`,
//!   `SHELL [/bin/sh -c]`, `EXPOSE [80/tcp 53/udp]`, a HEALTHCHECK as
//!   `{Test:[…] Interval:…}`, `ARG` with the values the args took.
//! - RUN, COPY and ADD suffixed `# buildkit`; COPY and ADD with `--chown`,
//!   `--chmod` and `--parents` when given.
//! - The stage's build args before a RUN: `RUN |2 A=1 B=2 /bin/sh -c …`.
//! - ONBUILD writes no row.

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

/// The COPY and ADD flags a history row shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyFlags<'a> {
    /// `--chown`, expanded.
    pub chown: Option<&'a str>,
    /// `--chmod`, expanded.
    pub chmod: Option<&'a str>,
    /// `--parents`.
    pub parents: bool,
}

/// `created_by` of a COPY or ADD (BuildKit's `dispatchCopy`): `--parents`,
/// `--chown` and `--chmod` when given, the sources, the heredoc files as
/// `<<name`, the destination as written.
pub fn copy(
    instruction: &str,
    flags: CopyFlags<'_>,
    sources: &[String],
    inline_names: &[String],
    dest: &str,
) -> String {
    let mut words: Vec<String> = vec![instruction.to_string()];
    if flags.parents {
        words.push("--parents".into());
    }
    if let Some(chown) = flags.chown.filter(|c| !c.is_empty()) {
        words.push(format!("--chown={chown}"));
    }
    if let Some(chmod) = flags.chmod.filter(|c| !c.is_empty()) {
        words.push(format!("--chmod={chmod}"));
    }
    words.extend(sources.iter().cloned());
    words.extend(inline_names.iter().map(|name| format!("<<{name}")));
    words.push(dest.to_string());
    format!("{} # buildkit", words.join(" "))
}

/// `created_by` of a config change; `None` for ONBUILD, which BuildKit
/// records silently.
pub fn config(change: &ConfigChange) -> Option<String> {
    let pairs = |pairs: &[(String, String)]| {
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    };
    Some(match change {
        // Each declaration with the value it took (BuildKit's `dispatchArg`).
        ConfigChange::Arg(decls) => {
            let decls: Vec<String> = decls
                .iter()
                .map(|(name, value)| match value {
                    Some(v) => format!("{name}={v}"),
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
        // Go's `%v` of the parsed port list, in the order given.
        ConfigChange::Expose(ports) => format!("EXPOSE {}", go_list(ports)),
        ConfigChange::Healthcheck(check) => healthcheck(check),
        ConfigChange::Onbuild(_) => return None,
    })
}

/// Go's `%+v` of Docker's `HealthcheckConfig`, as BuildKit prints it.
fn healthcheck(check: &HealthConfig) -> String {
    let duration = |nanos: u64| go_duration(Duration::from_nanos(nanos));
    format!(
        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        go_list(&check.test),
        duration(check.interval),
        duration(check.timeout),
        duration(check.start_period),
        duration(check.start_interval),
        check.retries
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
}
