//! Config-only instructions: what they change in the image config.
//!
//! - [`change_of`]: an expanded instruction → a [`ConfigChange`], values
//!   resolved as Docker resolves them (shell form wrapped, ports normalised).
//! - [`apply`]: a change applied to an [`ImageConfig`].
//! - [`parse_change`]: one instruction's text (`hoist import --change`),
//!   taken literally, as `docker import --change` takes it.

use std::collections::BTreeMap;

use super::ops::ConfigChange;
use crate::dockerfile::instructions::{self, Command, Healthcheck};
use crate::image::config::{Empty, HealthConfig, ImageConfig};

/// The change a config-only instruction makes, or why it is not one.
pub fn change_of(command: &Command, config: &ImageConfig) -> Result<ConfigChange, String> {
    let shell = &config.config.shell;
    let pairs = |pairs: &[instructions::KeyValue]| -> Vec<(String, String)> {
        pairs.iter().map(|p| (p.key.clone(), p.value.clone())).collect()
    };
    Ok(match command {
        Command::Cmd(line) => ConfigChange::Cmd(with_shell(shell, line.prepend_shell, &line.args)),
        Command::Entrypoint(line) => {
            ConfigChange::Entrypoint(with_shell(shell, line.prepend_shell, &line.args))
        }
        Command::Env { pairs: p } => ConfigChange::Env(pairs(p)),
        Command::Label { pairs: p } => ConfigChange::Label(pairs(p)),
        Command::Expose { ports } => {
            let mut expanded = Vec::new();
            for port in ports {
                expanded.extend(expose_ports(port)?);
            }
            ConfigChange::Expose(expanded)
        }
        Command::Volume { paths } => {
            if paths.iter().any(String::is_empty) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            ConfigChange::Volume(paths.clone())
        }
        Command::User { user } => ConfigChange::User(user.clone()),
        Command::Workdir { path } => ConfigChange::Workdir(join_workdir(&config.config.working_dir, path)),
        Command::StopSignal { signal } => {
            if !is_signal(signal) {
                return Err(format!("invalid signal: {signal}"));
            }
            ConfigChange::StopSignal(signal.clone())
        }
        Command::Shell { shell } => ConfigChange::Shell(shell.clone()),
        Command::Onbuild(onbuild) => ConfigChange::Onbuild(onbuild.expression.clone()),
        Command::Maintainer { author } => ConfigChange::Maintainer(author.clone()),
        Command::Healthcheck(Healthcheck::None) => {
            ConfigChange::Healthcheck(HealthConfig { test: vec!["NONE".into()], ..HealthConfig::default() })
        }
        Command::Healthcheck(Healthcheck::Cmd {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }) => {
            let nanos = |d: &Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as u64);
            ConfigChange::Healthcheck(HealthConfig {
                test: test.clone(),
                interval: nanos(interval),
                timeout: nanos(timeout),
                start_period: nanos(start_period),
                start_interval: nanos(start_interval),
                retries: retries.map_or(0, u64::from),
            })
        }
        other => {
            return Err(format!(
                "{} cannot be applied as a change; use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK or SHELL",
                keyword(other)
            ));
        }
    })
}

fn keyword(command: &Command) -> &'static str {
    match command {
        Command::From(_) => "FROM",
        Command::Arg { .. } => "ARG",
        Command::Run(_) => "RUN",
        Command::Add(_) => "ADD",
        Command::Copy(_) => "COPY",
        _ => "this instruction",
    }
}

