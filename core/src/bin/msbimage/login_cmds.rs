//! `login` and `logout`, as Podman's: the password comes from `--password-stdin` or a prompt
//! on the terminal (not echoed); the core checks it against the registry and keeps it in
//! Podman's `auth.json` (or `--authfile`), or in the credential helper configured for the
//! registry.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::fd::AsFd;

use microsandbox_image::auth::{self, CredentialTarget, StoredIn};
use microsandbox_image::{Error, ErrorKind};

use crate::args::{LoginArgs, LogoutArgs, base_registry_config};
use crate::{Failure, read_password};

/// Where the credentials go: `--authfile`, else Podman's place.
fn target(authfile: Option<&std::path::Path>) -> Result<CredentialTarget, Error> {
    match authfile {
        Some(p) => Ok(CredentialTarget::file(p)),
        None => CredentialTarget::podman_default().ok_or_else(|| {
            Error::InvalidArgument(
                "no place for credentials: set REGISTRY_AUTH_FILE or XDG_RUNTIME_DIR, or pass \
                 --authfile"
                    .into(),
            )
        }),
    }
}

pub async fn login(args: LoginArgs) -> Result<(), Failure> {
    let target = target(args.authfile.as_deref())?;
    let mut config = base_registry_config(args.config.as_deref())?;
    config
        .insecure_registries
        .extend(args.insecure_registry.iter().cloned());
    config.ca_files.extend(args.ca_file.iter().cloned());
    let (username, password) = if args.password_stdin {
        let username = args
            .username
            .clone()
            .ok_or_else(|| Error::InvalidArgument("--password-stdin needs --username".into()))?;
        (username, read_password()?)
    } else {
        prompt(&args.registry, args.username.clone())?
    };
    let stored = auth::login(&config, &args.registry, &username, &password, &target).await?;
    let place = match stored {
        StoredIn::File(path) => path.display().to_string(),
        StoredIn::Helper(name) => format!("docker-credential-{name}"),
        _ => "the credential store".to_owned(),
    };
    eprintln!("Login Succeeded (credentials kept in {place})");
    Ok(())
}

pub async fn logout(args: LogoutArgs) -> Result<(), Failure> {
    let target = target(args.authfile.as_deref())?;
    let registry = args.registry.clone();
    let all = args.all;
    let removed = tokio::task::spawn_blocking(move || match registry {
        _ if all => auth::logout_all(&target).map(|n| n > 0),
        Some(r) => auth::logout(&r, &target),
        None => Err(Error::InvalidArgument(
            "name a REGISTRY or pass --all".into(),
        )),
    })
    .await
    .map_err(|e| Error::Internal(format!("logout task: {e}")))??;
    let name = args.registry.as_deref().unwrap_or_default();
    if args.all {
        eprintln!("Removed login credentials for all registries");
    } else if removed {
        eprintln!("Removed login credentials for {name}");
    } else {
        return Err(Failure::Other {
            code: ErrorKind::NotFound.exit_code(),
            message: format!("not logged in to {name}"),
        });
    }
    Ok(())
}

/// Ask for the user name (unless given) and the password on the terminal.
fn prompt(registry: &str, username: Option<String>) -> Result<(String, String), Error> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
        .filter(|t| t.is_terminal())
        .ok_or_else(|| {
            Error::InvalidArgument(
                "no terminal to ask for the password: use --username and --password-stdin".into(),
            )
        })?;
    let io_err = |e: std::io::Error| Error::InvalidArgument(format!("reading the terminal: {e}"));
    let mut out = &tty;
    let mut input = std::io::BufReader::new(&tty);
    let username = match username {
        Some(u) => u,
        None => {
            write!(out, "Username for {registry}: ").map_err(io_err)?;
            let mut line = String::new();
            input.read_line(&mut line).map_err(io_err)?;
            line.trim().to_owned()
        }
    };
    write!(out, "Password: ").map_err(io_err)?;
    out.flush().map_err(io_err)?;
    let password = {
        let _quiet = NoEcho::on(&tty).map_err(io_err)?;
        let mut line = String::new();
        input.read_line(&mut line).map_err(io_err)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    writeln!(out).map_err(io_err)?;
    if username.is_empty() || password.is_empty() {
        return Err(Error::InvalidArgument(
            "a user name and a password are needed".into(),
        ));
    }
    Ok((username, password))
}

/// Terminal echo off while alive (restored when dropped, also on an error).
struct NoEcho<'a> {
    tty: &'a std::fs::File,
    saved: rustix::termios::Termios,
}

impl<'a> NoEcho<'a> {
    fn on(tty: &'a std::fs::File) -> std::io::Result<NoEcho<'a>> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(tty.as_fd())?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(tty.as_fd(), OptionalActions::Flush, &quiet)?;
        Ok(NoEcho { tty, saved })
    }
}

impl Drop for NoEcho<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            self.tty.as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
