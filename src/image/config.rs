//! The image configuration (`application/vnd.oci.image.config.v1+json`) with
//! Docker's extensions (`Healthcheck`, `OnBuild`, `Shell`), which `oci-spec`'s
//! types do not carry. Unknown fields are kept (`extra`), so that a config
//! read from elsewhere and written again keeps them; but the image ID is
//! always computed from the bytes as stored, never from a re-serialisation.
//! [`ImageConfig::apply`] applies a Dockerfile instruction that only changes
//! metadata (used by `hoist import --change` and by builds).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dockerfile::instructions::{Command, Healthcheck};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "ContainerConfig::is_empty")]
    pub config: ContainerConfig,
    #[serde(default, deserialize_with = "nullable")]
    pub rootfs: RootFs,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// What a container of the image runs with (Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ContainerConfig {
    fn is_empty(&self) -> bool {
        *self == ContainerConfig::default()
    }
}

/// `{}` in `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Docker's healthcheck; durations are integer nanoseconds, 0 = inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub retries: u64,
}

/// Docker writes `null` for empty lists and maps; read it as empty.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".to_string(), diff_ids: Vec::new() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// A `--change` or instruction that cannot be applied to a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

impl ImageConfig {
    /// The configuration of a new image for this machine, no layers yet.
    pub fn new_for_host() -> ImageConfig {
        ImageConfig {
            architecture: host_architecture().to_string(),
            os: "linux".to_string(),
            ..ImageConfig::default()
        }
    }

    /// Applies an instruction that changes only metadata, as `docker import
    /// --change` does: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
    /// VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, MAINTAINER. Values
    /// are taken literally (no variable expansion).
    pub fn apply(&mut self, command: &Command) -> Result<(), ApplyError> {
        let config = &mut self.config;
        match command {
            Command::Cmd(line) => {
                config.cmd = Some(self_shell_form(&config.shell, line.prepend_shell, &line.args));
            }
            Command::Entrypoint(line) => {
                config.entrypoint = Some(self_shell_form(&config.shell, line.prepend_shell, &line.args));
                // Docker: setting ENTRYPOINT resets a CMD set before it.
                config.cmd = None;
            }
            Command::Env { pairs } => {
                for pair in pairs {
                    set_env(&mut config.env, &pair.key, &pair.value);
                }
            }
            Command::Label { pairs } => {
                for pair in pairs {
                    config.labels.insert(pair.key.clone(), pair.value.clone());
                }
            }
            Command::Expose { ports } => {
                for port in ports {
                    let port = if port.contains('/') { port.to_lowercase() } else { format!("{port}/tcp") };
                    config.exposed_ports.insert(port, Empty {});
                }
            }
            Command::Volume { paths } => {
                for path in paths {
                    config.volumes.insert(path.clone(), Empty {});
                }
            }
            Command::User { user } => config.user = user.clone(),
            Command::Workdir { path } => config.working_dir = join_workdir(&config.working_dir, path),
            Command::StopSignal { signal } => config.stop_signal = signal.clone(),
            Command::Shell { shell } => config.shell = shell.clone(),
            Command::Onbuild(onbuild) => config.on_build.push(onbuild.expression.clone()),
            Command::Maintainer { author } => self.author = Some(author.clone()),
            Command::Healthcheck(Healthcheck::None) => {
                config.healthcheck =
                    Some(HealthConfig { test: vec!["NONE".into()], ..HealthConfig::default() });
            }
            Command::Healthcheck(Healthcheck::Cmd {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            }) => {
                let nanos = |d: &Option<Duration>| d.map_or(0, |d| d.as_nanos() as u64);
                config.healthcheck = Some(HealthConfig {
                    test: test.clone(),
                    interval: nanos(interval),
                    timeout: nanos(timeout),
                    start_period: nanos(start_period),
                    start_interval: nanos(start_interval),
                    retries: retries.map_or(0, u64::from),
                });
            }
            other => {
                return Err(ApplyError(format!(
                    "{} cannot be applied as a change; use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK or SHELL",
                    command_name(other)
                )));
            }
        }
        Ok(())
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::From(_) => "FROM",
        Command::Arg { .. } => "ARG",
        Command::Run(_) => "RUN",
        Command::Add(_) => "ADD",
        Command::Copy(_) => "COPY",
        _ => "this instruction",
    }
}

/// Shell form runs through the image's SHELL, `/bin/sh -c` by default.
fn self_shell_form(shell: &[String], prepend_shell: bool, args: &[String]) -> Vec<String> {
    if !prepend_shell {
        return args.to_vec();
    }
    let mut out: Vec<String> =
        if shell.is_empty() { vec!["/bin/sh".into(), "-c".into()] } else { shell.to_vec() };
    out.extend(args.iter().cloned());
    out
}

