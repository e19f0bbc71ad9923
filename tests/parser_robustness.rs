//! Arbitrary and mutated input never makes the parser panic, and the work it
//! does grows linearly with the input.

mod common;

use std::fs;

use hoist::dockerfile::shell::ShellLexer;
use hoist::dockerfile::{instructions, parse, parse_bytes};

/// xorshift64*: a fixed seed keeps failures reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs every stage that takes Dockerfile text; only a panic fails.
fn exercise(bytes: &[u8]) {
    if let Ok(file) = parse_bytes(bytes) {
        let _ = file.dump();
        let _ = serde_json::to_string(&file).unwrap();
        let _ = instructions::typed(&file);
        let lexer = ShellLexer::new(file.escape);
        let env = [("A", "1"), ("PATH", "/bin")];
        for node in &file.nodes {
            for arg in &node.args {
                let _ = lexer.process_words(arg, &env);
            }
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = common::conformance_dir().join("buildkit/frontend/dockerfile/parser/testfiles");
    let mut seeds: Vec<Vec<u8>> =
        fs::read_dir(dir).unwrap().map(|e| fs::read(e.unwrap().path().join("Dockerfile")).unwrap()).collect();
    seeds.push(
        b"# escape=`\nFROM a\nRUN <<EOF cat `\n  <<-'X'\nbody\nEOF\n\tX\nCOPY --chown=\"a b\" <<A /x\nA\n"
            .to_vec(),
    );
    seeds.push(
        b"FROM a\nHEALTHCHECK --interval=5s CMD [\"x\"]\nONBUILD COPY <<E /e\nE\nARG a=\"b c\" d\n".to_vec(),
    );
    seeds
}

const ALPHABET: &[u8] = b" \t\r\n\\`#=<>-'\"[]{},:$0123456789aARUNCOPYFROMENVLABELONBUILDHEALTHCHECK";
const TOKENS: &[&[u8]] = &[
    b"RUN ",
    b"FROM ",
    b"COPY ",
    b"ONBUILD ",
    b"HEALTHCHECK ",
    b"ENV ",
    b"ARG ",
    b"<<EOF",
    b"<<-'E'",
    b"\nEOF\n",
    b"\\\n",
    b"`\n",
    b"# escape=`\n",
    b"# syntax=x\n",
    b"[\"a\",",
    b"[[[[",
    b"--flag=",
    b"\"",
    b"'",
    b"\xff\xfe",
    "♥".as_bytes(),
    b"\x00",
];

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => rng.next() as u8,
                _ => ALPHABET[rng.below(ALPHABET.len())],
            })
            .collect();
        exercise(&bytes);
    }
}

#[test]
fn mutated_testfiles_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(8) {
            let at = if bytes.is_empty() { 0 } else { rng.below(bytes.len() + 1) };
            match rng.below(5) {
                0 if !bytes.is_empty() => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    bytes.drain(at.min(end)..end);
                }
                1 => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    bytes.splice(at..at, token.iter().copied());
                }
                2 if at < bytes.len() => bytes[at] = rng.next() as u8,
                3 if !bytes.is_empty() => {
                    let start = rng.below(bytes.len());
                    let end = (start + rng.below(64)).min(bytes.len());
                    let copy = bytes[start..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            }
        }
        exercise(&bytes);
    }
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    let deep_json = format!("FROM a\nCMD {}\"x\"{}\n", "[".repeat(100_000), "]".repeat(100_000));
    exercise(deep_json.as_bytes());
    let deep_onbuild = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(100_000));
    exercise(deep_onbuild.as_bytes());
}

/// Pathological lines (one huge continuation, long runs of blanks in a
/// directive, a heredoc marker repeated on one line) finish: a quadratic
/// parser would take minutes on these sizes. This asserts completion, not
/// time; benches/parse.rs reports the throughput.
#[test]
fn pathological_lines_complete() {
    let blanks = format!("# syntax=a{}b\nFROM a\n", " ".repeat(200_000));
    parse(&blanks).unwrap();
    let continuation = format!("FROM a\nRUN {}x\n", "a \\\n".repeat(100_000));
    parse(&continuation).unwrap();
    let markers = format!("FROM a\nRUN cat {}\n{}", "<<E ".repeat(20_000), "E\n".repeat(20_000));
    let file = parse(&markers).unwrap();
    assert_eq!(file.nodes[1].heredocs.len(), 20_000);
    let flags = format!("FROM a\nRUN {}true\n", "--mount=type=tmpfs,target=/t ".repeat(50_000));
    parse(&flags).unwrap();
    let spaces = format!("FROM a\nCMD [{}\"x\"{}]\n", " ".repeat(200_000), " ".repeat(200_000));
    parse(&spaces).unwrap();
}
