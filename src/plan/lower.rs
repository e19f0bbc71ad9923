//! Lowering: an expanded RUN, COPY or ADD → the op `solve` executes.
//!
//! - Heredocs: a lone `RUN <<EOF` runs its body as the script; otherwise the
//!   shell gets the command with the bodies appended (it redirects itself).
//! - A lone heredoc starting with `#!` becomes an [`InlineScript`] mounted at
//!   `/dev/pipes/<name>` and executed, as BuildKit does.
//! - `RUN --network` is resolved; `--chmod` parsed; COPY's destination made
//!   absolute against WORKDIR.
//! - Flags this version does not implement are refused with the line,
//!   never ignored: each would change what the step produces.

use super::ops::{CopyFrom, CopyKind, CopyOp, InlineFile, InlineScript, Network, RunOp};
use crate::diagnostic::{Diagnostic, Span};
use crate::dockerfile::instructions::{Add, Copy, Run, SourcesAndDest, strip_leading_tabs};
use crate::dockerfile::parse::Heredoc;

/// What a RUN runs with besides its own text.
pub struct RunEnvironment<'a> {
    /// The stage's environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Proxy build args the environment lacks.
    pub proxy_env: Vec<String>,
    /// USER.
    pub user: &'a str,
    /// WORKDIR.
    pub workdir: &'a str,
    /// SHELL (empty: `/bin/sh -c`).
    pub shell: &'a [String],
    /// The build's `--network`.
    pub default_network: Network,
}

/// A RUN, lowered as BuildKit's `dispatchRun` does it; also returns the
/// argv its history row shows.
pub fn run(
    run: &Run,
    environment: RunEnvironment<'_>,
    span: Span,
) -> Result<(RunOp, Vec<String>), Diagnostic> {
    if !run.mounts.is_empty() {
        return Err(unsupported(span, "RUN", "--mount"));
    }
    if run.security.is_some() {
        return Err(unsupported(span, "RUN", "--security"));
    }
    if !run.devices.is_empty() {
        return Err(unsupported(span, "RUN", "--device"));
    }
    let network = match run.network.as_deref() {
        None | Some("default") => environment.default_network,
        Some("host") => Network::Host,
        Some("none") => Network::None,
        Some(other) => {
            return Err(Diagnostic::at(span, format!("RUN --network={other}: use default, none or host")));
        }
    };
    let (args, inline_script) = heredoc_args(run);
    let argv = if run.command.prepend_shell {
        let mut argv: Vec<String> = if environment.shell.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            environment.shell.to_vec()
        };
        argv.push(args.join(" "));
        argv
    } else {
        args
    };
    let op = RunOp {
        argv: argv.clone(),
        env: environment.env,
        proxy_env: environment.proxy_env,
        user: (!environment.user.is_empty()).then(|| environment.user.to_string()),
        workdir: if environment.workdir.is_empty() {
            "/".to_string()
        } else {
            environment.workdir.to_string()
        },
        network,
        inline_script,
    };
    Ok((op, argv))
}

/// The command with its heredocs: a lone heredoc starting with `#!` is a
/// script mounted at `/dev/pipes/<name>` and run; another lone heredoc is
/// the command itself; heredocs after a command are appended to it for the
/// shell to redirect.
fn heredoc_args(run: &Run) -> (Vec<String>, Option<InlineScript>) {
    let files = &run.command.files;
    let args = &run.command.args;
    if files.is_empty() || !run.command.prepend_shell || args.len() != 1 {
        return (args.clone(), None);
    }
    if is_lone_heredoc(&args[0]) {
        let body = heredoc_body(&files[0]);
        if body.starts_with("#!") {
            let path = format!("/dev/pipes/{}", files[0].name);
            return (vec![path.clone()], Some(InlineScript { path, content: body }));
        }
        return (vec![body], None);
    }
    let mut script = args[0].clone();
    for heredoc in files {
        script.push('\n');
        script.push_str(&heredoc.content);
        script.push_str(&heredoc.name);
    }
    (vec![script], None)
}

fn heredoc_body(heredoc: &Heredoc) -> String {
    if heredoc.chomp { strip_leading_tabs(&heredoc.content) } else { heredoc.content.clone() }
}

/// Whether the shell-form command is a heredoc and nothing else (`<<EOF`).
fn is_lone_heredoc(command: &str) -> bool {
    command.trim().starts_with("<<") && !command.trim().contains(' ')
}

/// What a COPY or ADD has in common once its words are expanded.
pub struct ExpandedCopy<'a> {
    /// COPY or ADD.
    pub kind: CopyKind,
    /// Sources, heredoc contents and destination, expanded.
    pub files: &'a SourcesAndDest,
    /// The source of the files.
    pub from: CopyFrom,
    /// `--chown`, expanded.
    pub chown: Option<String>,
    /// `--chmod`, expanded, not yet parsed.
    pub chmod: Option<String>,
    /// WORKDIR at that point, for a relative destination.
    pub workdir: &'a str,
}

