//! The cache key of a step: one pure function over a versioned encoding.
//!
//! - [`base_key`]: what a stage starts from (`scratch` and the architecture,
//!   or the base image's manifest digest; a stage built on a stage starts
//!   from that stage's key).
//! - [`step_key`]: `blake3(KEY_DOMAIN ‖ parent key ‖ op ‖ used build args ‖
//!   content input)`.
//!
//! The encoding is written here field by field, never derived from a
//! type's serialisation, so renaming a field changes no key; changing what
//! a key covers means bumping [`KEY_VERSION`] (part of [`KEY_DOMAIN`]), so
//! old records become misses, never wrong hits. Each value is a string or a
//! list: a string is its length (u64, little-endian) then its bytes; a list
//! is its length then its items; an absent value is the byte 0, a present
//! one the byte 1 then the value; a flag is one byte. Each op starts with
//! its tag:
//!
//! | op | fields, in order |
//! |---|---|
//! | `run` | argv, env, user?, workdir, network (`host`/`none`), inline script? (path, content); not the proxy variables |
//! | `copy` | kind (`COPY`/`ADD`), source (`context`/`stage`/`image`), sources, inline files (name, content, mode as octal text), dest, dest is a dir, chown?, chmod? (octal text), unpack archives |
//! | `workdir` | path, user? |
//! | `config` | the instruction keyword, then its values as a list of strings (ARG: the names only) |
//!
//! Then the build args the step used (a list of name, value pairs, sorted
//! by name) and the content input: `none`, `context` + the blake3 digest of
//! exactly the selected files, `stage` + the source stage's key, or
//! `image` + the source image's manifest digest.
//!
//! Not inputs, by construction: build args the step does not use, comments
//! and blank lines, how progress is shown, the time, the store's path.

use std::collections::BTreeMap;

use crate::layer::Digest;
use crate::plan::{ConfigChange, CopyFrom, CopyKind, Network, Op, Step};

/// The version of the encoding below.
pub const KEY_VERSION: u32 = 2;

/// What every key's preimage starts with.
pub const KEY_DOMAIN: &str = "hoist step cache key v2\n";

/// What a stage starts from, for its first key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseInput<'a> {
    /// `FROM scratch`, for an architecture.
    Scratch {
        /// `amd64`…
        architecture: &'a str,
    },
    /// `FROM image`, by manifest digest.
    Image(Digest),
}

/// The content a step reads besides its op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentInput {
    /// Nothing (RUN, WORKDIR, config changes, inline files only).
    None,
    /// The blake3 digest of exactly the context files a COPY selects.
    Context(blake3::Hash),
    /// The key of the stage `COPY --from` reads.
    Stage(blake3::Hash),
    /// The manifest digest of the image `COPY --from` reads.
    Image(Digest),
}

/// The key a stage's first step builds on.
pub fn base_key(base: BaseInput<'_>) -> blake3::Hash {
    let mut encoder = Encoder::new();
    match base {
        BaseInput::Scratch { architecture } => {
            encoder.str("scratch");
            encoder.str(architecture);
        }
        BaseInput::Image(digest) => {
            encoder.str("image");
            encoder.str(&digest.to_string());
        }
    }
    encoder.finish()
}

/// The key of `step`, run on the state `parent` names, reading `content`.
pub fn step_key(parent: &blake3::Hash, step: &Step, content: ContentInput) -> blake3::Hash {
    let mut encoder = Encoder::new();
    encoder.bytes(parent.as_bytes());
    encode_op(&mut encoder, &step.op);
    encode_build_args(&mut encoder, &step.build_args);
    match content {
        ContentInput::None => encoder.str("none"),
        ContentInput::Context(digest) => {
            encoder.str("context");
            encoder.bytes(digest.as_bytes());
        }
        ContentInput::Stage(key) => {
            encoder.str("stage");
            encoder.bytes(key.as_bytes());
        }
        ContentInput::Image(digest) => {
            encoder.str("image");
            encoder.str(&digest.to_string());
        }
    }
    encoder.finish()
}

