//! Images as data: the types hoist reads and writes, and nothing that does I/O.
//!
//! - [`reference`](mod@reference): image names as Docker normalises them.
//! - [`config`]: the image configuration with Docker's extensions.
//! - [`time`]: RFC 3339 times as configs write them.
//! - [`display`]: ages and sizes as `docker images` prints them.
//! - [`manifest`]: manifests and indexes as registries serve them, media
//!   types, and the choice of a platform's manifest.

pub mod config;
pub mod display;
pub mod manifest;
pub mod reference;
pub mod time;