/// A COPY or ADD, lowered.
pub fn copy(copy: ExpandedCopy<'_>, span: Span) -> Result<CopyOp, Diagnostic> {
    let files = copy.files;
    let chmod = copy
        .chmod
        .as_deref()
        .map(|text| {
            parse_chmod(text).ok_or_else(|| {
                Diagnostic::at(span, format!("invalid --chmod={text}: give an octal mode such as 0755"))
            })
        })
        .transpose()?;
    let workdir = if copy.workdir.is_empty() { "/" } else { copy.workdir };
    let dest = if files.dest.starts_with('/') {
        files.dest.clone()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), files.dest)
    };
    let dest_is_dir = files.dest.ends_with('/')
        || files.dest == "."
        || files.dest.ends_with("/.")
        || files.sources.len() + files.contents.len() > 1;
    let inline_files = files
        .contents
        .iter()
        .map(|content| InlineFile { name: content.path.clone(), content: content.data.clone(), mode: 0o644 })
        .collect();
    Ok(CopyOp {
        kind: copy.kind,
        from: copy.from,
        sources: files.sources.clone(),
        inline_files,
        dest,
        dest_is_dir,
        chown: copy.chown,
        chmod,
        unpack_archives: copy.kind == CopyKind::Add,
    })
}

/// Refuses the COPY flags this version does not implement.
pub fn refuse_copy_flags(copy: &Copy, span: Span) -> Result<(), Diagnostic> {
    if copy.parents {
        return Err(unsupported(span, "COPY", "--parents"));
    }
    if !copy.exclude.is_empty() {
        return Err(unsupported(span, "COPY", "--exclude"));
    }
    Ok(())
}

/// Refuses the ADD flags and sources this version does not implement.
pub fn refuse_add_flags(add: &Add, sources: &[String], span: Span) -> Result<(), Diagnostic> {
    let flag = if !add.exclude.is_empty() {
        "--exclude"
    } else if add.checksum.is_some() {
        "--checksum"
    } else if add.keep_git_dir {
        "--keep-git-dir"
    } else if add.unpack.is_some() {
        "--unpack"
    } else if sources.iter().any(|s| is_remote(s)) {
        "of a URL or git repository"
    } else {
        return Ok(());
    };
    Err(unsupported(span, "ADD", flag))
}

fn unsupported(span: Span, instruction: &str, flag: &str) -> Diagnostic {
    Diagnostic::at(span, format!("{instruction} {flag} is not supported by this version of hoist"))
        .with_hint("remove the flag, or build this Dockerfile with docker build for now")
}

/// An ADD source that is fetched rather than read from the context.
fn is_remote(source: &str) -> bool {
    ["http://", "https://", "git://", "git@"].iter().any(|p| source.starts_with(p))
}

