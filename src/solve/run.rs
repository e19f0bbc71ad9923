//! RUN: a [`RunOp`] executed in a sandbox on a working root whose changes
//! become the layer.
//!
//! - Output streams to progress line by line; the last lines are kept for
//!   the error if the process fails.
//! - An inline script is written to `tmp/` and bound read-only at its path.
//! - `/dev`, `/proc` and `/sys` the sandbox had to create stay in the layer
//!   as empty 0755 directories (as BuildKit's runc leaves them); other mount
//!   points it created are left out.

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use super::{Build, BuiltLayer, StepError};
use crate::layer::Compression;
use crate::plan::{Network, RunOp};
use crate::progress::{Event, Stream};
use crate::sandbox::{self, Output, RootFs, SandboxSpec};
use crate::snapshot::{RootDescription, WorkingRoot};

/// How many lines of a failed step's output the error repeats.
const ERROR_TAIL_LINES: usize = 10;

impl Build<'_> {
    /// Runs `run` on `layers`; the layer of its changes, or `None` when it
    /// changed nothing.
    pub(super) fn execute_run(
        &self,
        id: usize,
        run: &RunOp,
        layers: &[BuiltLayer],
    ) -> Result<Option<BuiltLayer>, StepError> {
        let working = self.snapshots()?.prepare(&Self::layer_blobs(layers)).map_err(StepError::Prepare)?;
        let result = self.run_on(id, run, &working);
        // Released whatever happened (a root that cannot be removed now is
        // swept by a later hoist); nothing of a failed step stays.
        let _ = working.release();
        result
    }

    fn run_on(&self, id: usize, run: &RunOp, working: &WorkingRoot) -> Result<Option<BuiltLayer>, StepError> {
        let mut spec = SandboxSpec::new(RootFs::from(working.rootfs()), run.argv.clone());
        // Kept until the sandbox is gone: the script is bound from it.
        let _script = match &run.inline_script {
            Some(script) => {
                let file = self.write_script(&script.content)?;
                spec.mounts.push(sandbox::BindMount {
                    source: file.to_path_buf(),
                    target: script.path.clone(),
                    readonly: true,
                });
                Some(file)
            }
            None => None,
        };
        spec.env = run.env.clone();
        spec.cwd = run.workdir.clone();
        spec.user = run.user.clone();
        spec.hostname = "buildkitsandbox".into();
        spec.network = match run.network {
            Network::Host => sandbox::Network::Host,
            Network::None => sandbox::Network::None,
        };
        spec.cancel = Some(self.options.cancel.clone());
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let lines = Arc::new(Mutex::new(LineSplitter::new(id, tail.clone())));
        let sink = lines.clone();
        // The progress renderer is shared by reference; events go through a
        // channel drained on this thread so the callback stays 'static.
        let (tx, rx) = mpsc::channel::<Event>();
        spec.output = Output::Capture(Box::new(move |stream, bytes| {
            let stream = match stream {
                sandbox::Stream::Stdout => Stream::Stdout,
                sandbox::Stream::Stderr => Stream::Stderr,
            };
            for event in sink.lock().unwrap().push(stream, bytes) {
                let _ = tx.send(event);
            }
        }));
        let progress = self.options.progress;
        let outcome = std::thread::scope(|scope| {
            let handle = scope.spawn(move || sandbox::run(spec));
            for event in rx {
                progress.event(event);
            }
            handle.join().expect("sandbox thread")
        });
        for event in lines.lock().unwrap().flush() {
            progress.event(event);
        }
        let outcome = outcome?;
        if outcome.cancelled {
            return Err(StepError::Cancelled);
        }
        let failed = match outcome.status {
            sandbox::ExitStatus::Exited(0) if !outcome.timed_out => None,
            sandbox::ExitStatus::Exited(code) => Some(format!("exit code: {code}")),
            sandbox::ExitStatus::Signaled(signal) => Some(format!("killed by signal {signal}")),
        };
        if let Some(status) = failed {
            let tail: Vec<String> = tail.lock().unwrap().iter().cloned().collect();
            let mut message =
                format!("process \"{}\" did not complete successfully: {status}", argv_text(&run.argv));
            if !tail.is_empty() {
                message.push_str("\n  last output:\n");
                for line in tail {
                    message.push_str(&format!("    {line}\n"));
                }
            }
            return Err(StepError::failed(message));
        }
        // BuildKit's runc leaves the /dev, /proc and /sys directories it had
        // to create in the layer (empty, 0755); the files bound over
        // /etc/hosts and friends it removes.
        let mut ignore: Vec<PathBuf> = Vec::new();
        for point in &outcome.created_mount_points {
            if ["dev", "proc", "sys"].iter().any(|d| point == Path::new(d)) {
                let dir = working.upper_dir().join(point);
                if let Err(e) = fs::create_dir(&dir)
                    && e.kind() != std::io::ErrorKind::AlreadyExists
                {
                    return Err(StepError::io(&dir)(e));
                }
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
            } else {
                ignore.push(point.clone());
            }
        }
        let mut blob = self.options.store.blob_writer()?;
        let summary = working.diff(&mut blob, Compression::None, &ignore).map_err(StepError::Diff)?;
        // An empty tar is two zero blocks: the step changed nothing.
        if summary.uncompressed_size <= 1024 {
            return Ok(None);
        }
        let digest = blob.commit(Some(summary.diff_id))?;
        Ok(Some(BuiltLayer { digest, size: summary.uncompressed_size }))
    }

    /// An inline script as an executable file in `tmp/`, removed on drop.
    fn write_script(&self, content: &str) -> Result<tempfile::TempPath, StepError> {
        let tmp = self.options.store.root().join("tmp");
        let file = tempfile::Builder::new()
            .prefix("heredoc-")
            .tempfile_in(&tmp)
            .map_err(StepError::io(&tmp))?
            // No handle may stay open for writing: exec would fail with
            // ETXTBSY.
            .into_temp_path();
        fs::write(&file, content)
            .and_then(|()| fs::set_permissions(&file, fs::Permissions::from_mode(0o755)))
            .map_err(StepError::io(file.to_path_buf()))?;
        Ok(file)
    }
}

