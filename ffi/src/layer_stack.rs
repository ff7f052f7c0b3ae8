//! `msb_layer_stack`: the merged, overlay-style view of an image's layers, answered from the
//! layers' sidecar indexes (`stat`, `readlink`, `readdir`, xattrs) without touching the host
//! trees, plus where an entry's content lives on the host.
//!
//! Paths inside the image are NUL-terminated bytes; leading and trailing slashes are ignored.

use std::ffi::{OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use microsandbox_image::cache::LayerTrees;
use microsandbox_image::index::{Entry, IndexError, LayerIndex, LayerStack};

use crate::arg;
use crate::bytes::msb_bytes;
use crate::dir_list::msb_dir_list;
use crate::pull_result::msb_pull_result;
use crate::stat::msb_stat;
use crate::status::{fail, msb_status};
use crate::string;

/// The layers of an image, bottom to top, seen as one tree. Immutable; may be used from any
/// number of threads at once. It keeps its index files mapped until it is freed.
///
/// Opening checks each index's header, checksum and directory table; the entries of a
/// directory are checked the first time a lookup reaches it, so any lookup may fail with
/// `MSB_STATUS_IO` ("corrupt layer index") on a file that breaks the format.
pub struct msb_layer_stack {
    inner: LayerStack,
    /// Each layer's extracted tree on the host, parallel to the stack's layers.
    trees: LayerTrees,
}

/// The status and message of an index that cannot be opened.
fn index_error(layer: usize, path: &Path, error: &IndexError) -> msb_status {
    let status = msb_status::from(error.kind());
    let hint = match error {
        IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            " (the layer has no index: pull with build_index on to create it)"
        }
        _ => "",
    };
    fail(
        status,
        format!("layer {layer}: index {}: {error}{hint}", path.display()),
    )
}

/// Opens the indexes at `paths` (bottom to top) as a stack whose layer trees are `trees`.
fn open(paths: &[PathBuf], trees: LayerTrees) -> Result<msb_layer_stack, msb_status> {
    let mut layers = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        layers.push(LayerIndex::open(path).map_err(|e| index_error(i, path, &e))?);
    }
    Ok(msb_layer_stack {
        inner: LayerStack::new(layers),
        trees,
    })
}

fn lossy(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// `MSB_STATUS_IO` for a lookup that met a directory breaking the index format (indexes
/// check each directory the first time a lookup reaches it).
fn lookup_error(path: &[u8], error: &IndexError) -> msb_status {
    fail(
        msb_status::Io,
        format!("{}: corrupt layer index: {error}", lossy(path)),
    )
}

/// The visible entry at `path`, or `MSB_STATUS_NOT_FOUND`.
fn lookup<'a>(stack: &'a msb_layer_stack, path: &[u8]) -> Result<Entry<'a>, msb_status> {
    match stack.inner.get(path) {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(fail(
            msb_status::NotFound,
            format!("{}: no such file or directory", lossy(path)),
        )),
        Err(e) => Err(lookup_error(path, &e)),
    }
}

/// Opens the index of every layer of a pull (`<layer>/../index`, bottom to top) as a stack,
/// stored in `*out`; free it with `msb_layer_stack_free`. The result may be freed right after:
/// the stack holds the layers' leases itself, so no `gc` removes them while it is open.
///
/// Fails with `MSB_STATUS_IO` when an index is missing (the image was pulled with
/// `build_index` off, and no later pull built it) or unreadable or corrupt, and with
/// `MSB_STATUS_UNSUPPORTED` when it was written in a format version this library does not
/// read; the message names the layer.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_open(
    result: *const msb_pull_result,
    out: *mut *mut msb_layer_stack,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let result = try_arg!(arg::obj(result, "result"));
        let trees = result.inner.layer_trees();
        let mut stack = try_arg!(open(&result.inner.layer_indexes, trees));
        // The stack keeps the layers from being collected after the result is freed.
        stack.inner = stack.inner.holding(result.inner.leases().to_vec());
        *out = arg::into_handle(stack);
        msb_status::Ok
    }
}

