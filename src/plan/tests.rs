use super::*;
use crate::dockerfile::{instructions, parse};
use crate::image::config::ImageConfig;

fn plan_escaped(
    typed: &[Instruction],
    request: &PlanRequest,
    images: &HashMap<String, ImageConfig>,
) -> Result<Plan, Diagnostic> {
    plan(typed, '\\', request, images)
}

fn bases_escaped(typed: &[Instruction], request: &PlanRequest) -> Result<Bases, Diagnostic> {
    bases(typed, '\\', request)
}

fn typed(src: &str) -> Vec<Instruction> {
    instructions::typed(&parse(src).unwrap()).unwrap()
}

fn request(args: &[(&str, &str)]) -> PlanRequest {
    PlanRequest {
        build_args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        platform: Platform::parse("linux/amd64").unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
        ..PlanRequest::default()
    }
}

fn images_for(names: &[&str]) -> HashMap<String, ImageConfig> {
    names.iter().map(|n| (n.to_string(), ImageConfig::new_for_host())).collect()
}

fn run_op(step: &Step) -> &RunOp {
    match &step.op {
        Op::Run(run) => run,
        other => panic!("not a RUN: {other:?}"),
    }
}

fn history_of(src: &str) -> Vec<Option<String>> {
    plan_of(src, &[], &[]).stages[0].steps.iter().map(|s| s.history.clone()).collect()
}

fn plan_of(src: &str, args: &[(&str, &str)], images: &[&str]) -> Plan {
    plan_escaped(&typed(src), &request(args), &images_for(images)).unwrap()
}

/// The stage's env without the default PATH every stage gets.
fn env_of(plan: &Plan, stage: usize) -> Vec<String> {
    let default = format!("PATH={DEFAULT_PATH}");
    plan.stages[stage].config.config.env.iter().filter(|e| **e != default).cloned().collect()
}

#[test]
fn a_base_without_path_gets_the_default_one_first() {
    let scratch = plan_of("FROM scratch\nENV A=1\nENV PATH=/opt:$PATH\n", &[], &[]);
    assert_eq!(
        scratch.stages[0].config.config.env,
        vec![format!("PATH=/opt:{DEFAULT_PATH}"), "A=1".to_string()]
    );
    let mut base = ImageConfig::new_for_host();
    base.config.env = vec!["PATH=/custom".into()];
    let images: HashMap<String, ImageConfig> = [("base:1".to_string(), base)].into();
    let own = plan_escaped(&typed("FROM base:1\n"), &request(&[]), &images).unwrap();
    assert_eq!(own.stages[0].config.config.env, vec!["PATH=/custom"]);
}

#[test]
fn global_arg_expands_in_from() {
    let src = "ARG BASE=alpine\nFROM ${BASE}:3\n";
    let headers = bases_escaped(&typed(src), &request(&[])).unwrap().headers;
    assert_eq!(headers[0].base, Base::Image("alpine:3".into()));
    let headers = bases_escaped(&typed(src), &request(&[("BASE", "busybox")])).unwrap().headers;
    assert_eq!(headers[0].base, Base::Image("busybox:3".into()));
}

#[test]
fn global_arg_needs_redeclaring_in_a_stage() {
    let plan = plan_of("ARG V=1\nFROM scratch\nENV A=x$V\n", &[], &[]);
    assert_eq!(env_of(&plan, 0), vec!["A=x"]);
    let plan = plan_of("ARG V=1\nFROM scratch\nARG V\nENV A=x$V\n", &[], &[]);
    assert_eq!(env_of(&plan, 0), vec!["A=x1"]);
    let plan = plan_of("ARG V=1\nFROM scratch\nARG V\nENV A=x$V\n", &[("V", "2")], &[]);
    assert_eq!(env_of(&plan, 0), vec!["A=x2"]);
}

#[test]
fn env_overrides_arg_of_the_same_name() {
    let plan = plan_of("FROM scratch\nARG X=arg\nENV X=env\nENV Y=$X\n", &[("X", "given")], &[]);
    assert_eq!(env_of(&plan, 0), vec!["X=env", "Y=env"]);
}

#[test]
fn env_pairs_on_one_line_see_the_env_before_it() {
    let plan = plan_of("FROM scratch\nENV A=hello\nENV A=bye B=$A\n", &[], &[]);
    assert_eq!(env_of(&plan, 0), vec!["A=bye", "B=hello"]);
}

