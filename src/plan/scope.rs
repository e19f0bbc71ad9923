//! Variables in scope while a stage is planned, with BuildKit's rules.
//!
//! - [`Vars`]: an ordered name → value list (Docker's env semantics).
//! - [`GlobalArgs`]: the ARGs before the first FROM, plus the automatic
//!   platform ARGs; a stage must redeclare one to use it.
//! - [`StateEnv`]: what expansion and RUN see: ENV and ARG values, the
//!   later one winning, and which names an ARG set.
//! - [`Expander`]: expands words in that environment, recording which build
//!   args a step used; heredoc bodies as BuildKit expands them.
//! - [`proxy_env`]: the proxy build args RUN gets outside its cache key.

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

/// The global scope: ARGs before the first FROM, with build-arg values.
pub struct GlobalArgs {
    /// Names with values: the declared ones and the platform args.
    pub vars: Vars,
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
        for instruction in instructions {
            let Command::Arg { args } = &instruction.command else { break };
            for arg in args {
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
        Ok(GlobalArgs { vars })
    }
}

/// The environment of a stage as BuildKit's build state holds it: what
/// word expansion and RUN see. ENV sets a variable, and so does an ARG with
/// a value (after an ENV of the same name, the ARG's value wins, as in
/// BuildKit); the image config's Env records ENV only.
#[derive(Debug, Clone, Default)]
pub struct StateEnv {
    /// Names and values, in the order they were first set.
    pub vars: Vars,
    /// The names whose value an ARG set last: the build args a step that
    /// reads them uses.
    pub from_arg: BTreeSet<String>,
}

impl StateEnv {
    /// Sets `key` from an ENV (or the base image's config).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.vars.set(key, value);
        self.from_arg.remove(key);
    }

    /// Sets `key` from an ARG with a value.
    pub fn set_arg(&mut self, key: &str, value: &str) {
        self.vars.set(key, value);
        self.from_arg.insert(key.to_string());
    }

    /// Every ARG-set variable with its value.
    pub fn args(&self) -> BTreeMap<String, String> {
        self.from_arg.iter().filter_map(|k| Some((k.clone(), self.vars.get(k)?.to_string()))).collect()
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
        state: &StateEnv,
        used: &mut BTreeMap<String, String>,
    ) -> Result<String, Diagnostic> {
        let expansion = self
            .lexer
            .process_word(word, &state.vars)
            .map_err(|e| Diagnostic::at(self.span, format!("{word}: {e}")))?;
        record_used(&expansion.used, state, used);
        Ok(expansion.value)
    }

    /// One word, expanded and split into words (EXPOSE).
    pub fn words(
        &self,
        word: &str,
        state: &StateEnv,
        used: &mut BTreeMap<String, String>,
    ) -> Result<Vec<String>, Diagnostic> {
        let expansion = self
            .lexer
            .process_words(word, &state.vars)
            .map_err(|e| Diagnostic::at(self.span, format!("{word}: {e}")))?;
        record_used(&expansion.used, state, used);
        Ok(expansion.words)
    }

    /// An optional word.
    pub fn maybe(
        &self,
        word: Option<&str>,
        state: &StateEnv,
        used: &mut BTreeMap<String, String>,
    ) -> Result<Option<String>, Diagnostic> {
        word.map(|w| self.word(w, state, used)).transpose()
    }

    /// A heredoc's body: expanded with `\` as the escape character and
    /// quotes taken literally, as BuildKit expands inline files.
    pub fn heredoc(
        &self,
        body: &str,
        state: &StateEnv,
        used: &mut BTreeMap<String, String>,
    ) -> Result<String, Diagnostic> {
        let raw = ShellLexer { skip_quotes: true, ..ShellLexer::new('\\') };
        let expansion = raw
            .process_word(body, &state.vars)
            .map_err(|e| Diagnostic::at(self.span, format!("heredoc: {e}")))?;
        record_used(&expansion.used, state, used);
        Ok(expansion.value)
    }
}

fn record_used(names: &BTreeSet<String>, state: &StateEnv, used: &mut BTreeMap<String, String>) {
    for name in names {
        if state.from_arg.contains(name)
            && let Some(value) = state.vars.get(name)
        {
            used.insert(name.clone(), value.to_string());
        }
    }
}

/// The predefined proxy args given with `--build-arg` that the stage does
/// not set: RUN gets them in its environment without an ARG, and (as
/// BuildKit's proxy settings) outside its cache key and history.
pub fn proxy_env(state: &StateEnv, request: &PlanRequest) -> Vec<String> {
    PROXY_ARGS
        .iter()
        .filter(|name| state.vars.get(name).is_none())
        .filter_map(|name| request.build_args.get(*name).map(|value| format!("{name}={value}")))
        .collect()
}