/// Opens the `n` index files at `index_paths` (NUL-terminated byte strings, bottom to top) as
/// a stack, stored in `*out`; free it with `msb_layer_stack_free`. The paths are copied.
/// `n` may be 0 (an empty stack, where every lookup is `MSB_STATUS_NOT_FOUND`); `index_paths`
/// must not be NULL even then.
///
/// Each layer's tree, for `msb_layer_stack_host_path`, is the `fs` directory beside its index
/// (the cache's layout: `layers/sha256/<hex>/index` and `…/fs`). Errors as
/// `msb_layer_stack_open`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_open_paths(
    index_paths: *const *const c_char,
    n: usize,
    out: *mut *mut msb_layer_stack,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let index_paths = try_arg!(arg::obj(index_paths, "index_paths"));
        // SAFETY: C passes an array of `n` pointers starting at `index_paths`.
        let index_paths = unsafe { std::slice::from_raw_parts(index_paths, n) };
        let mut paths = Vec::with_capacity(n);
        for (i, &p) in index_paths.iter().enumerate() {
            let p = try_arg!(arg::bytes(p, &format!("index_paths[{i}]")));
            paths.push(PathBuf::from(OsStr::from_bytes(p)));
        }
        let trees = LayerTrees::beside_indexes(&paths);
        let stack = try_arg!(open(&paths, trees));
        *out = arg::into_handle(stack);
        msb_status::Ok
    }
}

/// The number of layers of the stack.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_layer_count(
    stack: *const msb_layer_stack,
    out: *mut usize,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        let stack = try_arg!(arg::obj(stack, "stack"));
        *out = stack.inner.layers().len();
        msb_status::Ok
    }
}

/// The metadata of the visible entry at `path` (`"/etc/hosts"`, `"etc/hosts"`; `"/"` or `""`
/// is the root), stored in `*out`. `MSB_STATUS_NOT_FOUND` when the merged view has no such
/// entry: it never existed, a whiteout or opaque directory hides it, or a parent is not a
/// directory. Symlinks are not followed.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_stat(
    stack: *const msb_layer_stack,
    path: *const c_char,
    out: *mut msb_stat,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        let stack = try_arg!(arg::obj(stack, "stack"));
        let path = try_arg!(arg::image_path(path, "path"));
        *out = msb_stat::of(&try_arg!(lookup(stack, path)));
        msb_status::Ok
    }
}

/// The target of the symbolic link at `path`, as stored (absolute or relative, not resolved),
/// NUL-terminated bytes in `*out`; free it with `msb_string_free`. `MSB_STATUS_NOT_FOUND` when
/// there is no entry, `MSB_STATUS_INVALID_ARGUMENT` when it is not a symbolic link.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_readlink(
    stack: *const msb_layer_stack,
    path: *const c_char,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let stack = try_arg!(arg::obj(stack, "stack"));
        let path = try_arg!(arg::image_path(path, "path"));
        let entry = try_arg!(lookup(stack, path));
        match entry.link_target() {
            Some(target) => string::give_bytes(out, target),
            None => fail(
                msb_status::InvalidArgument,
                format!("{}: not a symbolic link", lossy(path)),
            ),
        }
    }
}

/// The entries of the directory at `path`, merged across layers (upper layers win, whiteouts
/// and opaque directories applied), sorted by name, in a new list stored in `*out`; free it
/// with `msb_dir_list_free`. `MSB_STATUS_NOT_FOUND` when there is no entry,
/// `MSB_STATUS_INVALID_ARGUMENT` when it is not a directory.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_read_dir(
    stack: *const msb_layer_stack,
    path: *const c_char,
    out: *mut *mut msb_dir_list,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let stack = try_arg!(arg::obj(stack, "stack"));
        let path = try_arg!(arg::image_path(path, "path"));
        match stack.inner.read_dir(path) {
            Ok(Some(entries)) => {
                *out = arg::into_handle(msb_dir_list::of(&entries));
                msb_status::Ok
            }
            Ok(None) => {
                try_arg!(lookup(stack, path));
                fail(msb_status::InvalidArgument, format!("{}: not a directory", lossy(path)))
            }
            Err(e) => lookup_error(path, &e),
        }
    }
}