/// Applies a change to a config.
pub fn apply(config: &mut ImageConfig, change: &ConfigChange) {
    let container = &mut config.config;
    match change {
        ConfigChange::Arg(_) => {}
        ConfigChange::Env(pairs) => {
            for (key, value) in pairs {
                set_env(&mut container.env, key, value);
            }
        }
        ConfigChange::Label(pairs) => {
            for (key, value) in pairs {
                container.labels.insert(key.clone(), value.clone());
            }
        }
        ConfigChange::Cmd(argv) => {
            container.cmd = Some(argv.clone());
            // As BuildKit's dispatchCmd, for Docker's image spec.
            container.args_escaped = true;
        }
        ConfigChange::Entrypoint(argv) => {
            container.entrypoint = Some(argv.clone());
            // ENTRYPOINT resets CMD; a build keeps a CMD its own stage set
            // (see plan::stage).
            container.cmd = None;
        }
        ConfigChange::Shell(shell) => container.shell = shell.clone(),
        ConfigChange::Workdir(path) => container.working_dir = path.clone(),
        ConfigChange::User(user) => container.user = user.clone(),
        ConfigChange::Volume(paths) => {
            container.volumes.extend(paths.iter().map(|p| (p.clone(), Empty {})));
        }
        ConfigChange::Expose(ports) => {
            container.exposed_ports.extend(ports.iter().map(|p| (p.clone(), Empty {})));
        }
        ConfigChange::StopSignal(signal) => container.stop_signal = signal.clone(),
        ConfigChange::Maintainer(author) => config.author = Some(author.clone()),
        ConfigChange::Healthcheck(check) => container.healthcheck = Some(check.clone()),
        ConfigChange::Onbuild(expression) => container.on_build.push(expression.clone()),
    }
}

/// One instruction's text (`CMD ["sh"]`) as a change to `config`, values
/// taken literally (no variable expansion), as `docker import --change`.
pub fn parse_change(text: &str, config: &ImageConfig) -> Result<ConfigChange, String> {
    let file = crate::dockerfile::parse(&format!("FROM scratch\n{text}\n")).map_err(|e| e.message)?;
    let typed = instructions::typed(&file).map_err(|e| e.message)?;
    match typed.as_slice() {
        [_, one] => change_of(&one.command, config),
        _ => Err("give exactly one instruction per --change".into()),
    }
}

/// One EXPOSE word as BuildKit parses it (`[ip:][hostport:]port[-end][/proto]`):
/// each port of a range, `port/proto` with the protocol lower case (tcp by
/// default; tcp, udp or sctp).
fn expose_ports(raw: &str) -> Result<Vec<String>, String> {
    let invalid = |why: &str| format!("invalid port: {raw:?}: {why}");
    let container = raw.rsplit(':').next().unwrap_or(raw);
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    let proto = match proto.to_lowercase().as_str() {
        "" => "tcp".to_string(),
        p @ ("tcp" | "udp" | "sctp") => p.to_string(),
        other => return Err(invalid(&format!("invalid proto: {other}"))),
    };
    if port.is_empty() {
        return Err(invalid("no port specified"));
    }
    let number = |text: &str| {
        text.parse::<u32>()
            .ok()
            .filter(|p| *p <= 65535)
            .ok_or_else(|| invalid(&format!("invalid containerPort: {port}")))
    };
    let (start, end) = match port.split_once('-') {
        Some((start, end)) if start != end => (number(start)?, number(end)?),
        Some((start, _)) => (number(start)?, number(start)?),
        None => (number(port)?, number(port)?),
    };
    if end < start {
        return Err(invalid(&format!("invalid port range: {port}")));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Whether STOPSIGNAL names a signal as Docker's `signal.ParseSignal`
/// takes it: any integer but 0, or a name of its Linux map, with or
/// without `SIG`, in any case (`RTMIN+3` too).
fn is_signal(text: &str) -> bool {
    const NAMES: [&str; 36] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
        "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
        "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
    ];
    if let Ok(number) = text.parse::<i64>() {
        return number != 0;
    }
    let upper = text.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let within = |rest: &str, max: u32| {
        rest.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n) && !rest.starts_with('+'))
    };
    NAMES.contains(&name)
        || name.strip_prefix("RTMIN+").is_some_and(|n| within(n, 15))
        || name.strip_prefix("RTMAX-").is_some_and(|n| within(n, 14))
}

/// Shell form runs through the image's SHELL, `/bin/sh -c` by default.
pub(super) fn with_shell(shell: &[String], prepend_shell: bool, args: &[String]) -> Vec<String> {
    if !prepend_shell {
        return args.to_vec();
    }
    let mut out: Vec<String> =
        if shell.is_empty() { vec!["/bin/sh".into(), "-c".into()] } else { shell.to_vec() };
    out.extend(args.iter().cloned());
    out
}

/// Sets `key=value` in a Docker env list, replacing an earlier value in place.
pub(super) fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// WORKDIR: absolute paths replace, relative ones extend the previous one.
pub(super) fn join_workdir(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        return crate::paths::rooted(path);
    }
    let base = if current.is_empty() { "/" } else { current };
    crate::paths::rooted(&format!("{base}/{path}"))
}

