//! Certificates made at test time with rcgen: a throw-away CA with a server leaf for
//! `127.0.0.1` and `localhost` (for TLS registries), and a self-signed ECDSA signing
//! certificate (for the token server's JWTs). Nothing is ever read from the host's trust
//! store or written outside a test's temp dir.

use std::io;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA, a server certificate it signed and a client certificate it signed (for registries
/// that require client certificates), all PEM encoded.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate: what clients must trust.
    pub ca_pem: String,
    /// The server (leaf) certificate, valid for the names given at creation.
    pub leaf_cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub leaf_key_pem: String,
    /// A client certificate (extended key usage `clientAuth`) signed by the CA.
    pub client_cert_pem: String,
    /// The client certificate's private key (PKCS#8).
    pub client_key_pem: String,
}

impl TestCa {
    /// Makes a fresh CA and a leaf for `names` (IP addresses become IP SANs), e.g.
    /// `&["127.0.0.1", "localhost"]`.
    pub fn generate(names: &[&str]) -> io::Result<TestCa> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "msbimage-testkit CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(rc)?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(rc)?;

        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut leaf_params = CertificateParams::new(names).map_err(rc)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "msbimage-testkit registry");
        leaf_params.is_ca = IsCa::NoCa;
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().map_err(rc)?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(rc)?;

        let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, "msbimage-testkit client");
        client_params.is_ca = IsCa::NoCa;
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().map_err(rc)?;
        let client = client_params.signed_by(&client_key, &ca).map_err(rc)?;
        Ok(TestCa {
            ca_pem: ca.pem(),
            leaf_cert_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }
}

/// A self-signed ECDSA P-256 certificate whose key signs JWTs (ES256).
pub(crate) struct SigningCert {
    /// The certificate, PEM: the registry's `rootcertbundle`.
    pub cert_pem: String,
    /// The certificate, DER: goes base64-encoded into each JWT's `x5c` header.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8_der: Vec<u8>,
}

impl SigningCert {
    /// Makes a fresh signing certificate.
    pub fn generate() -> io::Result<SigningCert> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "msbimage-testkit token signer");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rc)?;
        let cert = params.self_signed(&key).map_err(rc)?;
        Ok(SigningCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pkcs8_der: key.serialize_der(),
        })
    }
}

fn rc(e: rcgen::Error) -> io::Error {
    io::Error::other(format!("rcgen: {e}"))
}

/// `reqwest::Client::builder()` after making sure a rustls crypto provider is installed:
/// reqwest is built without a default one (see the workspace `Cargo.toml`), and building a
/// client without one panics. Every reqwest client of the tests starts here.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Builds a reqwest client that trusts only `ca_pem_path` (or the default roots when
/// `None`), presents the client certificate and key in `identity_pem_path` (one PEM file
/// holding both) when given, never follows redirects and ignores proxy environment variables.
pub(crate) fn client_trusting(
    ca_pem_path: Option<&std::path::Path>,
    identity_pem_path: Option<&std::path::Path>,
) -> io::Result<reqwest::Client> {
    let mut builder = client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(path) = ca_pem_path {
        let pem = std::fs::read(path)?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(io::Error::other)?;
        builder = builder.tls_certs_only([cert]);
    }
    if let Some(path) = identity_pem_path {
        let pem = std::fs::read(path)?;
        let identity = reqwest::Identity::from_pem(&pem).map_err(io::Error::other)?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(io::Error::other)
}
