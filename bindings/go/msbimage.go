// Package msbimage pulls OCI images into a shared cache of ready-to-mount layer directories,
// through libmsbimage (the C ABI of the Rust core, include/msbimage.h).
//
//	cache, err := msbimage.Open("/var/cache/msbimage")
//	if err != nil { … }
//	defer cache.Close()
//	reg, err := msbimage.NewRegistry(cache, msbimage.WithPlatform("linux/arm64"))
//	if err != nil { … }
//	defer reg.Close()
//	res, err := reg.Pull(ctx, "docker.io/library/alpine:3.20", msbimage.PullOptions{},
//		func(e msbimage.Event) { log.Println(e.Kind, e.LayerIndex) })
//	if err != nil { … }
//	fmt.Println(res.Layers) // extracted layer trees, bottom to top
//	stack, err := res.LayerStack() // the merged view, from the layers' indexes
//	if err != nil { … }
//	defer stack.Close()
//	st, err := stack.Stat("/etc/hosts") // also ReadDir, Readlink, Xattr, HostPath
//
// The cache's life cycle: cache.Images(), Layers(), DiskUsage(), RemoveImage(ref, platform),
// GC(GCPolicy{DryRun, MaxSize, KeepRecent}) and HoldLayer(diffID) (a *LayerLease that keeps
// gc and rm off the layer until Close).
//
// Cancelling ctx cancels the pull. Errors are *Error values carrying the library's status
// code. All types are safe for concurrent use; progress callbacks run on library threads.
//
// Building needs libmsbimage installed, which the package finds with pkg-config
// (msbimage.pc). From the repository root, install it under a prefix with ffi/install.sh,
// then point pkg-config at it; the library is found at run time through the rpath given in
// CGO_LDFLAGS (or LD_LIBRARY_PATH, or nothing at all under a prefix the dynamic loader
// searches, such as /usr/local after ldconfig):
//
//	ffi/install.sh --prefix "$HOME/.local"
//	cd bindings/go
//	PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig" CGO_LDFLAGS="-Wl,-rpath,$HOME/.local/lib" go test ./...
//
// The tests start msbimage-testkit (cargo build -p msbimage-testkit; $MSB_TESTKIT or
// target/debug/msbimage-testkit).
package msbimage

// #cgo pkg-config: msbimage
// #include <stdlib.h>
// #include "msbimage.h"
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Version is the version of the loaded libmsbimage, e.g. "0.1.0".
func Version() string { return C.GoString(C.msb_version()) }

// ABIVersion is the ABI major version of the loaded library (the N of libmsbimage.so.N).
func ABIVersion() uint32 { return uint32(C.msb_abi_version()) }

// HeaderABIVersion is the ABI major version of the header this package was built with.
const HeaderABIVersion = uint32(C.MSB_ABI_VERSION)

// Cache is an open cache directory, shared safely by goroutines and processes.
type Cache struct {
	mu  sync.RWMutex
	ptr *C.msb_cache
}

// Open opens (creating it if needed) the cache directory dir.
func Open(dir string) (*Cache, error) {
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	c := &Cache{}
	if err := call(func() C.msb_status { return C.msb_cache_open(cdir, &c.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(c, (*Cache).Close)
	return c, nil
}

// Close releases the handle. Registries made from the cache stay usable.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.msb_cache_free(c.ptr)
		c.ptr = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// cString copies s into C memory; free it with C.free.
func cString(s string) *C.char { return C.CString(s) }

func freeString(s *C.char) { C.free(unsafe.Pointer(s)) }

// goString takes a string the library returned and frees it ("" for NULL).
func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.msb_string_free(s)
	return C.GoString(s)
}