/// Sets `key=value` in a Docker env list, replacing an earlier value in place.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// WORKDIR: absolute paths replace, relative ones extend the previous one.
pub fn join_workdir(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        return clean_path(path);
    }
    let base = if current.is_empty() { "/" } else { current };
    clean_path(&format!("{base}/{path}"))
}

/// Lexical cleaning of an absolute path (`.`, `..`, repeated slashes).
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The OCI architecture name of this machine.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// RFC 3339 in UTC with nanoseconds, as Docker writes `created`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let nanos = since.subsec_nanos();
    let fraction =
        if nanos == 0 { String::new() } else { format!(".{nanos:09}").trim_end_matches('0').to_string() };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses the RFC 3339 timestamps found in image configs.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    if secs < 0 {
        return Some(UNIX_EPOCH);
    }
    Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "3 hours ago", as `docker images` prints ages.
pub fn human_age(created: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(created).unwrap_or_default().as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("{} {unit} ago", if unit == "hour" { "an".to_string() } else { "1".to_string() })
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0 => "Less than a second ago".to_string(),
        1..60 => plural(secs, "second"),
        60..3600 => {
            let m = secs / 60;
            if m == 1 { "About a minute ago".to_string() } else { format!("{m} minutes ago") }
        }
        3600..172_800 => {
            let h = secs / 3600;
            if h == 1 { "About an hour ago".to_string() } else { format!("{h} hours ago") }
        }
        172_800..1_209_600 => format!("{} days ago", secs / 86_400),
        1_209_600..5_184_000 => format!("{} weeks ago", secs / 604_800),
        5_184_000..63_072_000 => format!("{} months ago", secs / 2_592_000),
        _ => format!("{} years ago", secs / 31_536_000),
    }
}

/// "1.23MB", as Docker prints sizes: powers of 1000, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{instructions, parse};

    fn apply(config: &mut ImageConfig, line: &str) {
        let file = parse(&format!("FROM scratch\n{line}\n")).unwrap();
        let typed = instructions::typed(&file).unwrap();
        config.apply(&typed[1].command).unwrap();
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123Z"), Some(t));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.123+01:00"), Some(t));
    }

    #[test]
    fn entrypoint_resets_cmd() {
        let mut config = ImageConfig::new_for_host();
        apply(&mut config, "CMD [\"sh\"]");
        apply(&mut config, "ENTRYPOINT [\"/bin/app\"]");
        assert_eq!(config.config.cmd, None);
        assert_eq!(config.config.entrypoint, Some(vec!["/bin/app".to_string()]));
    }

    #[test]
    fn shell_form_cmd_uses_sh_c() {
        let mut config = ImageConfig::new_for_host();
        apply(&mut config, "CMD echo hi");
        assert_eq!(config.config.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]));
    }

    #[test]
    fn env_replaces_in_place() {
        let mut config = ImageConfig::new_for_host();
        apply(&mut config, "ENV A=1 B=2");
        apply(&mut config, "ENV A=3");
        assert_eq!(config.config.env, vec!["A=3", "B=2"]);
    }

    #[test]
    fn expose_defaults_to_tcp() {
        let mut config = ImageConfig::new_for_host();
        apply(&mut config, "EXPOSE 80 53/UDP");
        assert!(config.config.exposed_ports.contains_key("80/tcp"));
        assert!(config.config.exposed_ports.contains_key("53/udp"));
    }

    #[test]
    fn workdir_chains_relative_paths() {
        assert_eq!(join_workdir("/a", "b/../c"), "/a/c");
        assert_eq!(join_workdir("", "x"), "/x");
        assert_eq!(join_workdir("/a", "/y/"), "/y");
    }

    #[test]
    fn run_is_not_a_change() {
        let file = parse("FROM scratch\nRUN x\n").unwrap();
        let typed = instructions::typed(&file).unwrap();
        assert!(ImageConfig::new_for_host().apply(&typed[1].command).is_err());
    }

    #[test]
    fn sizes_and_ages_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(4_400_000), "4.4MB");
        assert_eq!(human_size(1_234_567_890), "1.23GB");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(human_age(now - Duration::from_secs(7200), now), "2 hours ago");
    }

    #[test]
    fn nulls_read_as_empty() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null,"OnBuild":null,"Labels":null,"Volumes":null},"rootfs":{"type":"layers","diff_ids":null},"history":null}"#;
        let config: ImageConfig = serde_json::from_str(text).unwrap();
        assert!(
            config.config.env.is_empty() && config.config.cmd.is_none() && config.rootfs.diff_ids.is_empty()
        );
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"architecture":"amd64","os":"linux","docker_version":"20.10","config":{"Hostname":"x","Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config: ImageConfig = serde_json::from_str(text).unwrap();
        let again = serde_json::to_value(&config).unwrap();
        assert_eq!(again["docker_version"], "20.10");
        assert_eq!(again["config"]["Hostname"], "x");
    }
}
