use super::*;
use crate::dockerfile::{instructions, parse};

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

fn plan_of(src: &str, args: &[(&str, &str)], images: &[&str]) -> Plan {
    plan(&typed(src), &request(args), &images_for(images)).unwrap()
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
    let own = plan(&typed("FROM base:1\n"), &request(&[]), &images).unwrap();
    assert_eq!(own.stages[0].config.config.env, vec!["PATH=/custom"]);
}

#[test]
fn global_arg_expands_in_from() {
    let src = "ARG BASE=alpine\nFROM ${BASE}:3\n";
    let (headers, _) = bases(&typed(src), &request(&[])).unwrap();
    assert_eq!(headers[0].base, Base::Image("alpine:3".into()));
    let (headers, _) = bases(&typed(src), &request(&[("BASE", "busybox")])).unwrap();
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
    let run = plan.stages[0].steps.last().unwrap();
    let StepKind::Run { argv, .. } = &run.kind else { panic!("{:?}", run.kind) };
    assert_eq!(argv, &vec!["/bin/sh".to_string(), "-c".into(), "echo".into()]);
    assert_eq!(run.args.entries(), &[("A".to_string(), "1".to_string())]);
    assert_eq!(run.used_args.get("A").map(String::as_str), Some("1"));
    assert!(!run.used_args.contains_key("B"));
}

#[test]
fn only_used_args_enter_a_copy_step() {
    let plan = plan_of("FROM scratch\nARG D=/x\nARG OTHER=1\nCOPY a $D\n", &[], &[]);
    let copy = plan.stages[0].steps.last().unwrap();
    assert_eq!(copy.used_args.keys().collect::<Vec<_>>(), vec!["D"]);
    let StepKind::Copy { files, .. } = &copy.kind else { panic!() };
    assert_eq!(files.dest, "/x");
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
    let only_b = plan(&typed(src), &req, &HashMap::new()).unwrap();
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
    let err = plan(&typed("FROM scratch AS one\nFROM scratch AS two\n"), &req, &HashMap::new()).unwrap_err();
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
    let plan = plan(&typed("FROM base:1\nRUN echo mine\n"), &request(&[]), &images).unwrap();
    let steps = &plan.stages[0].steps;
    assert!(steps[0].from_onbuild && steps[1].from_onbuild && !steps[2].from_onbuild);
    let StepKind::Run { argv, .. } = &steps[0].kind else { panic!() };
    assert_eq!(argv[2], "echo triggered");
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
    let StepKind::Run { argv, .. } = &plan.stages[0].steps[1].kind else { panic!() };
    assert_eq!(argv, &vec!["/bin/bash".to_string(), "-eu".into(), "-c".into(), "echo".into()]);
    let StepKind::Run { argv, .. } = &plan.stages[0].steps[2].kind else { panic!() };
    assert_eq!(argv, &vec!["x".to_string()]);
}

#[test]
fn copy_from_index_image_and_forward_reference() {
    let src = "FROM scratch\nFROM scratch\nCOPY --from=0 /a /a\nCOPY --from=busybox:1 /b /b\n";
    let (_, images) = bases(&typed(src), &request(&[])).unwrap();
    assert_eq!(images, vec!["busybox:1"]);
    let planned = plan_of(src, &[], &[]);
    let steps = &planned.stages[1].steps;
    assert!(matches!(steps[0].kind, StepKind::Copy { source: CopySource::Stage(0), .. }));
    assert!(
        matches!(&steps[1].kind, StepKind::Copy { source: CopySource::Image(i), .. } if i == "busybox:1")
    );
    let err =
        plan(&typed("FROM scratch\nCOPY --from=1 /a /a\nFROM scratch\n"), &request(&[]), &HashMap::new())
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
    let plan = plan(&typed("FROM b\nENTRYPOINT [\"/app\"]\n"), &request(&[]), &images).unwrap();
    assert_eq!(plan.stages[0].config.config.cmd, None);
}

#[test]
fn duplicate_stage_names_are_an_error() {
    assert!(bases(&typed("FROM scratch AS a\nFROM scratch AS a\n"), &request(&[])).is_err());
}

#[test]
fn proxy_build_args_reach_run_without_a_declaration_but_not_the_history() {
    let plan =
        plan_of("FROM scratch\nRUN env\n", &[("HTTP_PROXY", "http://proxy:3128"), ("OTHER", "x")], &[]);
    let step = &plan.stages[0].steps[0];
    assert_eq!(step.args.get("HTTP_PROXY"), Some("http://proxy:3128"));
    assert_eq!(step.args.get("OTHER"), None, "other build args need an ARG");
    assert!(step.history_args.is_empty());
    assert_eq!(plan.unused_build_args, vec!["OTHER".to_string()]);
}