fn encode_op(encoder: &mut Encoder, op: &Op) {
    match op {
        Op::Run(run) => {
            encoder.str("run");
            encoder.strs(&run.argv);
            encoder.strs(&run.env);
            encoder.opt(run.user.as_deref());
            encoder.str(&run.workdir);
            encoder.str(match run.network {
                Network::Host => "host",
                Network::None => "none",
            });
            match &run.inline_script {
                None => encoder.flag(false),
                Some(script) => {
                    encoder.flag(true);
                    encoder.str(&script.path);
                    encoder.str(&script.content);
                }
            }
        }
        Op::Copy(copy) => {
            encoder.str("copy");
            encoder.str(match copy.kind {
                CopyKind::Copy => "COPY",
                CopyKind::Add => "ADD",
            });
            encoder.str(match copy.from {
                CopyFrom::Context => "context",
                CopyFrom::Stage(_) => "stage",
                CopyFrom::Image(_) => "image",
            });
            encoder.strs(&copy.sources);
            encoder.count(copy.inline_files.len());
            for file in &copy.inline_files {
                encoder.str(&file.name);
                encoder.str(&file.content);
                encoder.str(&format!("{:o}", file.mode));
            }
            encoder.str(&copy.dest);
            encoder.flag(copy.dest_is_dir);
            encoder.opt(copy.chown.as_deref());
            encoder.opt(copy.chmod.map(|mode| format!("{mode:o}")).as_deref());
            encoder.flag(copy.unpack_archives);
        }
        Op::Workdir(workdir) => {
            encoder.str("workdir");
            encoder.str(&workdir.path);
            encoder.opt(workdir.user.as_deref());
        }
        Op::Config(change) => {
            encoder.str("config");
            encoder.str(change.instruction());
            encoder.strs(&config_values(change));
        }
    }
}

/// A config change's values as one list of strings; each variant's layout
/// is fixed by its keyword.
fn config_values(change: &ConfigChange) -> Vec<String> {
    let pairs = |pairs: &[(String, String)]| pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
    match change {
        // The names only: a build arg's value enters the keys of the steps
        // that use it, not of its declaration.
        ConfigChange::Arg(decls) => decls.iter().map(|(name, _)| name.clone()).collect(),
        ConfigChange::Env(p) | ConfigChange::Label(p) => pairs(p),
        ConfigChange::Cmd(list)
        | ConfigChange::Entrypoint(list)
        | ConfigChange::Shell(list)
        | ConfigChange::Volume(list)
        | ConfigChange::Expose(list) => list.clone(),
        ConfigChange::Workdir(one)
        | ConfigChange::User(one)
        | ConfigChange::StopSignal(one)
        | ConfigChange::Maintainer(one)
        | ConfigChange::Onbuild(one) => vec![one.clone()],
        ConfigChange::Healthcheck(check) => {
            let mut values = vec![check.test.len().to_string()];
            values.extend(check.test.iter().cloned());
            for n in [check.interval, check.timeout, check.start_period, check.start_interval, check.retries]
            {
                values.push(n.to_string());
            }
            values
        }
    }
}

fn encode_build_args(encoder: &mut Encoder, args: &BTreeMap<String, String>) {
    encoder.count(args.len());
    for (name, value) in args {
        encoder.str(name);
        encoder.str(value);
    }
}

/// The preimage, streamed into blake3.
struct Encoder(blake3::Hasher);

impl Encoder {
    fn new() -> Encoder {
        let mut hasher = blake3::Hasher::new();
        hasher.update(KEY_DOMAIN.as_bytes());
        Encoder(hasher)
    }

