//! Images as data: the types hoist reads and writes, and nothing that does I/O.
//!
//! - [`reference`]: image names as Docker normalises them.
//! - [`config`]: the image configuration with Docker's extensions.
//! - [`time`]: RFC 3339 times as configs write them.
//! - [`display`]: ages and sizes as `docker images` prints them.
//!
//! Manifests and indexes use `oci-spec`'s types.

pub mod config;
pub mod display;
pub mod reference;
pub mod time;
