//! Progress: the one stream of [`Event`]s a build emits, and its renderers.
//!
//! - [`Event`], [`Stream`]: what happened to which step.
//! - [`Progress`]: what receives the events.
//! - [`renderer`]: the renderer for a [`Mode`]: `plain` writes BuildKit's log
//!   format for CI (`#N [stage i/n] INSTRUCTION`, output lines prefixed with
//!   `#N` and the seconds since the step started, `#N CACHED`,
//!   `#N DONE 0.4s`, `#N ERROR: …`), `json` writes one event per line, `tty`
//!   draws a line per running step with its elapsed time and the tail of its
//!   output (indicatif), `quiet` writes nothing, and `auto` is `tty` on a
//!   terminal and `plain` otherwise.
//!
//! Renderers only show; they decide nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Which output a step's line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The step's standard output.
    Stdout,
    /// The step's standard error.
    Stderr,
}

/// Something that happened in a build. `id` numbers the step (`#N`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A step began.
    Started {
        /// The step's number, unique in the build.
        id: usize,
        /// What the user reads: `[build 2/5] RUN make`.
        name: String,
    },
    /// A step's result came from the cache; it did not run.
    Cached {
        /// The step's number.
        id: usize,
    },
    /// One line a running step wrote.
    Output {
        /// The step's number.
        id: usize,
        /// Which output the line came from.
        stream: Stream,
        /// The line without its line ending, invalid UTF-8 replaced.
        line: String,
    },
    /// A step finished.
    Done {
        /// The step's number.
        id: usize,
        /// How long it ran, in seconds.
        seconds: f64,
    },
    /// A step failed.
    Failed {
        /// The step's number.
        id: usize,
        /// How long it ran before failing, in seconds.
        seconds: f64,
        /// Why it failed.
        message: String,
    },
    /// Bytes moved so far by a step that transfers data (a layer pulled
    /// or pushed).
    Transfer {
        /// The step.
        id: usize,
        /// Bytes so far.
        current: u64,
        /// Bytes in all; 0 when not known.
        total: u64,
    },
    /// Something the user should know that belongs to no step.
    Warning {
        /// The warning's text.
        message: String,
    },
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Tty` on a terminal, `Plain` otherwise.
    Auto,
    /// A line per running step, redrawn in place, with the tail of its output.
    Tty,
    /// BuildKit's plain log format, for CI.
    Plain,
    /// One JSON object per event, one per line.
    Json,
    /// Nothing.
    Quiet,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "auto" => Ok(Mode::Auto),
            "tty" => Ok(Mode::Tty),
            "plain" => Ok(Mode::Plain),
            "json" => Ok(Mode::Json),
            "quiet" => Ok(Mode::Quiet),
            other => Err(format!("unknown progress mode {other:?}: use auto, tty, plain, json or quiet")),
        }
    }
}

/// Receives the events of a build; shared by the threads that run steps.
pub trait Progress: Send + Sync {
    /// Shows one event; events of one step come in the order they happened.
    fn event(&self, event: Event);
    /// Called once at the end, to finish drawing.
    fn finish(&self) {}
}

/// Runs `work` as step `id`: `Started` with `name`, then `Done` or `Failed`
/// (with the error's text) and the seconds it took.
pub fn step<T, E: std::fmt::Display>(
    progress: &dyn Progress,
    id: usize,
    name: String,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let started = Instant::now();
    progress.event(Event::Started { id, name });
    let result = work();
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => progress.event(Event::Done { id, seconds }),
        Err(error) => progress.event(Event::Failed { id, seconds, message: error.to_string() }),
    }
    result
}

/// A renderer for `mode` writing to `out` (standard error for builds).
pub fn renderer(mode: Mode, out: Box<dyn Write + Send>, out_is_terminal: bool) -> Box<dyn Progress> {
    let mode = match mode {
        Mode::Auto if out_is_terminal => Mode::Tty,
        Mode::Auto => Mode::Plain,
        other => other,
    };
    match mode {
        Mode::Tty => Box::new(Tty::new(indicatif::ProgressDrawTarget::stderr())),
        Mode::Plain => Box::new(Plain::new(out)),
        Mode::Json => Box::new(Json { out: Mutex::new(out) }),
        Mode::Quiet | Mode::Auto => Box::new(Quiet),
    }
}

/// Whether standard error is a terminal (for `Mode::Auto`).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

struct Quiet;

impl Progress for Quiet {
    fn event(&self, _event: Event) {}
}

struct Json {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Progress for Json {
    fn event(&self, event: Event) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = serde_json::to_writer(&mut *out, &event);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

/// BuildKit's `--progress=plain`.
struct Plain {
    out: Mutex<Box<dyn Write + Send>>,
    started: Mutex<HashMap<usize, Instant>>,
    /// When each transfer was last shown.
    transfers: Mutex<HashMap<usize, Instant>>,
}

impl Plain {
    fn new(out: Box<dyn Write + Send>) -> Plain {
        Plain {
            out: Mutex::new(out),
            started: Mutex::new(HashMap::new()),
            transfers: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Plain {
    fn event(&self, event: Event) {
        let text = match &event {
            Event::Started { id, name } => {
                self.started.lock().unwrap_or_else(|e| e.into_inner()).insert(*id, Instant::now());
                format!("#{id} {name}\n")
            }
            Event::Cached { id } => format!("#{id} CACHED\n\n"),
            Event::Output { id, line, .. } => {
                let elapsed = self
                    .started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id)
                    .map_or(Duration::ZERO, Instant::elapsed);
                format!("#{id} {:.3} {line}\n", elapsed.as_secs_f64())
            }
            Event::Done { id, seconds } => format!("#{id} DONE {seconds:.1}s\n\n"),
            Event::Failed { id, seconds, message } => format!("#{id} ERROR: {message} ({seconds:.1}s)\n\n"),
            Event::Warning { message } => format!("WARNING: {message}\n"),
            Event::Transfer { id, current, total } => {
                // A line a second at most: CI logs stay readable.
                let mut shown = self.transfers.lock().unwrap_or_else(|e| e.into_inner());
                let due = shown.get(id).is_none_or(|at: &Instant| at.elapsed() >= Duration::from_secs(1));
                if !due {
                    return;
                }
                shown.insert(*id, Instant::now());
                let elapsed = self
                    .started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id)
                    .map_or(Duration::ZERO, Instant::elapsed);
                format!("#{id} {} {:.1}s\n", transferred(*current, *total), elapsed.as_secs_f64())
            }
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// `12.3MB / 45.6MB`, as BuildKit shows a transfer.
fn transferred(current: u64, total: u64) -> String {
    let size = |bytes: u64| {
        let mb = bytes as f64 / 1e6;
        if mb >= 100.0 {
            format!("{mb:.0}MB")
        } else if mb >= 0.1 {
            format!("{mb:.1}MB")
        } else {
            format!("{:.0}kB", bytes as f64 / 1e3)
        }
    };
    if total == 0 { size(current) } else { format!("{} / {}", size(current), size(total)) }
}

/// How many output lines a running step shows under its spinner.
const TAIL_LINES: usize = 5;

struct TtyStep {
    bar: indicatif::ProgressBar,
    name: String,
    tail: Vec<String>,
}

/// A line per running step with its elapsed time, CACHED or DONE when it
/// ends, and the last lines of its output while it runs.
struct Tty {
    bars: indicatif::MultiProgress,
    steps: Mutex<HashMap<usize, TtyStep>>,
}

impl Tty {
    fn new(target: indicatif::ProgressDrawTarget) -> Tty {
        Tty { bars: indicatif::MultiProgress::with_draw_target(target), steps: Mutex::new(HashMap::new()) }
    }

    fn style() -> indicatif::ProgressStyle {
        indicatif::ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4}\n{wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
    }
}

impl Progress for Tty {
    fn event(&self, event: Event) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Started { id, name } => {
                let bar = self.bars.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(Tty::style());
                bar.set_prefix(format!("#{id} {name}"));
                bar.enable_steady_tick(Duration::from_millis(120));
                steps.insert(id, TtyStep { bar, name, tail: Vec::new() });
            }
            Event::Output { id, line, .. } => {
                if let Some(step) = steps.get_mut(&id) {
                    step.tail.push(line);
                    if step.tail.len() > TAIL_LINES {
                        step.tail.remove(0);
                    }
                    step.bar.set_message(step.tail.join("\n"));
                }
            }
            Event::Cached { id } => {
                if let Some(step) = steps.remove(&id) {
                    step.bar.finish_and_clear();
                    let _ = self.bars.println(format!("#{id} {} CACHED", step.name));
                }
            }
            Event::Done { id, seconds } => {
                if let Some(step) = steps.remove(&id) {
                    step.bar.finish_and_clear();
                    let _ = self.bars.println(format!("#{id} {} DONE {seconds:.1}s", step.name));
                }
            }
            Event::Failed { id, seconds, message } => {
                if let Some(step) = steps.remove(&id) {
                    step.bar.finish_and_clear();
                    let _ = self.bars.println(format!("#{id} {} ERROR {seconds:.1}s", step.name));
                    for line in &step.tail {
                        let _ = self.bars.println(format!("    {line}"));
                    }
                    let _ = self.bars.println(format!("    {message}"));
                }
            }
            Event::Warning { message } => {
                let _ = self.bars.println(format!("WARNING: {message}"));
            }
            Event::Transfer { id, current, total } => {
                if let Some(step) = steps.get_mut(&id) {
                    step.bar.set_message(transferred(current, total));
                }
            }
        }
    }

    fn finish(&self) {
        for (_, step) in self.steps.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            step.bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn run(mode: Mode, terminal: bool) -> String {
        let out = Captured::default();
        let progress = renderer(mode, Box::new(out.clone()), terminal);
        progress.event(Event::Started { id: 1, name: "[build 1/2] RUN make".into() });
        progress.event(Event::Output { id: 1, stream: Stream::Stdout, line: "compiling".into() });
        progress.event(Event::Done { id: 1, seconds: 0.42 });
        progress.event(Event::Started { id: 2, name: "[build 2/2] COPY . /src".into() });
        progress.event(Event::Cached { id: 2 });
        progress.finish();
        out.text()
    }

    #[test]
    fn plain_mode_writes_buildkit_log_lines() {
        let text = run(Mode::Plain, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#1 [build 1/2] RUN make");
        assert!(lines[1].starts_with("#1 0.0") && lines[1].ends_with(" compiling"), "{text}");
        assert_eq!(lines[2], "#1 DONE 0.4s");
        assert_eq!(lines[4], "#2 [build 2/2] COPY . /src");
        assert_eq!(lines[5], "#2 CACHED");
    }

    #[test]
    fn json_mode_writes_one_event_per_line() {
        let text = run(Mode::Json, false);
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0]["type"], "started");
        assert_eq!(events[1]["stream"], "stdout");
        assert_eq!(events[4]["type"], "cached");
    }

    #[test]
    fn auto_is_plain_when_not_a_terminal() {
        assert!(run(Mode::Auto, false).starts_with("#1 [build 1/2] RUN make\n"));
    }

    #[test]
    fn tty_mode_keeps_a_line_per_running_step_and_the_output_tail() {
        let tty = Tty::new(indicatif::ProgressDrawTarget::hidden());
        tty.event(Event::Started { id: 1, name: "RUN a".into() });
        tty.event(Event::Started { id: 2, name: "RUN b".into() });
        for n in 0..8 {
            tty.event(Event::Output { id: 1, stream: Stream::Stderr, line: format!("line {n}") });
        }
        {
            let steps = tty.steps.lock().unwrap();
            assert_eq!(steps.len(), 2);
            assert_eq!(steps[&1].tail, (3..8).map(|n| format!("line {n}")).collect::<Vec<_>>());
        }
        tty.event(Event::Done { id: 1, seconds: 1.0 });
        tty.event(Event::Failed { id: 2, seconds: 1.0, message: "exit code 1".into() });
        assert!(tty.steps.lock().unwrap().is_empty());
        tty.finish();
    }

    #[test]
    fn quiet_writes_nothing() {
        assert_eq!(run(Mode::Quiet, false), "");
    }

    #[test]
    fn modes_parse_from_flags() {
        assert_eq!("plain".parse::<Mode>(), Ok(Mode::Plain));
        assert!("fancy".parse::<Mode>().is_err());
    }
}
