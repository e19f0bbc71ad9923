//! The module boundaries of ARCHITECTURE.md, checked on the source: a
//! module imports only modules of a lower layer, and never one of the
//! pairs the pipeline forbids (solve → dockerfile, sandbox → layer…).
//! Test code (`#[cfg(test)]` to the end of a file, `tests.rs`) may use any
//! module to build its inputs and is not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer, lowest first, as
/// ARCHITECTURE.md lists them.
const LAYERS: &[(&str, u32)] = &[
    ("diagnostic", 0),
    ("idmap", 0),
    ("paths", 0),
    ("dockerfile", 1),
    ("image", 1),
    ("layer", 1),
    ("context", 1),
    ("progress", 1),
    ("store", 2),
    ("sandbox", 2),
    ("plan", 2),
    ("snapshot", 3),
    ("registry", 3),
    ("solve", 4),
    ("export", 5),
    ("build", 6),
];

/// Imports a lower layer allows that the pipeline still forbids.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("solve", "dockerfile", "solve runs plan-owned ops and knows no Dockerfile syntax"),
    ("sandbox", "layer", "the sandbox runs processes and knows nothing of layers"),
    ("export", "dockerfile", "export writes images; what instructions mean is plan's"),
    ("registry", "sandbox", "the registry client speaks HTTP and knows nothing of processes"),
    ("registry", "snapshot", "the registry client moves blobs, not filesystems"),
];

fn src() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// The files of a top-level module: `src/<name>.rs` and `src/<name>/**`.
fn module_files(name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src().join(format!("{name}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let dir = src().join(name);
    if dir.is_dir() {
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
    }
    files
}

/// The code of a file without its tests and comments.
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The top-level modules named after `crate::` in `code`, grouped imports
/// (`use crate::{a, b::c}`) included.
fn imported(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `hoist_crate::` or similar, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group's top level on commas; each item starts with
            // the module it names (`d::{e, f}` names `d`).
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(leading_name(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            if !item.trim().is_empty() {
                names.insert(leading_name(&item));
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.insert(name);
        }
    }
    names
}

fn leading_name(item: &str) -> String {
    item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

fn layer_of(name: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, layer)| *layer)
}

#[test]
fn every_module_has_a_layer() {
    let mut unknown = Vec::new();
    for entry in fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main", "cli"].contains(&name.as_str()) {
            continue;
        }
        if layer_of(&name).is_none() {
            unknown.push(name);
        }
    }
    assert!(unknown.is_empty(), "modules missing from LAYERS (and ARCHITECTURE.md): {unknown:?}");
}

#[test]
fn modules_import_only_lower_layers() {
    let mut violations = BTreeMap::new();
    for (module, layer) in LAYERS {
        for file in module_files(module) {
            for name in imported(&code(&file)) {
                if name == *module {
                    continue;
                }
                let problem = match layer_of(&name) {
                    None => Some(format!("imports `{name}`, which is not a module of the layer table")),
                    Some(other) if other >= *layer => {
                        Some(format!("{module} (layer {layer}) imports {name} (layer {other})"))
                    }
                    Some(_) => FORBIDDEN
                        .iter()
                        .find(|(from, to, _)| from == module && *to == name)
                        .map(|(_, _, why)| format!("{module} imports {name}: {why}")),
                };
                if let Some(problem) = problem {
                    violations.insert(format!("{}: {problem}", file.display()), ());
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden imports:\n{}",
        violations.into_keys().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_layer_table_matches_architecture_md() {
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    for (module, layer) in LAYERS {
        let row = format!("| {layer} | `{module}` |");
        assert!(text.contains(&row), "ARCHITECTURE.md has no row starting {row:?}");
    }
}

#[test]
fn the_import_scanner_reads_grouped_and_nested_paths() {
    let code =
        "use crate::a::b;\nuse crate::{c, d::{e, f}, g};\nlet x = crate::h::y();\nfn z() -> my_crate::q {}";
    let found: Vec<String> = imported(code).into_iter().collect();
    assert_eq!(found, vec!["a", "c", "d", "g", "h"]);
}

#[test]
fn test_code_and_comments_are_not_imports() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.rs");
    fs::write(
        &file,
        "use crate::a;\n// crate::b\n/// [`x`]: crate::c\n#[cfg(test)]\nmod tests { use crate::d; }\n",
    )
    .unwrap();
    assert_eq!(imported(&code(&file)).into_iter().collect::<Vec<_>>(), vec!["a"]);
}
