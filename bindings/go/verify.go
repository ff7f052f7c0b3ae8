package msbimage

// #include <stdlib.h>
// #include "msbimage.h"
import "C"

import (
	"encoding/json"
	"runtime"
	"unsafe"
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind   string  `json:"kind"`   // a ProblemKind: "contentChanged", "missing", …
	Path   *string `json:"path"`   // a path in the layer's tree or a cache file; nil: none
	Detail string  `json:"detail"` // what was expected and found
}

// ProblemKinds are the kinds of a Problem the core knows (surface_test.go checks them
// against problemKinds in core/api-surface.json).
var ProblemKinds = []string{
	"recordInvalid", "manifestMissing", "manifestCorrupt", "layerMissing", "layerInvalid",
	"indexMissing", "indexCorrupt", "contentsMissing", "contentsCorrupt", "erofsMissing",
	"erofsCorrupt", "missing", "unexpected", "kindChanged", "sizeChanged", "contentChanged",
	"timeChanged", "metadataChanged", "unreadable",
}

// LayerCheck is the check of one layer.
type LayerCheck struct {
	DiffID       string    `json:"diffId"`
	Entries      uint64    `json:"entries"`      // entries of its tree checked
	Bytes        uint64    `json:"bytes"`        // file bytes read and hashed
	Recorded     bool      `json:"recorded"`     // it has content digests to check files against
	Problems     []Problem `json:"problems"`     // at most 100
	MoreProblems uint64    `json:"moreProblems"` // problems beyond those listed
}

// ImageCheck is the check of one image.
type ImageCheck struct {
	Names          []string  `json:"names"`
	Platform       string    `json:"platform"`
	ManifestDigest string    `json:"manifestDigest"`
	Problems       []Problem `json:"problems"`      // its manifests' problems
	DamagedLayers  []string  `json:"damagedLayers"` // its layers missing or with problems
}

// VerifyReport is what Verify found. Pass it to Registry.Repair.
type VerifyReport struct {
	Images  []ImageCheck `json:"images"`
	Layers  []LayerCheck `json:"layers"`
	Records []Problem    `json:"records"` // invalid image records (whole-cache check only)
}

// Clean reports whether nothing is wrong.
func (r *VerifyReport) Clean() bool {
	n := len(r.Records)
	for _, i := range r.Images {
		n += len(i.Problems)
	}
	for _, l := range r.Layers {
		n += len(l.Problems) + int(l.MoreProblems)
	}
	return n == 0
}

// RepairReport is what Registry.Repair did.
type RepairReport struct {
	RepairedImages []string        `json:"repairedImages"`
	RebuiltLayers  []string        `json:"rebuiltLayers"`
	RemovedRecords uint64          `json:"removedRecords"`
	OrphanedLayers []string        `json:"orphanedLayers"`
	Failed         []RepairFailure `json:"failed"`
}

// RepairFailure is an image Repair could not repair.
type RepairFailure struct {
	Image string `json:"image"`
	Error string `json:"error"`
}

// RemoteLayer is one layer of a RemoteImage.
type RemoteLayer struct {
	Digest    string `json:"digest"`
	Size      uint64 `json:"size"`
	MediaType string `json:"mediaType"`
	DiffID    string `json:"diffId"`
}

// RemoteImage is an image as its registry describes it (Registry.Inspect).
type RemoteImage struct {
	Reference      string        `json:"reference"`
	Digest         string        `json:"digest"`
	IndexDigest    *string       `json:"indexDigest"`
	Platforms      []string      `json:"platforms"`
	Platform       string        `json:"platform"`
	ManifestDigest string        `json:"manifestDigest"`
	ConfigDigest   string        `json:"configDigest"`
	Config         ImageConfig   `json:"config"`
	Layers         []RemoteLayer `json:"layers"`
	DownloadSize   uint64        `json:"downloadSize"`
}

// UnpackReport is what writing an image's merged tree as a plain directory did.
type UnpackReport struct {
	Entries       uint64   `json:"entries"`       // entries created (the root excluded)
	Bytes         uint64   `json:"bytes"`         // bytes of file content copied
	Rootless      bool     `json:"rootless"`      // owners and devices written the rootless way
	SkippedXattrs []string `json:"skippedXattrs"` // xattrs refused, as "path: name"
}

// SaveReport is what Registry.Save wrote.
type SaveReport struct {
	Reference      string `json:"reference"`      // the image saved, as named on its registry
	Target         string `json:"target"`         // where it went
	ManifestDigest string `json:"manifestDigest"` // the manifest written (the platform's)
	ConfigDigest   string `json:"configDigest"`   // the config blob
	BlobsWritten   uint64 `json:"blobsWritten"`   // blobs written, config included
	BytesWritten   uint64 `json:"bytesWritten"`   // bytes of those blobs as written
}

