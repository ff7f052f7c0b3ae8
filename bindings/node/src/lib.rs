//! Node.js bindings of `microsandbox-image` (napi-rs): the npm package `msbimage`.
//!
//! Each module converts one concept between JavaScript and the core and holds no logic of its
//! own: `cache` (GlobalCache and its life cycle: images, layers, disk usage, rm, gc),
//! `lease` (LayerLease, a held layer), `platform` (Platform), `reference` (parseReference), `registry`
//! (Registry and its pulls), `pull_options` (the JS options object → the core's
//! `PullOptions`), `progress` (events to a JS callback), `abort` (AbortSignal → the core's
//! `CancelToken`), `events` (the `pullEvents` async iterator), `result` (PullResult,
//! ImageConfig), `layer_stack` (the merged view) and `error` (core errors → JS `Error`s with
//! `code`, `image`, `layer`).
//!
//! Pulls run on napi-rs's tokio runtime, not on libuv's thread pool, so any number of
//! concurrent pulls leave the pool (file system, DNS, zlib) to the rest of the program.

#![warn(missing_docs)]

mod abort;
mod cache;
mod error;
mod events;
mod json;
mod layer_stack;
mod lease;
mod platform;
mod progress;
mod pull_options;
mod reference;
mod registry;
mod result;
mod surface;

pub use cache::GlobalCache;
pub use events::PullEvents;
pub use layer_stack::{DirEntry, EntryKind, LayerStack, Stat, WalkEntry};
pub use lease::LayerLease;
pub use platform::Platform;
pub use reference::{ReferenceParts, parse_reference};
pub use registry::Registry;
pub use result::{ImageConfig, PullResult};
pub use surface::{api_surface, error_codes, version};
