package msbimage

// #include <stdlib.h>
// #include "msbimage.h"
import "C"

import (
	"encoding/json"
	"runtime"
	"sync"
	"time"
)

// The cache's reports, decoded from the library's JSON (the core's report types, described
// under cacheReports in core/api-surface.json; surface_test.go checks these structs against
// it). Digests are "sha256:…" strings; times are seconds since the Unix epoch.

// CachedImage is an image in the cache: one platform manifest, under every name it was
// pulled as.
type CachedImage struct {
	Names          []string `json:"names"`          // the normalised references, sorted
	Platform       string   `json:"platform"`       // "linux/amd64"
	ManifestDigest string   `json:"manifestDigest"` // the platform manifest's digest
	ConfigDigest   string   `json:"configDigest"`   // the config blob's digest (image ID)
	Layers         []string `json:"layers"`         // diff_ids, bottom to top
	Complete       bool     `json:"complete"`       // every layer is in the cache
	LastUsed       uint64   `json:"lastUsed"`       // last pull or warm pull
	PulledAt       uint64   `json:"pulledAt"`       // last pull from a registry
}

// CachedLayer is a layer in the cache.
type CachedLayer struct {
	DiffID string   `json:"diffId"` // the uncompressed digest (the cache key)
	Bytes  uint64   `json:"bytes"`  // bytes on disk (tree, index, metadata)
	Images []string `json:"images"` // names of the images that hold it; empty: gc removes it
}

// ImageUsage is one image's share of the disk.
type ImageUsage struct {
	CachedImage
	ExclusiveBytes uint64 `json:"exclusiveBytes"` // layers no other image holds
	SharedBytes    uint64 `json:"sharedBytes"`    // layers shared with other images
}

// DiskUsage says where the cache's bytes are.
type DiskUsage struct {
	Images            []ImageUsage  `json:"images"`
	Layers            []CachedLayer `json:"layers"`
	LayerBytes        uint64        `json:"layerBytes"`        // all layers
	UnreferencedBytes uint64        `json:"unreferencedBytes"` // layers no image refers to
	TmpBytes          uint64        `json:"tmpBytes"`          // pulls in progress, debris
	FlatBytes         uint64        `json:"flatBytes"`         // flat EROFS images
}

// RemovedImage is an image that GC evicted or RemoveImage removed.
type RemovedImage struct {
	Names          []string `json:"names"`
	Platform       string   `json:"platform"`
	ManifestDigest string   `json:"manifestDigest"`
}

// GCReport is what GC or RemoveImage did (with DryRun, would do).
type GCReport struct {
	DryRun           bool           `json:"dryRun"`
	RemovedImages    []RemovedImage `json:"removedImages"`
	RemovedLayers    []string       `json:"removedLayers"`    // layer trees deleted
	InUseLayers      []string       `json:"inUseLayers"`      // unreferenced but held: left for later
	RemovedManifests uint64         `json:"removedManifests"` // manifests and configs deleted
	// RemovedFlatImages counts flat EROFS images of manifests no image refers to, deleted.
	RemovedFlatImages uint64 `json:"removedFlatImages"`
	RemovedDebris     uint64 `json:"removedDebris"` // staging dirs, stale partials
	FreedBytes        uint64 `json:"freedBytes"`
}

// GCPolicy says what GC may remove besides what nothing refers to. The zero value collects
// only that.
type GCPolicy struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// MaxSize, when not nil, evicts least-recently-used images until the layers take at
	// most this many bytes (Bytes(0): every image KeepRecent does not protect).
	MaxSize *uint64
	// KeepRecent, when > 0, protects images used within this long; without a size cap,
	// every other image is evicted (prune by age).
	KeepRecent time.Duration
}

// Bytes is a size for GCPolicy.MaxSize.
func Bytes(n uint64) *uint64 { return &n }

// MarshalJSON gives the core's GcPolicy JSON (camelCase keys, keepRecent in seconds).
func (p GCPolicy) MarshalJSON() ([]byte, error) {
	out := map[string]any{"dryRun": p.DryRun}
	if p.MaxSize != nil {
		out["maxSize"] = *p.MaxSize
	}
	if p.KeepRecent > 0 {
		out["keepRecent"] = p.KeepRecent.Seconds()
	}
	return json.Marshal(out)
}