/// The value of the extended attribute `name` (NUL-terminated bytes, e.g.
/// `"security.capability"`) of the entry at `path`, copied into `*out`; free it with
/// `msb_bytes_free`. `MSB_STATUS_NOT_FOUND` when there is no entry or the entry has no such
/// attribute (the message says which). On failure `*out` is `{NULL, 0}`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_get_xattr(
    stack: *const msb_layer_stack,
    path: *const c_char,
    name: *const c_char,
    out: *mut msb_bytes,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        *out = msb_bytes::empty();
        let stack = try_arg!(arg::obj(stack, "stack"));
        let path = try_arg!(arg::image_path(path, "path"));
        let name = try_arg!(arg::bytes(name, "name"));
        let entry = try_arg!(lookup(stack, path));
        match entry.xattr(name) {
            Some(value) => {
                *out = msb_bytes::from_vec(value.to_vec());
                msb_status::Ok
            }
            None => fail(
                msb_status::NotFound,
                format!(
                    "{}: no extended attribute {}",
                    lossy(path),
                    String::from_utf8_lossy(name)
                ),
            ),
        }
    }
}

/// The names of the extended attributes of the entry at `path`, as `listxattr(2)` returns
/// them: each name followed by a NUL byte, sorted, copied into `*out` (`{NULL, 0}` when there
/// are none); free it with `msb_bytes_free`. `MSB_STATUS_NOT_FOUND` when there is no entry.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_list_xattrs(
    stack: *const msb_layer_stack,
    path: *const c_char,
    out: *mut msb_bytes,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        *out = msb_bytes::empty();
        let stack = try_arg!(arg::obj(stack, "stack"));
        let path = try_arg!(arg::image_path(path, "path"));
        let entry = try_arg!(lookup(stack, path));
        let mut names = Vec::new();
        for (name, _) in entry.xattrs() {
            names.extend_from_slice(name);
            names.push(0);
        }
        *out = msb_bytes::from_vec(names);
        msb_status::Ok
    }
}

/// Where the content of the entry at `path` lives on the host: the tree of the layer it comes
/// from joined with the path (`<cache>/layers/sha256/<hex>/fs/app/hello.txt`), NUL-terminated
/// bytes in `*out`; free it with `msb_string_free`. `MSB_STATUS_NOT_FOUND` when there is no
/// entry; `MSB_STATUS_INVALID_ARGUMENT` when that layer has no tree (it was pulled with
/// outputs `["erofs-layers"]` only: its EROFS image is its only copy).
///
/// Open regular files there for reading. Only the index tells the truth about metadata: on
/// the host a symlink is a regular file holding its target, devices are empty files, and
/// owners and modes may differ. A directory's host path is only the layer that gives it its
/// metadata; list it with `msb_layer_stack_read_dir`. The layer trees are shared and must not
/// be modified.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_host_path(
    stack: *const msb_layer_stack,
    path: *const c_char,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let stack = try_arg!(arg::obj(stack, "stack"));
        let path = try_arg!(arg::image_path(path, "path"));
        let entry = try_arg!(lookup(stack, path));
        match stack.trees.host_path(&entry) {
            Ok(host) => string::give_bytes(out, host.as_os_str().as_bytes()),
            Err(e) => fail(msb_status::from(e.kind()), format!("{}: {e}", lossy(path))),
        }
    }
}

