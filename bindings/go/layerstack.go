package msbimage

// #include <stdlib.h>
// #include "msbimage.h"
import "C"

import (
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// EntryKind says what an entry of a LayerStack is.
type EntryKind uint32

// The entry kinds. Their numbers are those of include/msbimage.h and never change.
const (
	KindFile        EntryKind = C.MSB_ENTRY_KIND_FILE
	KindDir         EntryKind = C.MSB_ENTRY_KIND_DIR
	KindSymlink     EntryKind = C.MSB_ENTRY_KIND_SYMLINK
	KindCharDevice  EntryKind = C.MSB_ENTRY_KIND_CHAR_DEVICE
	KindBlockDevice EntryKind = C.MSB_ENTRY_KIND_BLOCK_DEVICE
	KindFifo        EntryKind = C.MSB_ENTRY_KIND_FIFO
	KindWhiteout    EntryKind = C.MSB_ENTRY_KIND_WHITEOUT // never returned by a LayerStack
)

var entryKindNames = map[EntryKind]string{
	KindFile: "file", KindDir: "dir", KindSymlink: "symlink", KindCharDevice: "char-device",
	KindBlockDevice: "block-device", KindFifo: "fifo", KindWhiteout: "whiteout",
}

func (k EntryKind) String() string {
	if name, ok := entryKindNames[k]; ok {
		return name
	}
	return "unknown"
}

// EntryFlags are the MSB_ENTRY_FLAG_* bits of a Stat.
type EntryFlags uint32

// The entry flags.
const (
	// FlagOpaque: the directory hides the lower layers' contents.
	FlagOpaque EntryFlags = C.MSB_ENTRY_FLAG_OPAQUE
	// FlagHardlink: the entry shares its inode with another entry of its layer.
	FlagHardlink EntryFlags = C.MSB_ENTRY_FLAG_HARDLINK
	// FlagImplicit: a directory created only as a parent, with placeholder metadata.
	FlagImplicit EntryFlags = C.MSB_ENTRY_FLAG_IMPLICIT
	// FlagHasXattrs: the entry has extended attributes.
	FlagHasXattrs EntryFlags = C.MSB_ENTRY_FLAG_HAS_XATTRS
)

// Stat is the metadata of an entry of the merged view, as the image describes it (on the
// host a symlink is a regular file holding its target; Stat says symlink).
type Stat struct {
	Mode      uint32     // full mode: S_IFMT type bits, set-id and sticky bits, permissions
	UID       uint32     // owner
	GID       uint32     // group
	Nlink     uint32     // link count within the entry's layer
	Size      uint64     // a file's length, a symlink's target length; 0 otherwise
	Rdev      uint32     // a device's number, kernel new_encode_dev form ((major<<8)|minor when small)
	MtimeSec  int64      // modification time, seconds since the epoch
	MtimeNsec uint32     // modification time, nanoseconds
	Inode     uint64     // inode of the extracted file in its layer's tree on the host
	Layer     int        // the layer the entry comes from, 0 = bottom
	Kind      EntryKind  // what the entry is
	Flags     EntryFlags // FlagOpaque, FlagHardlink, FlagImplicit, FlagHasXattrs
}

// ModTime is the modification time.
func (s Stat) ModTime() time.Time { return time.Unix(s.MtimeSec, int64(s.MtimeNsec)) }

// FileMode is Mode in Go's terms (type, permission, set-id and sticky bits).
func (s Stat) FileMode() fs.FileMode {
	m := fs.FileMode(s.Mode & 0o777)
	if s.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if s.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if s.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch s.Kind {
	case KindDir:
		m |= fs.ModeDir
	case KindSymlink:
		m |= fs.ModeSymlink
	case KindCharDevice:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case KindBlockDevice:
		m |= fs.ModeDevice
	case KindFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}

func statFromC(s *C.msb_stat) Stat {
	return Stat{
		Mode: uint32(s.mode), UID: uint32(s.uid), GID: uint32(s.gid), Nlink: uint32(s.nlink),
		Size: uint64(s.size), Rdev: uint32(s.rdev), MtimeSec: int64(s.mtime_sec),
		MtimeNsec: uint32(s.mtime_nsec), Inode: uint64(s.inode), Layer: int(s.layer),
		Kind: EntryKind(s.kind), Flags: EntryFlags(s.flags),
	}
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string // the last path component (the image's bytes, not necessarily UTF-8)
	Stat Stat
}

// LayerStack is the merged, overlay-style view of an image's layers (upper layers win,
// whiteouts and opaque directories applied), answered from the layers' indexes without
// touching the host trees. Paths are inside the image: "/etc/hosts" and "etc/hosts" are the
// same; "/" is the root. Safe for concurrent use; Close it when done (it keeps the index
// files mapped).
type LayerStack struct {
	mu  sync.RWMutex
	ptr *C.msb_layer_stack
}

// LayerStack opens the merged view of the pulled image from its layers' indexes
// (LayerIndexes). It fails with CodeIO when the image was pulled with NoIndex and no later
// pull built the indexes.
func (r *PullResult) LayerStack() (*LayerStack, error) {
	return OpenLayerStack(r.LayerIndexes...)
}

// OpenLayerStack opens the index files at indexPaths (bottom to top) as one stack. Each
// layer's tree, for HostPath, is the "fs" directory beside its index.
func OpenLayerStack(indexPaths ...string) (*LayerStack, error) {
	// A C array of C strings; one slot at least, so that its address is never NULL.
	cs := make([]*C.char, len(indexPaths)+1)
	defer func() {
		for _, c := range cs {
			if c != nil {
				freeString(c)
			}
		}
	}()
	for i, p := range indexPaths {
		if strings.IndexByte(p, 0) >= 0 {
			return nil, &Error{Code: CodeInvalidArgument, Message: "index path contains a NUL byte"}
		}
		cs[i] = cString(p)
	}
	s := &LayerStack{}
	err := call(func() C.msb_status {
		return C.msb_layer_stack_open_paths(&cs[0], C.size_t(len(indexPaths)), &s.ptr)
	})
	if err != nil {
		return nil, err
	}
	runtime.SetFinalizer(s, (*LayerStack).Close)
	return s, nil
}

// Close unmaps the indexes. Calling it again does nothing.
func (s *LayerStack) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr != nil {
		C.msb_layer_stack_free(s.ptr)
		s.ptr = nil
		runtime.SetFinalizer(s, nil)
	}
	return nil
}

// with runs f with the stack's handle and path as a C string, under the read lock.
func (s *LayerStack) with(path string, f func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status) error {
	if strings.IndexByte(path, 0) >= 0 {
		return &Error{Code: CodeInvalidArgument, Message: "path contains a NUL byte"}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ptr == nil {
		return &Error{Code: CodeInvalidArgument, Message: "the layer stack is closed"}
	}
	cpath := cString(path)
	defer freeString(cpath)
	return call(func() C.msb_status { return f(s.ptr, cpath) })
}

// LayerCount is the number of layers of the stack.
func (s *LayerStack) LayerCount() (int, error) {
	var n C.size_t
	err := s.with("", func(stack *C.msb_layer_stack, _ *C.char) C.msb_status {
		return C.msb_layer_stack_layer_count(stack, &n)
	})
	return int(n), err
}

// Stat returns the metadata of the entry at path (symlinks are not followed). A missing,
// whited-out or hidden path is an error with CodeNotFound (errors.Is(err, ErrNotFound)).
func (s *LayerStack) Stat(path string) (Stat, error) {
	var st C.msb_stat
	err := s.with(path, func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status {
		return C.msb_layer_stack_stat(stack, cpath, &st)
	})
	if err != nil {
		return Stat{}, err
	}
	return statFromC(&st), nil
}

// Readlink returns the target of the symbolic link at path, as stored. A path that is not
// a symlink is an error with CodeInvalidArgument.
func (s *LayerStack) Readlink(path string) (string, error) {
	var out *C.char
	err := s.with(path, func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status {
		return C.msb_layer_stack_readlink(stack, cpath, &out)
	})
	return goString(out), err
}

// ReadDir lists the directory at path, merged across layers, sorted by name. A path that is
// not a directory is an error with CodeInvalidArgument.
func (s *LayerStack) ReadDir(path string) ([]DirEntry, error) {
	var list *C.msb_dir_list
	err := s.with(path, func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status {
		return C.msb_layer_stack_read_dir(stack, cpath, &list)
	})
	if err != nil {
		return nil, err
	}
	defer C.msb_dir_list_free(list)
	var n C.size_t
	if err := call(func() C.msb_status { return C.msb_dir_list_len(list, &n) }); err != nil {
		return nil, err
	}
	out := make([]DirEntry, int(n))
	for i := range out {
		var name C.msb_str
		var st C.msb_stat
		idx := C.size_t(i)
		err := call(func() C.msb_status { return C.msb_dir_list_name(list, idx, &name) })
		if err == nil {
			err = call(func() C.msb_status { return C.msb_dir_list_stat(list, idx, &st) })
		}
		if err != nil {
			return nil, err
		}
		out[i] = DirEntry{Name: C.GoStringN(name.ptr, C.int(name.len)), Stat: statFromC(&st)}
	}
	return out, nil
}

// takeBytes copies bytes the library returned and frees them.
func takeBytes(b C.msb_bytes) []byte {
	if b.ptr == nil {
		return []byte{}
	}
	defer C.msb_bytes_free(b)
	return C.GoBytes(unsafe.Pointer(b.ptr), C.int(b.len))
}

// Xattr returns the value of the extended attribute name of the entry at path. A missing
// entry or attribute is an error with CodeNotFound.
func (s *LayerStack) Xattr(path, name string) ([]byte, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArgument, Message: "xattr name contains a NUL byte"}
	}
	cname := cString(name)
	defer freeString(cname)
	var out C.msb_bytes
	err := s.with(path, func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status {
		return C.msb_layer_stack_get_xattr(stack, cpath, cname, &out)
	})
	value := takeBytes(out)
	if err != nil {
		return nil, err
	}
	return value, nil
}

// ListXattrs returns the names of the extended attributes of the entry at path, sorted.
func (s *LayerStack) ListXattrs(path string) ([]string, error) {
	var out C.msb_bytes
	err := s.with(path, func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status {
		return C.msb_layer_stack_list_xattrs(stack, cpath, &out)
	})
	list := takeBytes(out)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, n := range strings.Split(string(list), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

// HostPath returns where the content of the entry at path lives on the host: the tree of
// the layer it comes from joined with path. Open regular files there read-only; the layer
// trees are shared. Use Stat, not the host file, for metadata.
func (s *LayerStack) HostPath(path string) (string, error) {
	var out *C.char
	err := s.with(path, func(stack *C.msb_layer_stack, cpath *C.char) C.msb_status {
		return C.msb_layer_stack_host_path(stack, cpath, &out)
	})
	return goString(out), err
}
