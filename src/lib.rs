//! hoist: a daemonless Dockerfile build engine.
//!
//! The pipeline, one direction (see `ARCHITECTURE.md` for the map):
//!
//! - [`dockerfile`]: text → syntax tree → typed instructions.
//! - [`plan`]: instructions, build args and base configs → a graph of ops.
//! - [`solve`]: ops executed with the cache, [`context`], [`sandbox`] and
//!   [`snapshot`] → layers and a config.
//! - [`export`]: the result into the [`store`] and out of it (archives,
//!   directories); [`build()`] runs the whole pipeline.
//!
//! Below them: [`layer`] (tar layers), [`image`] (image types), [`store`]
//! (the local OCI layout), [`progress`] (events and renderers),
//! [`diagnostic`] (errors at a Dockerfile line). The library is usable
//! without the CLI.

#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod build;
pub mod context;
pub mod diagnostic;
pub mod dockerfile;
pub mod export;
pub mod idmap;
pub mod image;
pub mod layer;
pub mod paths;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod sandbox;
pub mod snapshot;
pub mod solve;
pub mod store;

pub use build::{BuildError, BuildRequest, Built, build};
