//! `msb_registry_builder` and `msb_registry`: the settings of a registry client (auth,
//! insecure hosts, CA file, mirrors, concurrency, …) and the client itself.
//!
//! The builder holds the core's `RegistryConfig` and builds from a copy of it, so building
//! does not consume it: one free function, always called.

use std::ffi::c_char;

use microsandbox_image::{
    DockerConfigSource, GlobalCache, Platform, Registry, RegistryAuth, RegistryConfig,
};

use crate::arg;
use crate::cache::msb_cache;
use crate::platform::msb_platform;
use crate::status::{self, fail, msb_status};

/// Settings for a registry client. Not thread-safe: configure it from one thread at a time.
pub struct msb_registry_builder {
    cache: GlobalCache,
    platform: Platform,
    /// The core's settings struct: every setter below fills one of its fields, and
    /// `msb_registry_builder_set_config_json` reaches all of them.
    config: RegistryConfig,
}

/// A registry client: pulls images into its cache. Thread-safe: any number of threads may
/// pull through one registry at once; pulls share connections, tokens and in-flight layers.
pub struct msb_registry {
    pub(crate) inner: Registry,
}

/// Starts the settings of a registry client that pulls `platform` images into `cache`
/// (anonymous access, TLS verified, 4 layers at once, durable). The builder copies what it
/// needs: `cache` and `platform` may be freed afterwards. Free it with
/// `msb_registry_builder_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_new(
    cache: *const msb_cache,
    platform: *const msb_platform,
    out: *mut *mut msb_registry_builder,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        *out = arg::into_handle(msb_registry_builder {
            cache: cache.inner.clone(),
            platform: platform.inner.clone(),
            config: RegistryConfig::default(),
        });
        msb_status::Ok
    }
}

/// Sends no credentials to registries without host-specific ones (the default).
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_anonymous(
    builder: *mut msb_registry_builder,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        builder.config.auth = RegistryAuth::Anonymous;
        msb_status::Ok
    }
}

/// Sends `username`/`password` (or an access token as the password) to every registry without
/// host-specific credentials: HTTP Basic, or to its token service.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_basic_auth(
    builder: *mut msb_registry_builder,
    username: *const c_char,
    password: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        let username = try_arg!(arg::string(username, "username"));
        let password = try_arg!(arg::string(password, "password"));
        builder.config.auth = RegistryAuth::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        msb_status::Ok
    }
}

/// Sends `username`/`password` to one registry only (`"ghcr.io"`, `"localhost:5000"`,
/// `"docker.io"`). Overrides the default credentials for that host.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_basic_auth_for(
    builder: *mut msb_registry_builder,
    registry: *const c_char,
    username: *const c_char,
    password: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        let registry = try_arg!(arg::string(registry, "registry"));
        let username = try_arg!(arg::string(username, "username"));
        let password = try_arg!(arg::string(password, "password"));
        builder.config.auth_for.insert(
            registry.to_owned(),
            RegistryAuth::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        );
        msb_status::Ok
    }
}

/// Reads credentials (inline auths and credential helpers) from a Docker `config.json` for
/// registries without explicit credentials.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_docker_config(
    builder: *mut msb_registry_builder,
    path: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        let path = try_arg!(arg::string(path, "path"));
        builder.config.docker_config = DockerConfigSource::Path(path.into());
        msb_status::Ok
    }
}

/// Allows plain HTTP and unverified TLS for `host[:port]`. Loopback hosts may always fall
/// back to plain HTTP.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_add_insecure_host(
    builder: *mut msb_registry_builder,
    host: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        let host = try_arg!(arg::string(host, "host"));
        builder.config.insecure_registries.push(host.to_owned());
        msb_status::Ok
    }
}

/// Trusts the CA certificates in this PEM file, besides the system's. The file is read by
/// `msb_registry_builder_build` (an unreadable file fails there with
/// `MSB_STATUS_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_ca_file(
    builder: *mut msb_registry_builder,
    path: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        let path = try_arg!(arg::string(path, "path"));
        builder.config.ca_files.push(path.into());
        msb_status::Ok
    }
}

