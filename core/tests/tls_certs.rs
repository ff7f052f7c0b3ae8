//! TLS where users keep it: a registry that requires client certificates (a CA made at test
//! time) is pulled from with Docker's `certs.d/<host>/` layout (`ca.crt`, `client.cert`,
//! `client.key`); `caDirs`; and the system trust store's `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! (through the CLI, so the variables are set in a process of their own).

mod common;

use std::path::Path;

use common::Env;
use microsandbox_image::ErrorKind;
use msbimage_testkit::{Compression, RegistryOptions, standard_image};

/// A `certs.d` root holding `<host>/` with the files of `from`.
fn certs_d(host: &str, from: &Path, files: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(host);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::copy(from.join(f), dir.join(f)).unwrap();
    }
    root
}

async fn env_with_image(opts: RegistryOptions) -> Env {
    let env = Env::start(opts).await;
    env.push("team/app", "v1", &standard_image(Compression::Gzip))
        .await;
    env
}

#[tokio::test]
async fn mutual_tls_through_certs_d() {
    let env = env_with_image(RegistryOptions::plain().client_certs()).await;
    let client_dir = env.registry.client_dir().unwrap();
    let r = env.reference("team/app:v1");

    // Trusting the server is not enough: it wants a client certificate.
    let ca = env.registry.ca_pem_path().unwrap();
    let err = common::pull_fresh(|b| b.ca_file(ca), &r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
    assert!(
        err.to_string()
            .contains("requires a client certificate: give one as client.cert"),
        "{err}"
    );

    // certs.d/<host>/ with the CA and the client pair: nothing else needed.
    let root = certs_d(
        &env.host(),
        &client_dir,
        &["ca.crt", "client.cert", "client.key"],
    );
    let res = common::pull_fresh(
        |b| b.certs_dir("/nonexistent/certs.d").certs_dir(root.path()),
        &r,
    )
    .await
    .unwrap();
    assert_eq!(res.layers.len(), 3);

    // A client certificate without its key is a clear error naming the file.
    let half = certs_d(&env.host(), &client_dir, &["ca.crt", "client.cert"]);
    let err = common::pull_fresh(|b| b.certs_dir(half.path()), &r)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("client.key"), "{err}");
}

#[tokio::test]
async fn certs_d_ca_only_and_ca_dirs() {
    let env = env_with_image(RegistryOptions::plain().tls()).await;
    let ca = env.registry.ca_pem_path().unwrap();
    let r = env.reference("team/app:v1");

    // Untrusted without anything.
    let err = common::pull_fresh(|b| b, &r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // A CA in certs.d/<host>/ca.crt.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(env.host())).unwrap();
    std::fs::copy(ca, root.path().join(env.host()).join("ca.crt")).unwrap();
    let pulled = common::pull_fresh(|b| b.certs_dir(root.path()), &r)
        .await
        .unwrap();
    assert_eq!(pulled.layers.len(), 3);

    // caDirs: a directory of PEM files, for every host.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
    std::fs::copy(ca, dir.path().join("test-ca.pem")).unwrap();
    let pulled = common::pull_fresh(|b| b.ca_dir(dir.path()), &r)
        .await
        .unwrap();
    assert_eq!(pulled.layers.len(), 3);
}

#[cfg(feature = "cli")]
mod env_vars {
    use super::*;
    use std::process::Output;

    /// `msbimage pull REF` in a clean environment plus `env`.
    fn pull(reference: &str, cache: &Path, home: &Path, env: &[(&str, &Path)]) -> Output {
        let cache = cache.display().to_string();
        let args = ["pull", reference, "--progress", "none", "--cache", &cache];
        common::msbimage_isolated(&args, home, env)
    }

    #[tokio::test]
    async fn ssl_cert_file_and_dir_replace_the_system_store() {
        let env = env_with_image(RegistryOptions::plain().tls()).await;
        let ca = env.registry.ca_pem_path().unwrap();
        let reference = format!("{}/team/app:v1", env.host());
        let home = tempfile::tempdir().unwrap();

        let c = tempfile::tempdir().unwrap();
        let o = pull(&reference, c.path(), home.path(), &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(6), "{stderr}");
        assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

        let c = tempfile::tempdir().unwrap();
        let o = pull(&reference, c.path(), home.path(), &[("SSL_CERT_FILE", ca)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(ca, dir.path().join("ca.pem")).unwrap();
        let c = tempfile::tempdir().unwrap();
        let o = pull(
            &reference,
            c.path(),
            home.path(),
            &[("SSL_CERT_DIR", dir.path())],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
