//! Gives `libmsbimage.so` a soname carrying the ABI major version (a Rust cdylib has none), so
//! programs link against `libmsbimage.so.0` and keep working across compatible releases.
//! Keep the number equal to `MSB_ABI_VERSION` in `src/lib.rs`.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmsbimage.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