/// Frees a stack and unmaps its indexes. NULL is a no-op. Lists made from it stay valid.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_stack_free(stack: *mut msb_layer_stack) {
    ffi_panic_boundary! {
        arg::free_handle(stack)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, CString};
    use std::ptr;

    use microsandbox_image::index::{EntryMeta, IndexBuilder};

    use super::*;
    use crate::bytes::msb_bytes_free;
    use crate::dir_list::{msb_dir_list_free, msb_dir_list_len, msb_dir_list_name};
    use crate::slice::msb_str;
    use crate::stat::{MSB_ENTRY_FLAG_HAS_XATTRS, MSB_ENTRY_FLAG_OPAQUE, msb_entry_kind};
    use crate::status;
    use crate::string::msb_string_free;

    /// Two layers in `<tmp>/<name>/{0,1}/index`: the lower with `etc/{hosts,motd}`, a symlink
    /// and an xattr; the upper deleting `etc/motd` and making `opt` opaque.
    fn layers(name: &str) -> (PathBuf, [CString; 2]) {
        let root = std::env::temp_dir().join(format!("msb-ffi-{name}-{}", std::process::id()));
        let dir = EntryMeta {
            mode: 0o040755,
            ..EntryMeta::default()
        };
        let file = |size| EntryMeta {
            mode: 0o100644,
            size,
            ..EntryMeta::default()
        };
        let mut lower = IndexBuilder::new();
        lower.add(b"etc", dir.clone()).unwrap();
        lower.add(b"etc/hosts", file(10)).unwrap();
        lower.add(b"etc/motd", file(20)).unwrap();
        let link = EntryMeta {
            mode: 0o120777,
            size: 5,
            link_target: Some(b"hosts".to_vec()),
            ..EntryMeta::default()
        };
        lower.add(b"etc/link", link).unwrap();
        let tagged = EntryMeta {
            xattrs: vec![
                (b"user.a".to_vec(), b"1".to_vec()),
                (b"user.b".to_vec(), Vec::new()),
            ],
            ..file(1)
        };
        lower.add(b"etc/tagged", tagged).unwrap();
        lower.add(b"opt", dir.clone()).unwrap();
        lower.add(b"opt/old", file(1)).unwrap();
        let mut upper = IndexBuilder::new();
        upper.add(b"etc", dir.clone()).unwrap();
        upper.add(b"etc/.wh.motd", file(0)).unwrap();
        upper.add(b"etc/hosts", file(30)).unwrap();
        upper.add(b"opt", dir).unwrap();
        upper.add(b"opt/.wh..wh..opq", file(0)).unwrap();
        upper.add(b"opt/new", file(2)).unwrap();
        let paths = [lower, upper].map(|b| b.finish().unwrap());
        let mut out = Vec::new();
        for (i, bytes) in paths.into_iter().enumerate() {
            let layer = root.join(i.to_string());
            std::fs::create_dir_all(layer.join("fs")).unwrap();
            let index = layer.join("index");
            std::fs::write(&index, bytes).unwrap();
            out.push(CString::new(index.as_os_str().as_bytes()).unwrap());
        }
        (root, out.try_into().unwrap())
    }

    fn open_stack(name: &str) -> (PathBuf, *mut msb_layer_stack) {
        open_stack_with(name, |_| {})
    }

    /// [`open_stack`], `change` done to the layers' directory before it is opened.
    fn open_stack_with(name: &str, change: impl Fn(&Path)) -> (PathBuf, *mut msb_layer_stack) {
        let (root, paths) = layers(name);
        change(&root);
        let ptrs = paths.each_ref().map(|p| p.as_ptr());
        let mut stack = ptr::null_mut();
        assert_eq!(
            msb_layer_stack_open_paths(ptrs.as_ptr(), 2, &mut stack),
            msb_status::Ok
        );
        (root, stack)
    }

    fn stat(stack: *const msb_layer_stack, path: &CStr) -> Result<msb_stat, msb_status> {
        let mut st = std::mem::MaybeUninit::<msb_stat>::zeroed();
        match msb_layer_stack_stat(stack, path.as_ptr(), st.as_mut_ptr()) {
            // SAFETY: filled in on success.
            msb_status::Ok => Ok(unsafe { st.assume_init() }),
            s => Err(s),
        }
    }

    fn take(s: *mut c_char) -> Vec<u8> {
        // SAFETY: a string from this library.
        let v = unsafe { CStr::from_ptr(s) }.to_bytes().to_vec();
        msb_string_free(s);
        v
    }

    #[test]
    fn a_layer_without_a_tree_has_no_host_path() {
        // (Which layers have a tree is found when the stack is opened.)
        let (root, stack) = open_stack_with("treeless", |root| {
            std::fs::remove_dir(root.join("1/fs")).unwrap()
        });
        let mut s = ptr::null_mut();
        assert_eq!(
            msb_layer_stack_host_path(stack, c"etc/hosts".as_ptr(), &mut s),
            msb_status::InvalidArgument
        );
        assert!(status::last_error().contains("has no tree"));
        assert_eq!(
            msb_layer_stack_host_path(stack, c"etc/link".as_ptr(), &mut s),
            msb_status::Ok
        );
        msb_string_free(s);
        msb_layer_stack_free(stack);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn lookups_see_the_merged_view_with_or_without_slashes() {
        let (root, stack) = open_stack("lookups");
        let hosts = stat(stack, c"/etc/hosts").unwrap();
        assert_eq!(
            (hosts.size, hosts.layer, hosts.kind),
            (30, 1, msb_entry_kind::File)
        );
        assert_eq!(stat(stack, c"etc/hosts/").unwrap(), hosts);
        assert_eq!(stat(stack, c"etc/motd"), Err(msb_status::NotFound));
        assert!(status::last_error().contains("/etc/motd: no such file"));
        assert_eq!(stat(stack, c"opt/old"), Err(msb_status::NotFound));
        assert_eq!(stat(stack, c"etc//hosts"), Err(msb_status::NotFound));
        assert_eq!(stat(stack, c"/").unwrap().kind, msb_entry_kind::Dir);
        assert_eq!(stat(stack, c"").unwrap().kind, msb_entry_kind::Dir);
        assert_ne!(
            stat(stack, c"opt").unwrap().flags & MSB_ENTRY_FLAG_OPAQUE,
            0
        );

        let mut n = 0;
        assert_eq!(msb_layer_stack_layer_count(stack, &mut n), msb_status::Ok);
        assert_eq!(n, 2);

        let mut s = ptr::null_mut();
        assert_eq!(
            msb_layer_stack_readlink(stack, c"/etc/link".as_ptr(), &mut s),
            msb_status::Ok
        );
        assert_eq!(take(s), b"hosts");
        assert_eq!(
            msb_layer_stack_readlink(stack, c"etc/hosts".as_ptr(), &mut s),
            msb_status::InvalidArgument
        );
        assert!(s.is_null());

        assert_eq!(
            msb_layer_stack_host_path(stack, c"/etc/hosts/".as_ptr(), &mut s),
            msb_status::Ok
        );
        assert_eq!(take(s), root.join("1/fs/etc/hosts").as_os_str().as_bytes());
        assert_eq!(
            msb_layer_stack_host_path(stack, c"etc/link".as_ptr(), &mut s),
            msb_status::Ok
        );
        assert_eq!(take(s), root.join("0/fs/etc/link").as_os_str().as_bytes());
        msb_layer_stack_free(stack);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn directories_list_merged_names() {
        let (root, stack) = open_stack("read-dir");
        let mut list = ptr::null_mut();
        assert_eq!(
            msb_layer_stack_read_dir(stack, c"/etc".as_ptr(), &mut list),
            msb_status::Ok
        );
        msb_layer_stack_free(stack); // the list does not depend on the stack
        let mut n = 0;
        assert_eq!(msb_dir_list_len(list, &mut n), msb_status::Ok);
        let names: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut s = msb_str::default();
                assert_eq!(msb_dir_list_name(list, i, &mut s), msb_status::Ok);
                s.to_bytes().to_vec()
            })
            .collect();
        assert_eq!(names, [&b"hosts"[..], b"link", b"tagged"]);
        let mut s = msb_str::borrow("x");
        assert_eq!(
            msb_dir_list_name(list, n, &mut s),
            msb_status::InvalidArgument
        );
        assert_eq!(s.to_bytes(), b"");
        msb_dir_list_free(list);

        let (root2, stack) = open_stack("read-dir-errors");
        assert_eq!(
            msb_layer_stack_read_dir(stack, c"etc/hosts".as_ptr(), &mut list),
            msb_status::InvalidArgument
        );
        assert!(status::last_error().contains("not a directory"));
        assert_eq!(
            msb_layer_stack_read_dir(stack, c"nope".as_ptr(), &mut list),
            msb_status::NotFound
        );
        assert!(list.is_null());
        msb_layer_stack_free(stack);
        std::fs::remove_dir_all(root).unwrap();
        std::fs::remove_dir_all(root2).unwrap();
    }

    #[test]
    fn xattrs_are_copied_out() {
        let (root, stack) = open_stack("xattrs");
        let st = stat(stack, c"etc/tagged").unwrap();
        assert_ne!(st.flags & MSB_ENTRY_FLAG_HAS_XATTRS, 0);
        let mut b = msb_bytes::empty();
        assert_eq!(
            msb_layer_stack_list_xattrs(stack, c"etc/tagged".as_ptr(), &mut b),
            msb_status::Ok
        );
        assert_eq!(b.as_slice(), b"user.a\0user.b\0");
        msb_bytes_free(b);
        let mut b = msb_bytes::empty();
        let get = |name: &CStr, b: &mut msb_bytes| {
            msb_layer_stack_get_xattr(stack, c"etc/tagged".as_ptr(), name.as_ptr(), b)
        };
        assert_eq!(get(c"user.a", &mut b), msb_status::Ok);
        assert_eq!(b.as_slice(), b"1");
        msb_bytes_free(b);
        let mut b = msb_bytes::empty();
        assert_eq!(get(c"user.b", &mut b), msb_status::Ok);
        assert!(b.ptr.is_null() && b.len == 0);
        assert_eq!(get(c"user.c", &mut b), msb_status::NotFound);
        assert!(status::last_error().contains("no extended attribute user.c"));
        assert_eq!(
            msb_layer_stack_list_xattrs(stack, c"etc/hosts".as_ptr(), &mut b),
            msb_status::Ok
        );
        assert!(b.ptr.is_null());
        msb_layer_stack_free(stack);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn missing_and_corrupt_indexes_are_io_errors() {
        let (root, paths) = layers("corrupt");
        std::fs::write(root.join("0/index"), b"not an index at all, not at all").unwrap();
        let missing = CString::new(root.join("2/index").as_os_str().as_bytes()).unwrap();
        let mut stack = ptr::dangling_mut::<msb_layer_stack>();
        for (p, want) in [(&paths[0], "layer 0"), (&missing, "no index")] {
            let ptrs = [p.as_ptr()];
            assert_eq!(
                msb_layer_stack_open_paths(ptrs.as_ptr(), 1, &mut stack),
                msb_status::Io
            );
            assert!(stack.is_null());
            assert!(
                status::last_error().contains(want),
                "{}",
                status::last_error()
            );
        }
        let ptrs = [paths[1].as_ptr(), ptr::null()];
        assert_eq!(
            msb_layer_stack_open_paths(ptrs.as_ptr(), 2, &mut stack),
            msb_status::InvalidArgument
        );
        assert!(status::last_error().contains("index_paths[1] is NULL"));
        assert_eq!(
            msb_layer_stack_open_paths(ptrs.as_ptr(), 0, &mut stack),
            msb_status::Ok
        );
        assert_eq!(stat(stack, c"/"), Err(msb_status::NotFound));
        msb_layer_stack_free(stack);
        std::fs::remove_dir_all(root).unwrap();
    }
}