/// `--chmod=0755`: octal, as BuildKit's Dockerfile frontend takes it.
fn parse_chmod(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|mode| *mode <= 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::instructions::{Command, typed};
    use crate::dockerfile::parse;

    const SPAN: Span = Span { start: 2, end: 2 };

    fn run_of(line: &str) -> Run {
        let typed = typed(&parse(&format!("FROM scratch\n{line}\n")).unwrap()).unwrap();
        let Command::Run(run) = &typed[1].command else { panic!("not a RUN") };
        run.clone()
    }

    fn environment(network: Network) -> RunEnvironment<'static> {
        RunEnvironment {
            env: vec![],
            proxy_env: vec![],
            user: "",
            workdir: "",
            shell: &[],
            default_network: network,
        }
    }

    fn lower(line: &str) -> Result<(RunOp, Vec<String>), Diagnostic> {
        super::run(&run_of(line), environment(Network::Host), SPAN)
    }

    #[test]
    fn a_lone_heredoc_is_the_script() {
        let (op, shown) = lower("RUN <<EOF\necho a\necho b\nEOF").unwrap();
        assert_eq!(op.argv, vec!["/bin/sh", "-c", "echo a\necho b\n"]);
        assert_eq!(shown, op.argv);
        assert_eq!(op.inline_script, None);
    }

    #[test]
    fn a_heredoc_after_a_command_is_appended_for_the_shell() {
        let (op, _) = lower("RUN cat <<EOF > /x\nhello\nEOF").unwrap();
        assert_eq!(op.argv, vec!["/bin/sh", "-c", "cat <<EOF > /x\nhello\nEOF"]);
    }

    #[test]
    fn a_chomped_lone_heredoc_loses_its_leading_tabs() {
        let (op, _) = lower("RUN <<-EOF\n\techo a\n\tEOF").unwrap();
        assert_eq!(op.argv, vec!["/bin/sh", "-c", "echo a\n"]);
    }

    #[test]
    fn a_heredoc_after_a_command_keeps_its_tabs_for_the_shell() {
        // BuildKit passes the body as written: the shell's `<<-` strips.
        let (op, _) = lower("RUN cat <<-EOF > /x\n\thello\n\tEOF").unwrap();
        assert_eq!(op.argv, vec!["/bin/sh", "-c", "cat <<-EOF > /x\n\thello\nEOF"]);
    }

    #[test]
    fn a_shebang_heredoc_becomes_an_inline_script_the_shell_runs() {
        let (op, shown) = lower("RUN <<EOT\n#!/usr/bin/env python3\nprint(1)\nEOT").unwrap();
        assert_eq!(op.argv, vec!["/bin/sh", "-c", "/dev/pipes/EOT"]);
        let script = op.inline_script.unwrap();
        assert_eq!(script.path, "/dev/pipes/EOT");
        assert_eq!(script.content, "#!/usr/bin/env python3\nprint(1)\n");
        // The history shows what runs, as BuildKit's does.
        assert_eq!(shown, op.argv);
    }

    #[test]
    fn a_shebang_after_a_command_is_not_a_script() {
        let (op, _) = lower("RUN cat <<EOT\n#!/bin/sh\nEOT").unwrap();
        assert_eq!(op.inline_script, None);
    }

    #[test]
    fn network_flag_is_resolved_against_the_build_default() {
        let run = run_of("RUN --network=default true");
        let (op, _) = super::run(&run, environment(Network::None), SPAN).unwrap();
        assert_eq!(op.network, Network::None);
        assert_eq!(lower("RUN --network=none true").unwrap().0.network, Network::None);
        assert_eq!(lower("RUN --network=host true").unwrap().0.network, Network::Host);
        let error = lower("RUN --network=bridge true").unwrap_err();
        assert_eq!((error.line, error.message.contains("bridge")), (2, true));
    }

    #[test]
    fn user_and_workdir_default_as_the_sandbox_expects() {
        let (op, _) = lower("RUN true").unwrap();
        assert_eq!((op.user, op.workdir.as_str()), (None, "/"));
    }

    #[test]
    fn unimplemented_run_flags_are_refused_with_the_line_and_a_hint() {
        for (line, flag) in [
            ("RUN --mount=type=cache,target=/c true", "--mount"),
            ("RUN --security=insecure true", "--security"),
        ] {
            let error = lower(line).unwrap_err();
            assert!(error.message.contains(flag), "{error:?}");
            assert_eq!(error.line, 2);
            assert!(error.hint.is_some());
        }
    }

    fn copy_of(line: &str, workdir: &str) -> Result<CopyOp, Diagnostic> {
        let typed = typed(&parse(&format!("FROM scratch\n{line}\n")).unwrap()).unwrap();
        let (kind, files, chmod, chown) = match &typed[1].command {
            Command::Copy(c) => (CopyKind::Copy, c.files.clone(), c.chmod.clone(), c.chown.clone()),
            Command::Add(a) => (CopyKind::Add, a.files.clone(), a.chmod.clone(), a.chown.clone()),
            _ => panic!("not a copy"),
        };
        copy(ExpandedCopy { kind, files: &files, from: CopyFrom::Context, chown, chmod, workdir }, SPAN)
    }

    #[test]
    fn a_relative_destination_is_under_workdir() {
        assert_eq!(copy_of("COPY a b", "/app").unwrap().dest, "/app/b");
        assert_eq!(copy_of("COPY a b", "").unwrap().dest, "/b");
        assert_eq!(copy_of("COPY a /b", "/app").unwrap().dest, "/b");
    }

    #[test]
    fn a_destination_is_a_directory_by_slash_dot_or_several_sources() {
        assert!(!copy_of("COPY a /b", "").unwrap().dest_is_dir);
        assert!(copy_of("COPY a /b/", "").unwrap().dest_is_dir);
        assert!(copy_of("COPY a .", "/w").unwrap().dest_is_dir);
        assert!(copy_of("COPY a b /c", "").unwrap().dest_is_dir);
    }

    #[test]
    fn chmod_is_octal_and_a_bad_one_names_the_line() {
        assert_eq!(copy_of("COPY --chmod=0750 a /b", "").unwrap().chmod, Some(0o750));
        let error = copy_of("COPY --chmod=u+x a /b", "").unwrap_err();
        assert!(error.message.contains("--chmod=u+x") && error.line == 2, "{error:?}");
    }

    #[test]
    fn heredoc_files_are_inline_files() {
        let op = copy_of("COPY <<one <<two /d/\nA\none\nB\ntwo", "").unwrap();
        let names: Vec<&str> = op.inline_files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["one", "two"]);
        assert_eq!(op.inline_files[0].content, "A\n");
        assert_eq!(op.inline_files[0].mode, 0o644);
    }

    #[test]
    fn add_unpacks_archives_and_copy_does_not() {
        assert!(copy_of("ADD a.tar /x/", "").unwrap().unpack_archives);
        assert!(!copy_of("COPY a.tar /x/", "").unwrap().unpack_archives);
    }
}
