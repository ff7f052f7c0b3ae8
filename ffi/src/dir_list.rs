//! `msb_dir_list`: the entries of one directory of a layer stack, names and metadata copied
//! out when it is made (`msb_layer_stack_read_dir`), so it does not depend on the stack.

use microsandbox_image::index::Entry;

use crate::arg;
use crate::slice::msb_str;
use crate::stat::msb_stat;
use crate::status::{fail, msb_status};

/// One entry of a listing.
pub(crate) struct DirItem {
    name: Box<[u8]>,
    stat: msb_stat,
}

/// The visible entries of a directory, sorted by name (byte order), without `.` and `..`.
/// Immutable; may be read from several threads at once and outlives the stack it came from.
pub struct msb_dir_list {
    items: Vec<DirItem>,
}

impl msb_dir_list {
    /// Copies the entries of a listing.
    pub(crate) fn of(entries: &[Entry<'_>]) -> msb_dir_list {
        let items = entries
            .iter()
            .map(|e| DirItem {
                name: e.name().into(),
                stat: msb_stat::of(e),
            })
            .collect();
        msb_dir_list { items }
    }
}

/// Item `index` of a list, or `MSB_STATUS_INVALID_ARGUMENT`.
fn item(list: &msb_dir_list, index: usize) -> Result<&DirItem, msb_status> {
    list.items.get(index).ok_or_else(|| {
        fail(
            msb_status::InvalidArgument,
            format!(
                "entry index {index} is out of range (there are {})",
                list.items.len()
            ),
        )
    })
}

/// The number of entries.
#[unsafe(no_mangle)]
pub extern "C" fn msb_dir_list_len(list: *const msb_dir_list, out: *mut usize) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        let list = try_arg!(arg::obj(list, "list"));
        *out = list.items.len();
        msb_status::Ok
    }
}

/// The name of entry `index` (its last path component, the bytes the image stores: not
/// necessarily UTF-8, never empty). Borrowed from the list: valid until `msb_dir_list_free`;
/// not NUL-terminated. On failure `*out` is the empty string.
#[unsafe(no_mangle)]
pub extern "C" fn msb_dir_list_name(
    list: *const msb_dir_list,
    index: usize,
    out: *mut msb_str<'_>,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        *out = msb_str::default();
        let list = try_arg!(arg::obj(list, "list"));
        let item = try_arg!(item(list, index));
        *out = msb_str::borrow_bytes(&item.name);
        msb_status::Ok
    }
}

/// The metadata of entry `index` (as `msb_layer_stack_stat` of its path would give them).
#[unsafe(no_mangle)]
pub extern "C" fn msb_dir_list_stat(
    list: *const msb_dir_list,
    index: usize,
    out: *mut msb_stat,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        let list = try_arg!(arg::obj(list, "list"));
        *out = try_arg!(item(list, index)).stat;
        msb_status::Ok
    }
}

/// Frees a list (and the names borrowed from it). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn msb_dir_list_free(list: *mut msb_dir_list) {
    ffi_panic_boundary! {
        arg::free_handle(list)
    }
}
