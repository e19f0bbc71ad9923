//! Any bytes through every stage that reads Dockerfile text: parse, dump,
//! JSON, typed instructions, word expansion of every argument. Only a panic, a hang or a crash is a finding.
#![no_main]

use hoist::dockerfile::shell::ShellLexer;
use hoist::dockerfile::{instructions, parse_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = parse_bytes(data) {
        let _ = file.dump();
        let _ = serde_json::to_string(&file);
        let _ = instructions::typed(&file);
        let lexer = ShellLexer::new(file.escape);
        let env = [("A", "1"), ("PATH", "/bin")];
        for node in &file.nodes {
            for arg in &node.args {
                let _ = lexer.process_words(arg, &env);
            }
        }
    }
});