#[test]
fn run_sees_args_as_env_and_uses_them_for_its_key() {
    let plan = plan_of("FROM scratch\nARG A=1\nARG B\nRUN echo\n", &[], &[]);
    let step = plan.stages[0].steps.last().unwrap();
    let run = run_op(step);
    assert_eq!(run.argv, vec!["/bin/sh".to_string(), "-c".into(), "echo".into()]);
    assert_eq!(run.env, vec![format!("PATH={DEFAULT_PATH}"), "A=1".to_string()]);
    assert_eq!(step.build_args.get("A").map(String::as_str), Some("1"));
    assert!(!step.build_args.contains_key("B"));
}

#[test]
fn only_used_args_enter_a_copy_step() {
    let plan = plan_of("FROM scratch\nARG D=/x\nARG OTHER=1\nCOPY a $D\n", &[], &[]);
    let step = plan.stages[0].steps.last().unwrap();
    assert_eq!(step.build_args.keys().collect::<Vec<_>>(), vec!["D"]);
    let Op::Copy(copy) = &step.op else { panic!() };
    assert_eq!(copy.dest, "/x");
}

#[test]
fn unused_build_args_are_reported_but_not_proxies() {
    let plan = plan_of("FROM scratch\nARG USED\n", &[("USED", "1"), ("NOPE", "2"), ("HTTP_PROXY", "x")], &[]);
    assert_eq!(plan.unused_build_args, vec!["NOPE"]);
}

#[test]
fn target_builds_only_what_it_needs_in_dependency_order() {
    let src = "FROM scratch AS a\nFROM scratch AS b\nFROM scratch AS c\nCOPY --from=a / /\nFROM scratch AS d\nCOPY --from=c / /\n";
    let all = plan_of(src, &[], &[]);
    assert_eq!(all.target, 3);
    assert_eq!(all.order, vec![0, 2, 3]);
    let mut req = request(&[]);
    req.target = Some("b".into());
    let only_b = plan_escaped(&typed(src), &req, &HashMap::new()).unwrap();
    assert_eq!(only_b.order, vec![1]);
}

#[test]
fn independent_stages_have_no_edge_between_them() {
    let src = "FROM scratch AS a\nFROM scratch AS b\nFROM scratch\nCOPY --from=a / /a\nCOPY --from=b / /b\n";
    let plan = plan_of(src, &[], &[]);
    assert_eq!(plan.graph.edge_count(), 2);
    assert!(!plan.graph.contains_edge(NodeIndex::new(0), NodeIndex::new(1)));
}

#[test]
fn unknown_target_lists_the_stages() {
    let mut req = request(&[]);
    req.target = Some("nope".into());
    let err = plan_escaped(&typed("FROM scratch AS one\nFROM scratch AS two\n"), &req, &HashMap::new())
        .unwrap_err();
    assert!(err.message.contains("\"nope\""));
    assert_eq!(err.hint.as_deref(), Some("stages are: one, two"));
}

#[test]
fn from_a_previous_stage_inherits_its_config() {
    let plan = plan_of("FROM scratch AS base\nENV A=1\nWORKDIR /app\nFROM base\nENV B=2\n", &[], &[]);
    assert_eq!(plan.stages[1].header.base, Base::Stage(0));
    assert_eq!(env_of(&plan, 1), vec!["A=1", "B=2"]);
    assert_eq!(plan.stages[1].config.config.working_dir, "/app");
    assert_eq!(plan.order, vec![0, 1]);
}

#[test]
fn onbuild_triggers_of_the_base_run_first_and_are_not_inherited() {
    let mut base = ImageConfig::new_for_host();
    base.config.on_build = vec!["RUN echo triggered".into(), "ENV FROM_TRIGGER=1".into()];
    let images: HashMap<String, ImageConfig> = [("base:1".to_string(), base)].into();
    let plan = plan_escaped(&typed("FROM base:1\nRUN echo mine\n"), &request(&[]), &images).unwrap();
    let steps = &plan.stages[0].steps;
    assert!(steps[0].from_onbuild && steps[1].from_onbuild && !steps[2].from_onbuild);
    assert_eq!(run_op(&steps[0]).argv[2], "echo triggered");
    assert!(plan.stages[0].config.config.on_build.is_empty());
    assert_eq!(env_of(&plan, 0), vec!["FROM_TRIGGER=1"]);
}