    fn count(&mut self, n: usize) {
        self.0.update(&(n as u64).to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.0.update(bytes);
    }

    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn strs(&mut self, list: &[String]) {
        self.count(list.len());
        for item in list {
            self.str(item);
        }
    }

    fn flag(&mut self, value: bool) {
        self.0.update(&[u8::from(value)]);
    }

    fn opt(&mut self, value: Option<&str>) {
        self.flag(value.is_some());
        if let Some(value) = value {
            self.str(value);
        }
    }

    fn finish(self) -> blake3::Hash {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::plan::{PlanRequest, plan_text};

    const SCRATCH: BaseInput<'static> = BaseInput::Scratch { architecture: "amd64" };

    /// The key of every step of the last stage, from scratch, no content.
    fn keys_with(src: &str, build_args: &[(&str, &str)], network: Network) -> Vec<blake3::Hash> {
        let request = PlanRequest {
            build_args: build_args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            network,
            ..PlanRequest::default()
        };
        let planned = plan_text(src, &request, &HashMap::new()).unwrap();
        let mut key = base_key(SCRATCH);
        planned.stages[planned.target]
            .steps
            .iter()
            .map(|step| {
                key = step_key(&key, step, ContentInput::None);
                key
            })
            .collect()
    }

    fn keys(src: &str) -> Vec<blake3::Hash> {
        keys_with(src, &[], Network::Host)
    }

    fn last_key(src: &str) -> blake3::Hash {
        *keys(src).last().unwrap()
    }

    #[test]
    fn the_same_step_has_the_same_key() {
        assert_eq!(keys("FROM scratch\nRUN make\n"), keys("FROM scratch\nRUN make\n"));
    }

    #[test]
    fn comments_blank_lines_and_continuations_do_not_change_a_key() {
        let plain = keys("FROM scratch\nENV A=1\nRUN make all\n");
        let decorated = keys("# a comment\nFROM scratch\n\n# why\nENV A=1\nRUN make \\\n# inside\nall\n");
        assert_eq!(plain, decorated);
    }

    #[test]
    fn every_run_input_changes_the_key() {
        let base = last_key("FROM scratch\nRUN make\n");
        for other in [
            "FROM scratch\nRUN make install\n",
            "FROM scratch\nENV A=1\nRUN make\n",
            "FROM scratch\nUSER app\nRUN make\n",
            "FROM scratch\nWORKDIR /src\nRUN make\n",
            "FROM scratch\nRUN --network=none make\n",
            "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nRUN make\n",
            "FROM scratch\nRUN [\"make\"]\n",
        ] {
            assert_ne!(last_key(other), base, "{other}");
        }
    }

    #[test]
    fn an_inline_script_changes_the_key_with_its_content() {
        let one = last_key("FROM scratch\nRUN <<EOF\n#!/bin/sh\necho 1\nEOF\n");
        let two = last_key("FROM scratch\nRUN <<EOF\n#!/bin/sh\necho 2\nEOF\n");
        assert_ne!(one, two);
    }

    #[test]
    fn the_build_network_enters_run_keys_only() {
        let host = keys_with("FROM scratch\nENV A=1\nRUN make\n", &[], Network::Host);
        let none = keys_with("FROM scratch\nENV A=1\nRUN make\n", &[], Network::None);
        assert_eq!(host[0], none[0]);
        assert_ne!(host[1], none[1]);
    }

    #[test]
    fn a_build_arg_enters_the_key_only_of_steps_that_use_it() {
        let src = "FROM scratch\nARG V\nLABEL a=b\nRUN make\n";
        let one = keys_with(src, &[("V", "1")], Network::Host);
        let two = keys_with(src, &[("V", "2")], Network::Host);
        // ARG and LABEL do not use V's value; RUN sees it as environment.
        assert_eq!(one[..2], two[..2]);
        assert_ne!(one[2], two[2]);
        let unused = "FROM scratch\nARG V\nARG W\nLABEL w=$W\n";
        assert_eq!(
            keys_with(unused, &[("V", "1"), ("W", "x")], Network::Host),
            keys_with(unused, &[("V", "2"), ("W", "x")], Network::Host)
        );
        assert_ne!(
            keys_with(unused, &[("W", "x")], Network::Host).last(),
            keys_with(unused, &[("W", "y")], Network::Host).last()
        );
    }

    #[test]
    fn a_build_arg_nobody_declares_changes_no_key() {
        let src = "FROM scratch\nRUN make\n";
        assert_eq!(keys_with(src, &[], Network::Host), keys_with(src, &[("UNUSED", "1")], Network::Host));
    }

    #[test]
    fn every_copy_input_changes_the_key() {
        let base = last_key("FROM scratch\nCOPY a /d\n");
        for other in [
            "FROM scratch\nCOPY b /d\n",
            "FROM scratch\nCOPY a /e\n",
            "FROM scratch\nCOPY a /d/\n",
            "FROM scratch\nCOPY --chown=1:1 a /d\n",
            "FROM scratch\nCOPY --chmod=755 a /d\n",
            "FROM scratch\nADD a /d\n",
            "FROM scratch\nFROM scratch\nCOPY --from=0 a /d\n",
            "FROM scratch\nCOPY <<a /d\nx\na\n",
        ] {
            assert_ne!(last_key(other), base, "{other}");
        }
    }

    #[test]
    fn content_changes_the_key_of_the_step_that_reads_it() {
        let planned =
            plan_text("FROM scratch\nCOPY a /d\n", &PlanRequest::default(), &HashMap::new()).unwrap();
        let step = &planned.stages[0].steps[0];
        let parent = base_key(SCRATCH);
        let one = step_key(&parent, step, ContentInput::Context(blake3::hash(b"one")));
        let two = step_key(&parent, step, ContentInput::Context(blake3::hash(b"two")));
        let stage = step_key(&parent, step, ContentInput::Stage(blake3::hash(b"one")));
        assert!(one != two && one != stage);
        let image = |byte: u8| ContentInput::Image(Digest::sha256(&[byte]));
        assert_ne!(step_key(&parent, step, image(1)), step_key(&parent, step, image(2)));
    }

    #[test]
    fn the_parent_changes_every_key_after_it() {
        let a = keys("FROM scratch\nENV A=1\nRUN make\n");
        let b = keys("FROM scratch\nENV A=2\nRUN make\n");
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }

    #[test]
    fn bases_differ_by_architecture_and_by_image() {
        let arm = base_key(BaseInput::Scratch { architecture: "arm64" });
        assert_ne!(base_key(SCRATCH), arm);
        let one = base_key(BaseInput::Image(Digest::sha256(b"1")));
        assert_ne!(one, base_key(BaseInput::Image(Digest::sha256(b"2"))));
        assert_ne!(one, base_key(SCRATCH));
    }

    #[test]
    fn every_config_instruction_has_its_own_key() {
        let lines = [
            "ENV A=1",
            "LABEL A=1",
            "ARG A=1",
            "CMD A=1",
            "ENTRYPOINT A=1",
            "USER A=1",
            "STOPSIGNAL 9",
            "VOLUME A=1",
            "EXPOSE 1",
            "MAINTAINER A=1",
            "ONBUILD RUN A=1",
            "HEALTHCHECK CMD A=1",
            "SHELL [\"A=1\"]",
        ];
        let mut seen = std::collections::HashSet::new();
        for line in lines {
            assert!(seen.insert(last_key(&format!("FROM scratch\n{line}\n"))), "{line}");
        }
    }

    #[test]
    fn the_encoding_is_pinned() {
        // A change here changes every key: bump KEY_VERSION with it.
        let key = last_key("FROM scratch\nRUN make\n");
        assert_eq!(KEY_VERSION, 2);
        assert_eq!(key.to_hex().len(), 64);
        assert_eq!(key, last_key("FROM scratch\nRUN make\n"));
        let mut encoder = Encoder::new();
        encoder.str("ab");
        encoder.opt(None);
        let mut expected = blake3::Hasher::new();
        expected.update(KEY_DOMAIN.as_bytes());
        expected.update(&2u64.to_le_bytes());
        expected.update(b"ab");
        expected.update(&[0]);
        assert_eq!(encoder.finish(), expected.finalize());
    }
}
