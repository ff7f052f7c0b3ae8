//! `msbimage_testkit`: the test harness for msbimage, and an independent oracle — it
//! never uses the core crate. It runs real `docker-registry` processes on loopback
//! (plain, TLS, htpasswd, token auth, pull-through proxy), a docker.io-style token
//! server, HTTP fronts that redirect blobs or inject faults, a TCP proxy that shapes
//! connections like a wide-area link (latency, rates, slow start), and builds fixture images
//! from real tar bytes which it pushes through the registry API or writes as an OCI
//! layout.
//!
//! Servers started here (token server, fronts) run as tasks on the tokio runtime that
//! started them: keep that runtime running (don't block its thread) while using them.

#![warn(missing_docs)]

mod auth;
pub mod breakouts;
pub mod fixtures;
mod http1;
pub mod http_front;
pub mod image;
pub mod layer;
pub mod oci_layout;
pub mod oracle;
pub mod push;
pub mod registry;
pub mod root_tree;
pub mod shaper;
pub mod tar_gen;
pub mod tls;
pub mod token;
pub mod tree;

pub use auth::AuthError;
pub use breakouts::{BreakoutCase, GoTar, breakout_cases};
pub use fixtures::{MultiPlatform, multiplatform, standard_image};
pub use http_front::{BlobServed, ConnectProxy, Fault, FaultProxy, FrontOptions, RedirectFront};
pub use http1::RecordedRequest;
pub use image::{Image, ImageBuilder, ImageIndex, ManifestFormat, build_index};
pub use layer::{Compression, Layer, LayerBuilder, raw_header, sha256_digest};
pub use oci_layout::write_oci_layout;
pub use push::{PushError, Pusher};
pub use registry::{Registry, RegistryOptions};
pub use shaper::{LinkProfile, Shaper};
pub use tls::TestCa;
pub use token::{TokenAuthConfig, TokenFlow, TokenRequest, TokenServer};
