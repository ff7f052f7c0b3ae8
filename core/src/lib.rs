//! # microsandbox-image
//!
//! Pull OCI container images, verify them, extract their layers into a shared
//! content-addressed cache, and build a lookup index per layer, so a sandbox runtime can
//! mount an image in milliseconds.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use microsandbox_image::{GlobalCache, Platform, PullOptions, Registry};
//! let cache = GlobalCache::new("/path/to/cache")?;
//! let platform = Platform::host_linux();
//! let registry = Registry::new(platform, cache)?;
//! let reference = "docker.io/library/alpine:latest".parse()?;
//! let result = registry.pull(&reference, &PullOptions::default()).await?;
//! for layer_path in &result.layers {
//!     println!("{}", layer_path.display());
//! }
//! println!("entrypoint: {:?}", result.config.entrypoint);
//! # Ok(()) }
//! ```
//!
//! Data flows one way: [`Reference`] → manifest (and index) → [`ImageConfig`] → one pipeline
//! per layer (download, hash, inflate, hash, untar) → published layer directories in the
//! [`GlobalCache`] → [`PullResult`].

#![warn(missing_docs)]

pub mod auth;
pub mod cache;
mod cancel;
mod client;
pub mod config;
pub mod digest;
pub mod erofs;
pub mod error;
pub mod index;
pub mod layer;
pub mod manifest;
pub mod offline;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod settings;
pub mod stat;
pub mod surface;
mod sysconf;
pub mod unpack;

pub use auth::RegistryAuth;
pub use cache::{
    CacheError, CacheGroup, CacheOptions, CachedImage, CachedImageMetadata, CachedLayer,
    CachedLayerMetadata, DiskUsage, GcPolicy, GcReport, GlobalCache, ImageCheck, ImageUsage,
    LayerCheck, LayerLease, Problem, ProblemKind, RemovedImage, VerifyReport,
};
pub use cancel::CancelToken;
pub use client::RegistryError;
pub use config::ImageConfig;
pub use digest::Digest;
pub use erofs::OpaqueXattr;
pub use error::{Error, ErrorKind, ErrorReport, ImageError, ImageResult, Result};
pub use layer::{ExtractLimits, LayerError};
pub use manifest::ManifestError;
pub use offline::{ImageSource, LayoutRef, SaveReport, SourceError};
pub use platform::{Arch, Os, Platform};
pub use progress::{
    ProgressCallback, PullProgress, PullProgressHandle, PullProgressSender, progress_channel,
};
pub use pull::{
    Output, PullOptions, PullPolicy, PullResult, RemoteImage, RemoteLayer, RepairFailure,
    RepairReport,
};
pub use reference::{Reference, ReferenceError};
pub use registry::{Registry, RegistryBuilder};
pub use settings::{CredentialSource, DockerConfigSource, ProxyConfig, RangeMode, RegistryConfig};
pub use sysconf::default_config_path;
