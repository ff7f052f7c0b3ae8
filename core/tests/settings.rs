//! Registry settings as data reach the wire: a setting given only as JSON (as the C ABI's
//! `msb_registry_builder_set_config_json`, the CLI's `--config`, Python keyword arguments and
//! Node options give it) changes what the client sends.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use microsandbox_image::{GlobalCache, Platform, PullOptions, Registry, RegistryConfig};

/// Accepts connections on loopback until one carries an HTTP request (the client may probe
/// with TLS first), answers it 404, and returns its `User-Agent`.
fn capture_user_agent(listener: TcpListener) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        for _ in 0..4 {
            let (stream, _) = listener.accept().ok()?;
            if let Some(agent) = read_request(stream) {
                return agent;
            }
        }
        None
    })
}

/// `Some(user agent)` if `stream` carries a plain HTTP request, `None` otherwise.
fn read_request(mut stream: TcpStream) -> Option<Option<String>> {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if !line.starts_with("GET ") && !line.starts_with("HEAD ") {
        return None;
    }
    let mut agent = None;
    line.clear();
    while reader.read_line(&mut line).ok()? > 2 {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("user-agent:") {
            agent = Some(v.trim().to_owned());
        }
        line.clear();
    }
    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
    Some(agent)
}

#[tokio::test]
async fn user_agent_set_as_data_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = capture_user_agent(listener);

    let dir = tempfile::tempdir().unwrap();
    let cache = GlobalCache::new(dir.path()).unwrap();
    let config = RegistryConfig::from_json(&format!(
        r#"{{"userAgent": "orchestrator/2.1", "insecureRegistries": ["{host}"], "maxRetries": 0}}"#
    ))
    .unwrap();
    let registry = Registry::from_config(Platform::host_linux(), cache, config).unwrap();
    let reference = format!("{host}/library/app:1").parse().unwrap();
    let err = registry
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), microsandbox_image::ErrorKind::Registry, "{err}");
    assert_eq!(seen.join().unwrap().as_deref(), Some("orchestrator/2.1"));
}

#[test]
fn pull_options_take_policy_as_another_name_for_pull_policy() {
    use microsandbox_image::{PullOptions, PullPolicy};
    let opts: PullOptions = serde_json::from_str(r#"{"policy": "never"}"#).unwrap();
    assert_eq!(opts.pull_policy, PullPolicy::Never);
    assert!(
        serde_json::from_str::<PullOptions>(r#"{"policy": "never", "pullPolicy": "always"}"#)
            .is_err()
    );
}
