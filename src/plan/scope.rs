//! Variables in scope while a stage is planned, with BuildKit's rules.
//!
//! - [`Vars`]: an ordered name → value list (Docker's env semantics).
//! - [`GlobalArgs`]: the ARGs before the first FROM, plus the automatic
//!   platform ARGs; a stage must redeclare one to use it.
//! - [`Expander`]: expands words with ENV first, then the ARGs ENV does not
//!   shadow, recording which build args a step used.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanRequest;
use crate::diagnostic::{Diagnostic, Span};
use crate::dockerfile::instructions::{Command, Instruction};
use crate::dockerfile::shell::{Env, ShellLexer};

/// Args proxies may set without a declaration; they are not recorded in
/// the image history unless declared.
pub const PROXY_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// An ordered name → value list where a later assignment replaces an
/// earlier one in place (Docker's env semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    /// Sets `key`, in place if it is already there.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.0
    }

    /// From `KEY=VALUE` strings.
    pub fn from_env_list(env: &[String]) -> Vars {
        let mut vars = Vars::default();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            vars.set(k, v);
        }
        vars
    }

    /// `KEY=VALUE` strings.
    pub fn to_env_list(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl Env for Vars {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// Expansion environment: ENV first, then ARGs ENV does not shadow.
struct Scope<'a> {
    env: &'a Vars,
    args: &'a Vars,
}

impl Env for Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.env.get(name).or_else(|| self.args.get(name))
    }
}

/// The automatic platform ARGs for the global scope.
fn platform_args(request: &PlanRequest) -> Vec<(String, String)> {
    let target = &request.platform;
    let build = &request.build_platform;
    vec![
        ("TARGETPLATFORM".into(), target.to_string()),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETARCH".into(), target.architecture.clone()),
        ("TARGETVARIANT".into(), target.variant.clone().unwrap_or_default()),
        ("BUILDPLATFORM".into(), build.to_string()),
        ("BUILDOS".into(), build.os.clone()),
        ("BUILDARCH".into(), build.architecture.clone()),
        ("BUILDVARIANT".into(), build.variant.clone().unwrap_or_default()),
    ]
}

/// Whether `name` is one of the automatic platform ARGs.
pub fn is_platform_arg(name: &str) -> bool {
    name.starts_with("TARGET") || name.starts_with("BUILD") && !name.starts_with("BUILDKIT")
}

/// The global scope: ARGs before the first FROM, with build-arg values.
pub struct GlobalArgs {
    /// Names with values.
    pub vars: Vars,
    /// Declared names (for redeclaration inside stages).
    pub declared: BTreeSet<String>,
}

impl GlobalArgs {
    /// Reads the ARGs before the first FROM; build args they take are
    /// added to `used`.
    pub fn read(
        instructions: &[Instruction],
        request: &PlanRequest,
        lexer: &ShellLexer,
        used: &mut BTreeSet<String>,
    ) -> Result<GlobalArgs, Diagnostic> {
        let mut vars = Vars::default();
        for (k, v) in platform_args(request) {
            vars.set(&k, &v);
        }
        let mut declared = BTreeSet::new();
        for instruction in instructions {
            let Command::Arg { args } = &instruction.command else { break };
            for arg in args {
                declared.insert(arg.name.clone());
                let value = if let Some(given) = request.build_args.get(&arg.name) {
                    used.insert(arg.name.clone());
                    Some(given.clone())
                } else {
                    match &arg.default {
                        Some(default) => Some(
                            lexer
                                .process_word(default, &vars)
                                .map_err(|e| {
                                    Diagnostic::at(instruction.span, format!("ARG {}: {e}", arg.name))
                                })?
                                .value,
                        ),
                        None => None,
                    }
                };
                if let Some(value) = value {
                    vars.set(&arg.name, &value);
                }
            }
        }
        Ok(GlobalArgs { vars, declared })
    }
}

/// Expands the words of one instruction, recording which build args it used.
pub struct Expander<'a> {
    /// Docker's word expansion with the file's escape character.
    pub lexer: &'a ShellLexer,
    /// The instruction, for errors.
    pub span: Span,
}

impl Expander<'_> {
    /// One word, expanded.
    pub fn word(
        &self,
        word: &str,
        env: &Vars,
        args: &Vars,
        used: &mut BTreeMap<String, String>,
    ) -> Result<String, Diagnostic> {
        let scope = Scope { env, args };
        let expansion = self
            .lexer
            .process_word(word, &scope)
            .map_err(|e| Diagnostic::at(self.span, format!("{word}: {e}")))?;
        record_used(&expansion.used, env, args, used);
        Ok(expansion.value)
    }

    /// One word, expanded and split into words (EXPOSE, VOLUME).
    pub fn words(
        &self,
        word: &str,
        env: &Vars,
        args: &Vars,
        used: &mut BTreeMap<String, String>,
    ) -> Result<Vec<String>, Diagnostic> {
        let scope = Scope { env, args };
        let expansion = self
            .lexer
            .process_words(word, &scope)
            .map_err(|e| Diagnostic::at(self.span, format!("{word}: {e}")))?;
        record_used(&expansion.used, env, args, used);
        Ok(expansion.words)
    }

    /// An optional word.
    pub fn maybe(
        &self,
        word: Option<&str>,
        env: &Vars,
        args: &Vars,
        used: &mut BTreeMap<String, String>,
    ) -> Result<Option<String>, Diagnostic> {
        word.map(|w| self.word(w, env, args, used)).transpose()
    }
}

fn record_used(names: &BTreeSet<String>, env: &Vars, args: &Vars, used: &mut BTreeMap<String, String>) {
    for name in names {
        if env.get(name).is_none()
            && let Some(value) = args.get(name)
        {
            used.insert(name.clone(), value.to_string());
        }
    }
}

/// The ARGs a RUN sees as environment: those ENV does not shadow, and the
/// predefined proxy args given with `--build-arg` (which need no ARG and,
/// undeclared, stay out of the history).
pub fn visible_args(args: &Vars, env: &Vars, request: &PlanRequest) -> Vars {
    let mut visible = Vars(args.0.iter().filter(|(k, _)| env.get(k).is_none()).cloned().collect());
    for name in PROXY_ARGS {
        if let Some(value) = request.build_args.get(name)
            && visible.get(name).is_none()
            && env.get(name).is_none()
        {
            visible.set(name, value);
        }
    }
    visible
}