#[test]
fn platform_args_exist_globally_and_when_redeclared() {
    let src =
        "FROM --platform=$BUILDPLATFORM scratch\nENV A=x$TARGETARCH\nARG TARGETARCH\nENV B=$TARGETARCH\n";
    let plan = plan_of(src, &[], &[]);
    assert_eq!(plan.stages[0].header.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(env_of(&plan, 0), vec!["A=x", "B=amd64"]);
}

#[test]
fn shell_changes_run_argv() {
    let plan =
        plan_of("FROM scratch\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN echo\nRUN [\"x\"]\n", &[], &[]);
    let argv = &run_op(&plan.stages[0].steps[1]).argv;
    assert_eq!(argv, &vec!["/bin/bash".to_string(), "-eu".into(), "-c".into(), "echo".into()]);
    assert_eq!(run_op(&plan.stages[0].steps[2]).argv, vec!["x".to_string()]);
}

#[test]
fn copy_from_index_image_and_forward_reference() {
    let src = "FROM scratch\nFROM scratch\nCOPY --from=0 /a /a\nCOPY --from=busybox:1 /b /b\n";
    let found = bases_escaped(&typed(src), &request(&[])).unwrap();
    assert_eq!(found.images(), vec![("busybox:1".to_string(), Span { start: 4, end: 4 })]);
    let planned = plan_of(src, &[], &[]);
    let steps = &planned.stages[1].steps;
    assert!(matches!(&steps[0].op, Op::Copy(CopyOp { from: CopyFrom::Stage(0), .. })));
    assert!(matches!(&steps[1].op, Op::Copy(CopyOp { from: CopyFrom::Image(i), .. }) if i == "busybox:1"));
    let err = plan_escaped(
        &typed("FROM scratch\nCOPY --from=1 /a /a\nFROM scratch\n"),
        &request(&[]),
        &HashMap::new(),
    )
    .unwrap_err();
    assert!(err.message.contains("not before this one"));
}

#[test]
fn workdir_user_and_labels_expand() {
    let plan = plan_of("FROM scratch\nARG U=app\nENV D=/srv\nWORKDIR $D/x\nUSER $U\nLABEL k=$D\n", &[], &[]);
    let config = &plan.stages[0].config.config;
    assert_eq!(config.working_dir, "/srv/x");
    assert_eq!(config.user, "app");
    assert_eq!(config.labels.get("k").map(String::as_str), Some("/srv"));
}

#[test]
fn entrypoint_resets_an_inherited_cmd() {
    let mut base = ImageConfig::new_for_host();
    base.config.cmd = Some(vec!["sh".into()]);
    let images: HashMap<String, ImageConfig> = [("b".to_string(), base)].into();
    let plan = plan_escaped(&typed("FROM b\nENTRYPOINT [\"/app\"]\n"), &request(&[]), &images).unwrap();
    assert_eq!(plan.stages[0].config.config.cmd, None);
}

#[test]
fn duplicate_stage_names_are_an_error() {
    assert!(bases_escaped(&typed("FROM scratch AS a\nFROM scratch AS a\n"), &request(&[])).is_err());
}

#[test]
fn proxy_build_args_reach_run_without_a_declaration_but_not_the_history() {
    let plan =
        plan_of("FROM scratch\nRUN env\n", &[("HTTP_PROXY", "http://proxy:3128"), ("OTHER", "x")], &[]);
    let step = &plan.stages[0].steps[0];
    let run = run_op(step);
    assert_eq!(run.proxy_env, vec!["HTTP_PROXY=http://proxy:3128".to_string()]);
    assert!(!run.env.iter().any(|e| e.starts_with("OTHER=") || e.starts_with("HTTP_PROXY")), "{:?}", run.env);
    assert_eq!(step.history.as_deref(), Some("RUN /bin/sh -c env # buildkit"));
    assert_eq!(plan.unused_build_args, vec!["OTHER".to_string()]);
}

#[test]
fn history_rows_read_as_buildkit_writes_them() {
    let rows = history_of(concat!(
        "FROM scratch\n",
        "ARG V=1 W\n",
        "ENV A=$V\n",
        "RUN echo $V\n",
        "COPY --chown=1 a b /d/\n",
        "ADD <<one /d/\nx\none\n",
        "WORKDIR rel\n",
        "CMD echo hi\n",
        "EXPOSE 80 53/UDP\n",
        "SHELL [\"/bin/bash\", \"-c\"]\n",
        "HEALTHCHECK --interval=90s --retries=4 CMD true\n",
        "ONBUILD RUN x\n",
    ));
    let expected = [
        Some("ARG V=1 W"),
        Some("ENV A=1"),
        Some("RUN |2 V=1 W= /bin/sh -c echo $V # buildkit"),
        Some("COPY --chown=1 a b /d/ # buildkit"),
        Some("ADD <<one /d/ # buildkit"),
        Some("WORKDIR /rel"),
        Some("CMD [\"/bin/sh\" \"-c\" \"echo hi\"]"),
        Some("EXPOSE [53/udp 80/tcp]"),
        Some("SHELL [/bin/bash -c]"),
        Some(
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:1m30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:4}",
        ),
        None,
    ];
    assert_eq!(rows, expected.map(|row| row.map(String::from)));
}

