//! The driver's `erofs` mode: our side of a case as a micro-VM guest sees it. Each layer is
//! extracted with its EROFS image written in the same pass (`extract_layer_tar_erofs`, what a
//! pull with `erofs-layers` runs; the image is also checked against the layer's index as
//! `verify` checks it), each image is loop-mounted read-only, the mounts are stacked by a
//! read-only overlayfs (top first, as containerd's overlay mode stacks its snapshots), and
//! the merged mount is listed as the oracle lists containerd's (`listing::describe_tree`).
//! When the kernel cannot mount an image, it is unpacked with `fsck.erofs --extract` instead
//! (erofs-utils 1.5 restores no xattrs: opaque markers and xattrs are then lost) and the
//! unpacked trees are stacked. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;

use microsandbox_image::layer::extract_layer_tar_erofs;
use microsandbox_image::{ExtractLimits, OpaqueXattr};

use crate::Verdict;
use crate::listing::describe_tree;

/// Mounts, undone in reverse order on drop.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for at in self.0.iter().rev() {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}

/// `mount ARGS SOURCE AT`; the error is mount's own message.
fn mount(args: &[&str], source: &Path, at: &Path) -> Result<(), String> {
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(args)
        .arg(source)
        .arg(at)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Unpack `image` into `to` with erofs-utils (the fallback when it cannot be mounted).
fn fsck_extract(image: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("fsck.erofs")
        .arg(format!("--extract={}", to.display()))
        .arg(image)
        .output()
        .map_err(|e| format!("fsck.erofs: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Our verdict on `layers` (bottom to top) through their EROFS images.
pub fn ours(layers: &[Vec<u8>], limits: ExtractLimits) -> Verdict {
    let work = tempfile::tempdir().expect("tempdir");
    let mut images = Vec::new();
    for (n, tar) in layers.iter().enumerate() {
        let dir = work.path().join(format!("l{n}"));
        let fs = dir.join("fs");
        std::fs::create_dir_all(&fs).expect("layer dir");
        let image = dir.join("layer.erofs");
        match extract_layer_tar_erofs(tar, &fs, &image, OpaqueXattr::Trusted, limits) {
            Err(e) => return Verdict::Refused(format!("layer {n}: {e}")),
            Ok((_, problems)) if !problems.is_empty() => {
                return Verdict::Refused(format!(
                    "layer {n}: its EROFS image differs from its index: {}",
                    problems.join("; ")
                ));
            }
            Ok(_) => images.push(image),
        }
    }
    let mut mounts = Mounts(Vec::new());
    let mut lowers: Vec<PathBuf> = Vec::new(); // top first
    for (n, image) in images.iter().enumerate() {
        let at = work.path().join(format!("m{n}"));
        let lower = match mount(&["-t", "erofs", "-o", "loop,ro"], image, &at) {
            Ok(()) => {
                mounts.0.push(at.clone());
                at
            }
            Err(why) => {
                eprintln!("erofs mode: cannot mount layer {n} ({why}): fsck.erofs --extract");
                let to = work.path().join(format!("x{n}"));
                if let Err(e) = fsck_extract(image, &to) {
                    panic!("fsck.erofs --extract of layer {n}: {e}");
                }
                to
            }
        };
        lowers.insert(0, lower);
    }
    if lowers.len() == 1 {
        // overlayfs wants two lower layers at least (as the oracle does): an empty one.
        let empty = work.path().join("empty");
        std::fs::create_dir(&empty).expect("empty lower");
        lowers.push(empty);
    }
    let merged = work.path().join("merged");
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let opts = format!("ro,lowerdir={}", lowerdir.join(":"));
    if let Err(e) = mount(
        &["-t", "overlay", "-o", &opts],
        Path::new("overlay"),
        &merged,
    ) {
        panic!("mount overlay: {e}");
    }
    mounts.0.push(merged.clone());
    let listed = describe_tree(&merged).expect("list the merged mount");
    drop(mounts);
    Verdict::Tree(listed)
}