// CacheOptions are how OpenWithOptions opens a cache.
type CacheOptions struct {
	Group    any  `json:"group,omitempty"` // a group name (string) or gid (number); nil: none
	ReadOnly bool `json:"readOnly"`        // a reader that never writes
}

// OpenWithOptions opens (creating it if needed, unless read-only) the cache directory dir
// with options.
func OpenWithOptions(dir string, options CacheOptions) (*Cache, error) {
	raw, err := json.Marshal(options)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: err.Error()}
	}
	cdir, copts := C.CString(dir), C.CString(string(raw))
	defer C.free(unsafe.Pointer(cdir))
	defer C.free(unsafe.Pointer(copts))
	c := &Cache{}
	if err := call(func() C.msb_status { return C.msb_cache_open_with_options(cdir, copts, &c.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(c, (*Cache).Close)
	return c, nil
}

// Verify checks the cache against what was published: with no refs every image record,
// image and layer; with refs the images pulled under those names and their layers. It
// blocks while it reads every byte of every layer it checks.
func (c *Cache) Verify(refs ...string) (*VerifyReport, error) {
	var out VerifyReport
	cs := make([]*C.char, len(refs)+1)
	for i, r := range refs {
		cs[i] = cString(r)
	}
	defer func() {
		for _, p := range cs[:len(refs)] {
			freeString(p)
		}
	}()
	// A C array (cgo forbids passing Go memory holding Go pointers; these are C pointers,
	// but the array itself must not move while the call runs: copy it to C memory).
	size := C.size_t(len(cs)) * C.size_t(unsafe.Sizeof(cs[0]))
	arr := (**C.char)(C.malloc(size))
	defer C.free(unsafe.Pointer(arr))
	copy(unsafe.Slice(arr, len(cs)), cs)
	var list **C.char
	if len(refs) > 0 {
		list = arr
	}
	err := c.report(&out, func(p *C.msb_cache, s **C.char) C.msb_status { return C.msb_cache_verify_json(p, list, s) })
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// registryReport runs f with the registry's handle and decodes the JSON it returns into out.
func (r *Registry) registryReport(out any, f func(ptr *C.msb_registry, json **C.char) C.msb_status) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.ptr == nil {
		return &Error{Code: CodeInvalidArgument, Message: "the registry is closed"}
	}
	var s *C.char
	if err := call(func() C.msb_status { return f(r.ptr, &s) }); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(goString(s)), out); err != nil {
		return &Error{Code: CodeInternal, Message: "cannot decode the library's report: " + err.Error()}
	}
	return nil
}

// Repair re-pulls what report (from Cache.Verify on this registry's cache) found damaged.
func (r *Registry) Repair(report *VerifyReport) (*RepairReport, error) {
	raw, err := json.Marshal(report)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: err.Error()}
	}
	cjson := cString(string(raw))
	defer freeString(cjson)
	var out RepairReport
	err = r.registryReport(&out, func(p *C.msb_registry, s **C.char) C.msb_status {
		return C.msb_registry_repair_json(p, cjson, s)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Inspect says what ref resolves to on its registry (for platform, "" for the registry's),
// without downloading a layer or writing to the cache.
func (r *Registry) Inspect(ref, platform string) (*RemoteImage, error) {
	p, err := optionalPlatform(platform)
	if err != nil {
		return nil, err
	}
	defer C.msb_platform_free(p)
	cref := cString(ref)
	defer freeString(cref)
	var out RemoteImage
	err = r.registryReport(&out, func(ptr *C.msb_registry, s **C.char) C.msb_status {
		return C.msb_registry_inspect_json(ptr, cref, p, s)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Save writes the image source names (as Pull takes it: a reference, "oci-layout:DIR[:TAG]"
// or "docker-archive:FILE[:NAME:TAG]") to target, an OCI image layout ("oci-layout:DIR[:TAG]")
// or a docker archive ("docker-archive:FILE[:NAME:TAG]"), for platform ("" for the
// registry's), to carry it where no registry is. A registry image is fetched again (the cache
// keeps extracted layers, not blobs).
func (r *Registry) Save(source, target, platform string) (*SaveReport, error) {
	p, err := optionalPlatform(platform)
	if err != nil {
		return nil, err
	}
	defer C.msb_platform_free(p)
	csource, ctarget := cString(source), cString(target)
	defer freeString(csource)
	defer freeString(ctarget)
	var out SaveReport
	err = r.registryReport(&out, func(ptr *C.msb_registry, s **C.char) C.msb_status {
		return C.msb_registry_save_json(ptr, csource, ctarget, p, s)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
