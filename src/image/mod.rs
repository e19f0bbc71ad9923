//! Images as data: [`reference`] (Docker's name normalisation), [`config`]
//! (the image configuration with Docker's extensions), [`archive`]
//! (docker-archive / OCI archive save and load) and [`import`] (a rootfs
//! tarball as a one-layer image). Manifests and indexes use `oci-spec`.

pub mod archive;
pub mod config;
pub mod import;
pub mod reference;
