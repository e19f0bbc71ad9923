//! hoist: a daemonless Dockerfile build engine.
//!
//! The pipeline (see DESIGN.md): [`dockerfile`] parses Dockerfiles into typed
//! instructions; later stages plan, solve and export images. The library is
//! usable without the CLI.

pub mod dockerfile;
pub mod layer;