/// Tries `mirror` (`"host[:port]"` or `"http(s)://host[:port]"`) before `registry`
/// (`"docker.io"`). Mirrors are tried in the order added, the registry last; a mirror given
/// as `http://…` is allowed plain HTTP.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_add_mirror(
    builder: *mut msb_registry_builder,
    registry: *const c_char,
    mirror: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        let registry = try_arg!(arg::string(registry, "registry"));
        let mirror = try_arg!(arg::string(mirror, "mirror"));
        builder.config.mirrors.entry(registry.to_owned()).or_default().push(mirror.to_owned());
        msb_status::Ok
    }
}

/// How many layers download and extract at once (default 4; must be at least 1).
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_concurrency(
    builder: *mut msb_registry_builder,
    layers: u32,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        if layers == 0 {
            return fail(msb_status::InvalidArgument, "concurrency must be at least 1");
        }
        builder.config.concurrency = layers as usize;
        msb_status::Ok
    }
}

/// Whether a published layer is flushed to disk first (default true). Turn it off for
/// throwaway caches on tmpfs.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_durable(
    builder: *mut msb_registry_builder,
    durable: bool,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        builder.config.durable = durable;
        msb_status::Ok
    }
}

/// Retries of a request after a transient failure (default 4).
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_max_retries(
    builder: *mut msb_registry_builder,
    retries: u32,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        builder.config.max_retries = retries;
        msb_status::Ok
    }
}

/// Applies the settings in `json`, a JSON object whose keys are those of the core's
/// `RegistryConfig` (camelCase: `"insecureRegistries"`, `"mirrors"`, `"caFiles"`,
/// `"maxRetries"`, `"connectTimeout"` in seconds, `"limits"`, …; the list is in
/// `core/api-surface.json`). Keys it does not name keep their value. Every setting is reachable
/// this way, including those without a setter of their own. Fails with
/// `MSB_STATUS_INVALID_ARGUMENT` (naming the key) on malformed JSON, an unknown key or a
/// value of the wrong type, and then changes nothing.
///
/// ```c
/// msb_registry_builder_set_config_json(b, "{\"maxRetries\": 8, \"readTimeout\": 30}");
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_set_config_json(
    builder: *mut msb_registry_builder,
    json: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let builder = try_arg!(arg::obj_mut(builder, "builder"));
        arg::merge_json(&mut builder.config, json, "registry settings", RegistryConfig::merge_json)
    }
}

/// Builds a registry client from the settings and stores it in `*out`; free it with
/// `msb_registry_free`. The builder is not consumed: free it with `msb_registry_builder_free`
/// (it may build more registries first).
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_build(
    builder: *const msb_registry_builder,
    out: *mut *mut msb_registry,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let builder = try_arg!(arg::obj(builder, "builder"));
        let core = Registry::from_config(
            builder.platform.clone(),
            builder.cache.clone(),
            builder.config.clone(),
        );
        match core {
            Ok(inner) => {
                *out = arg::into_handle(msb_registry { inner });
                msb_status::Ok
            }
            Err(e) => status::from_error(&e),
        }
    }
}

/// Frees a builder. NULL is a no-op. Registries built from it stay usable.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_builder_free(builder: *mut msb_registry_builder) {
    ffi_panic_boundary! {
        arg::free_handle(builder)
    }
}

/// A registry client with the default settings (anonymous access): the short form of
/// `msb_registry_builder_new` + `msb_registry_builder_build`. `cache` and `platform` may be
/// freed afterwards. Free `*out` with `msb_registry_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_new(
    cache: *const msb_cache,
    platform: *const msb_platform,
    out: *mut *mut msb_registry,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        match Registry::new(platform.inner.clone(), cache.inner.clone()) {
            Ok(inner) => {
                *out = arg::into_handle(msb_registry { inner });
                msb_status::Ok
            }
            Err(e) => status::from_error(&e),
        }
    }
}

/// Frees a registry. NULL is a no-op. Pulls started from it keep running: each holds its own
/// reference.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_free(registry: *mut msb_registry) {
    ffi_panic_boundary! {
        arg::free_handle(registry)
    }
}