// report runs f (one of the msb_cache_*_json calls) with the cache's handle and decodes the
// JSON it returns into out.
func (c *Cache) report(out any, f func(ptr *C.msb_cache, json **C.char) C.msb_status) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return &Error{Code: CodeInvalidArgument, Message: "the cache is closed"}
	}
	var s *C.char
	if err := call(func() C.msb_status { return f(c.ptr, &s) }); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(goString(s)), out); err != nil {
		return &Error{Code: CodeInternal, Message: "cannot decode the library's report: " + err.Error()}
	}
	return nil
}

// Images lists the images in the cache. It blocks while it reads the records.
func (c *Cache) Images() ([]CachedImage, error) {
	var out []CachedImage
	err := c.report(&out, func(p *C.msb_cache, s **C.char) C.msb_status { return C.msb_cache_images_json(p, s) })
	return out, err
}

// Layers lists the layers in the cache with their size and the images that hold them. It
// walks every layer tree.
func (c *Cache) Layers() ([]CachedLayer, error) {
	var out []CachedLayer
	err := c.report(&out, func(p *C.msb_cache, s **C.char) C.msb_status { return C.msb_cache_layers_json(p, s) })
	return out, err
}

// DiskUsage says how many bytes each image occupies alone and shares, and each layer. It
// walks every layer tree.
func (c *Cache) DiskUsage() (*DiskUsage, error) {
	var out DiskUsage
	err := c.report(&out, func(p *C.msb_cache, s **C.char) C.msb_status { return C.msb_cache_disk_usage_json(p, s) })
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveImage removes the image ref (for platform "os/arch[/variant]", or every platform when
// ""), and the layers only it held unless someone holds them (listed in InUseLayers). An
// image not in the cache is CodeNotFound; a malformed reference, CodeInvalidReference.
func (c *Cache) RemoveImage(ref, platform string) (*GCReport, error) {
	p, err := optionalPlatform(platform)
	if err != nil {
		return nil, err
	}
	defer C.msb_platform_free(p)
	cref := cString(ref)
	defer freeString(cref)
	var out GCReport
	err = c.report(&out, func(ptr *C.msb_cache, s **C.char) C.msb_status {
		return C.msb_cache_remove_image_json(ptr, cref, p, s)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GC collects garbage: debris of dead pulls, layers and manifests no image refers to, and
// the images policy evicts. Layers someone holds are left and listed in InUseLayers. Safe
// while other goroutines and processes pull.
func (c *Cache) GC(policy GCPolicy) (*GCReport, error) {
	raw, err := json.Marshal(policy)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: err.Error()}
	}
	cpolicy := cString(string(raw))
	defer freeString(cpolicy)
	var out GCReport
	err = c.report(&out, func(ptr *C.msb_cache, s **C.char) C.msb_status {
		return C.msb_cache_gc_json(ptr, cpolicy, s)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// LayerLease holds one layer: while it is open, no process deletes the layer's tree (GC,
// RemoveImage, a forced pull), e.g. while a sandbox has it mounted. Close releases it.
type LayerLease struct {
	mu     sync.Mutex
	ptr    *C.msb_layer_lease
	diffID string
}

// HoldLayer holds the layer diffID ("sha256:…"). A layer not in the cache may be held: a
// layer published later under that diff_id is then kept too. A diffID that is not a digest
// is CodeInvalidArgument.
func (c *Cache) HoldLayer(diffID string) (*LayerLease, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: "the cache is closed"}
	}
	cdiff := cString(diffID)
	defer freeString(cdiff)
	l := &LayerLease{diffID: diffID}
	if err := call(func() C.msb_status { return C.msb_cache_hold_layer(c.ptr, cdiff, &l.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(l, (*LayerLease).Close)
	return l, nil
}

// DiffID is the held layer's diff_id.
func (l *LayerLease) DiffID() string { return l.diffID }

// Close releases the lease (a second Close does nothing). The layer stays held while
// anything else holds it.
func (l *LayerLease) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr != nil {
		C.msb_layer_lease_free(l.ptr)
		l.ptr = nil
		runtime.SetFinalizer(l, nil)
	}
	return nil
}