#[test]
fn history_of_a_heredoc_run_shows_the_script_the_shell_gets() {
    let rows = history_of("FROM scratch\nRUN <<EOF\necho a\nEOF\nRUN <<EOT\n#!/bin/ash\necho b\nEOT\n");
    assert_eq!(rows[0].as_deref(), Some("RUN /bin/sh -c echo a\n # buildkit"));
    assert_eq!(rows[1].as_deref(), Some("RUN /bin/sh -c /dev/pipes/EOT # buildkit"));
}

#[test]
fn steps_lower_to_ops() {
    let plan = plan_of(
        "FROM scratch\nUSER app\nWORKDIR /w\nRUN --network=none make\nCOPY a .\nLABEL k=v\n",
        &[],
        &[],
    );
    let steps = &plan.stages[0].steps;
    assert_eq!(steps[1].op, Op::Workdir(WorkdirOp { path: "/w".into(), user: Some("app".into()) }));
    let run = run_op(&steps[2]);
    assert_eq!((run.user.as_deref(), run.workdir.as_str(), run.network), (Some("app"), "/w", Network::None));
    let Op::Copy(copy) = &steps[3].op else { panic!() };
    assert_eq!((copy.dest.as_str(), copy.dest_is_dir, &copy.from), ("/w/.", true, &CopyFrom::Context));
    assert_eq!(steps[4].op, Op::Config(ConfigChange::Label(vec![("k".into(), "v".into())])));
    assert_eq!(steps[2].span, Span { start: 4, end: 4 });
    assert_eq!(steps[2].text, "RUN --network=none make");
}

#[test]
fn the_build_network_is_what_run_gets_by_default() {
    let mut req = request(&[]);
    req.network = Network::None;
    let plan = plan_escaped(&typed("FROM scratch\nRUN true\n"), &req, &HashMap::new()).unwrap();
    assert_eq!(run_op(&plan.stages[0].steps[0]).network, Network::None);
}

#[test]
fn unimplemented_flags_are_refused_at_their_line() {
    for (line, flag) in [
        ("COPY --parents a /d/", "--parents"),
        ("COPY --exclude=*.md . /d/", "--exclude"),
        ("ADD https://example.invalid/f /f", "URL"),
        ("ADD --checksum=sha256:00 a /f", "--checksum"),
    ] {
        let err = plan_escaped(&typed(&format!("FROM scratch\n{line}\n")), &request(&[]), &HashMap::new())
            .unwrap_err();
        assert!(err.message.contains(flag) && err.line == 2, "{line}: {err:?}");
    }
}

#[test]
fn from_platform_of_another_machine_is_refused_only_when_the_stage_is_built() {
    let other = "FROM --platform=linux/s390x scratch AS other\nFROM scratch\n";
    assert!(plan_escaped(&typed(other), &request(&[]), &HashMap::new()).is_ok());
    let mut req = request(&[]);
    req.target = Some("other".into());
    let err = plan_escaped(&typed(other), &req, &HashMap::new()).unwrap_err();
    assert!(err.message.contains("does not emulate") && err.line == 1, "{err:?}");
}

#[test]
fn an_arg_after_an_env_of_the_same_name_wins_for_run_but_not_the_config() {
    // BuildKit's dispatchArg adds the ARG's value to the build environment.
    let plan = plan_of("FROM scratch\nENV X=env\nARG X=arg\nRUN echo $X\n", &[], &[]);
    let run = run_op(plan.stages[0].steps.last().unwrap());
    assert!(run.env.contains(&"X=arg".to_string()), "{:?}", run.env);
    assert_eq!(env_of(&plan, 0), vec!["X=env"]);
    // An ENV after the ARG wins again.
    let plan = plan_of("FROM scratch\nARG X=arg\nENV X=env\nRUN true\n", &[], &[]);
    assert!(run_op(plan.stages[0].steps.last().unwrap()).env.contains(&"X=env".to_string()));
}