/// Labels given on the command line (`--label`), applied after the build.
pub fn apply_labels(config: &mut ImageConfig, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        config.config.labels.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(config: &mut ImageConfig, line: &str) {
        let change = parse_change(line, config).unwrap();
        apply(config, &change);
    }

    #[test]
    fn entrypoint_resets_cmd() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "CMD [\"sh\"]");
        applied(&mut config, "ENTRYPOINT [\"/bin/app\"]");
        assert_eq!(config.config.cmd, None);
        assert_eq!(config.config.entrypoint, Some(vec!["/bin/app".to_string()]));
    }

    #[test]
    fn shell_form_cmd_uses_sh_c() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "CMD echo hi");
        assert_eq!(config.config.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]));
    }

    #[test]
    fn shell_form_uses_the_shell_set_before_it() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "SHELL [\"/bin/bash\", \"-c\"]");
        applied(&mut config, "CMD echo hi");
        assert_eq!(config.config.cmd, Some(vec!["/bin/bash".into(), "-c".into(), "echo hi".into()]));
    }

    #[test]
    fn env_replaces_in_place() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "ENV A=1 B=2");
        applied(&mut config, "ENV A=3");
        assert_eq!(config.config.env, vec!["A=3", "B=2"]);
    }

    #[test]
    fn expose_defaults_to_tcp() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "EXPOSE 80 53/UDP");
        assert!(config.config.exposed_ports.contains_key("80/tcp"));
        assert!(config.config.exposed_ports.contains_key("53/udp"));
    }

    #[test]
    fn expose_ranges_are_one_entry_per_port() {
        assert_eq!(expose_ports("7000-7002/tcp").unwrap(), vec!["7000/tcp", "7001/tcp", "7002/tcp"]);
        assert_eq!(expose_ports("8080:80/SCTP").unwrap(), vec!["80/sctp"]);
        assert_eq!(expose_ports("5-5").unwrap(), vec!["5/tcp"]);
        assert!(expose_ports("80/icmp").unwrap_err().contains("invalid proto"));
        assert!(expose_ports("9-3").unwrap_err().contains("range"));
        assert!(expose_ports("http").unwrap_err().contains("containerPort"));
        assert!(expose_ports("70000").is_err());
    }

    #[test]
    fn stop_signals_are_checked_as_docker_checks_them() {
        for good in ["SIGTERM", "term", "9", "65", "SIGRTMIN+3", "RTMAX-1", "SIGWINCH"] {
            assert!(is_signal(good), "{good}");
        }
        for bad in ["SIGBOGUS", "0", "RTMIN+20", "RTMAX-15", ""] {
            assert!(!is_signal(bad), "{bad}");
        }
    }

    #[test]
    fn cmd_marks_its_args_escaped_as_buildkit_does() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "CMD [\"sh\"]");
        assert!(config.config.args_escaped);
    }

    #[test]
    fn workdir_chains_relative_paths() {
        assert_eq!(join_workdir("/a", "b/../c"), "/a/c");
        assert_eq!(join_workdir("", "x"), "/x");
        assert_eq!(join_workdir("/a", "/y/"), "/y");
        assert_eq!(join_workdir("/", "../../etc"), "/etc");
    }

    #[test]
    fn run_and_arg_are_not_changes() {
        let config = ImageConfig::new_for_host();
        assert!(parse_change("RUN x", &config).unwrap_err().starts_with("RUN cannot be applied"));
        assert!(parse_change("ARG x", &config).unwrap_err().starts_with("ARG cannot be applied"));
    }

    #[test]
    fn a_change_is_one_instruction() {
        let config = ImageConfig::new_for_host();
        assert!(parse_change("CMD a\nCMD b", &config).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn healthcheck_none_disables_the_inherited_check() {
        let mut config = ImageConfig::new_for_host();
        applied(&mut config, "HEALTHCHECK --interval=5s CMD true");
        assert_eq!(config.config.healthcheck.as_ref().unwrap().interval, 5_000_000_000);
        applied(&mut config, "HEALTHCHECK NONE");
        assert_eq!(config.config.healthcheck.unwrap().test, vec!["NONE"]);
    }
}
