//! hoist: a daemonless Dockerfile build engine.
//!
//! The pipeline (see DESIGN.md): [`dockerfile`] parses Dockerfiles into typed
//! instructions; [`layer`], [`image`] and [`store`] hold images and move them
//! in and out; later stages plan, solve and export. The library is
//! usable without the CLI.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod context;
pub mod dockerfile;
pub mod idmap;
pub mod image;
pub mod layer;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod sandbox;
pub mod snapshot;
pub mod solve;
pub mod store;