/// The process's argv for messages.
fn argv_text(argv: &[String]) -> String {
    argv.join(" ")
}

/// What the sandbox mounts for a snapshot's working root: solve is where
/// the two modules meet, so the conversion lives here.
impl From<RootDescription> for RootFs {
    fn from(root: RootDescription) -> RootFs {
        match root {
            RootDescription::Overlay { lower, upper, work } => RootFs::Overlay { lower, upper, work },
            RootDescription::Dir(dir) => RootFs::Dir(dir),
        }
    }
}

/// Splits streamed output into lines for progress, keeping the last few.
struct LineSplitter {
    id: usize,
    partial: [Vec<u8>; 2],
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl LineSplitter {
    fn new(id: usize, tail: Arc<Mutex<VecDeque<String>>>) -> LineSplitter {
        LineSplitter { id, partial: [Vec::new(), Vec::new()], tail }
    }

    fn line(&self, stream: Stream, bytes: &[u8]) -> Event {
        let line = String::from_utf8_lossy(bytes).trim_end_matches('\r').to_string();
        let mut tail = self.tail.lock().unwrap();
        tail.push_back(line.clone());
        while tail.len() > ERROR_TAIL_LINES {
            tail.pop_front();
        }
        Event::Output { id: self.id, stream, line }
    }

    fn push(&mut self, stream: Stream, bytes: &[u8]) -> Vec<Event> {
        let slot = if stream == Stream::Stdout { 0 } else { 1 };
        self.partial[slot].extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(pos) = self.partial[slot].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[slot].drain(..=pos).collect();
            events.push(self.line(stream, &line[..line.len() - 1]));
        }
        events
    }

    fn flush(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for (slot, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if !self.partial[slot].is_empty() {
                let line = std::mem::take(&mut self.partial[slot]);
                events.push(self.line(stream, &line));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: Vec<Event>) -> Vec<String> {
        events
            .into_iter()
            .map(|e| match e {
                Event::Output { line, .. } => line,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn output_is_split_into_lines_per_stream() {
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut splitter = LineSplitter::new(3, tail);
        assert!(splitter.push(Stream::Stdout, b"par").is_empty());
        assert_eq!(lines(splitter.push(Stream::Stderr, b"err\r\n")), vec!["err"]);
        assert_eq!(lines(splitter.push(Stream::Stdout, b"tial\nnext\nlast")), vec!["partial", "next"]);
        assert_eq!(lines(splitter.flush()), vec!["last"]);
    }

    #[test]
    fn only_the_last_lines_are_kept_for_the_error() {
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut splitter = LineSplitter::new(1, tail.clone());
        let text: String = (0..25).map(|n| format!("line {n}\n")).collect();
        splitter.push(Stream::Stdout, text.as_bytes());
        let kept: Vec<String> = tail.lock().unwrap().iter().cloned().collect();
        assert_eq!(kept.len(), ERROR_TAIL_LINES);
        assert_eq!(kept.last().map(String::as_str), Some("line 24"));
    }
}