#[test]
fn entrypoint_keeps_a_cmd_set_in_its_own_stage() {
    let plan = plan_of("FROM scratch\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\n", &[], &[]);
    assert_eq!(plan.stages[0].config.config.cmd, Some(vec!["a".to_string()]));
    let plan = plan_of("FROM scratch\nCMD a\nENTRYPOINT e\n", &[], &[]);
    assert_eq!(plan.stages[0].config.config.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "a".into()]));
}

#[test]
fn a_scratch_stage_starts_as_buildkits_empty_image() {
    let plan = plan_of("FROM scratch\n", &[], &[]);
    let config = &plan.stages[0].config;
    assert_eq!(config.config.working_dir, "/");
    assert_eq!(config.config.env, vec![format!("PATH={DEFAULT_PATH}")]);
}

#[test]
fn a_base_without_path_gets_it_appended() {
    let mut base = ImageConfig::new_for_host();
    base.config.env = vec!["A=1".into()];
    let images: HashMap<String, ImageConfig> = [("b:1".to_string(), base)].into();
    let plan = plan_escaped(&typed("FROM b:1\n"), &request(&[]), &images).unwrap();
    assert_eq!(plan.stages[0].config.config.env, vec!["A=1".to_string(), format!("PATH={DEFAULT_PATH}")]);
}

#[test]
fn volume_words_are_expanded_but_not_split() {
    let plan = plan_of("FROM scratch\nENV V=\"/a /b\"\nVOLUME $V /c\n", &[], &[]);
    let volumes: Vec<&String> = plan.stages[0].config.config.volumes.keys().collect();
    assert_eq!(volumes, vec!["/a /b", "/c"]);
    let err = plan_escaped(&typed("FROM scratch\nVOLUME [\"$NOPE\"]\n"), &request(&[]), &HashMap::new())
        .unwrap_err();
    assert!(err.message.contains("empty string"), "{err:?}");
}

#[test]
fn workdir_slash_makes_no_layer() {
    let plan = plan_of("FROM scratch\nWORKDIR /\nWORKDIR /app\n", &[], &[]);
    let steps = &plan.stages[0].steps;
    assert!(matches!(steps[0].op, Op::Config(ConfigChange::Workdir(_))));
    assert!(matches!(steps[1].op, Op::Workdir(_)));
}

#[test]
fn the_escape_directive_applies_to_expansion() {
    let src = "# escape=`\nFROM scratch\nENV A=1\nENV B=\"C:\\dir `$A $A\"\n";
    let file = parse(src).unwrap();
    let typed = instructions::typed(&file).unwrap();
    let plan = plan(&typed, file.escape, &request(&[]), &HashMap::new()).unwrap();
    assert!(env_of(&plan, 0).contains(&"B=C:\\dir $A 1".to_string()), "{:?}", env_of(&plan, 0));
}

#[test]
fn heredoc_files_expand_with_quotes_taken_literally() {
    let plan = plan_of("FROM scratch\nARG N=world\nCOPY <<EOF /f\n'$N' \"$N\" \\$N\nEOF\n", &[], &[]);
    let Op::Copy(copy) = &plan.stages[0].steps[1].op else { panic!() };
    assert_eq!(copy.inline_files[0].content, "'world' \"world\" $N\n");
}

#[test]
fn a_stage_built_on_a_stage_inherits_its_build_args_but_not_its_triggers() {
    let src = "FROM scratch AS base\nARG V=1\nONBUILD RUN echo trigger\nFROM base\nRUN echo $V\n";
    let plan = plan_of(src, &[], &[]);
    let steps = &plan.stages[1].steps;
    assert_eq!(steps.len(), 1, "the parent stage's ONBUILD does not run");
    let run = run_op(&steps[0]);
    assert!(run.env.contains(&"V=1".to_string()), "{:?}", run.env);
    assert_eq!(steps[0].history.as_deref(), Some("RUN |1 V=1 /bin/sh -c echo $V # buildkit"));
    assert!(plan.stages[1].config.config.on_build.is_empty());
}

#[test]
fn arg_history_shows_the_value_each_declaration_took() {
    let plan = plan_of("ARG G=global\nFROM scratch\nARG G\nARG D=default\nARG B\n", &[("B", "given")], &[]);
    let rows: Vec<_> = plan.stages[0].steps.iter().map(|s| s.history.clone().unwrap()).collect();
    assert_eq!(rows, vec!["ARG G=global", "ARG D=default", "ARG B=given"]);
}
