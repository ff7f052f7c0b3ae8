package msbimage

// #include "msbimage.h"
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sort"
	"sync"
)

// EventKind says what a progress Event reports (msb_progress_kind in the C header).
type EventKind uint32

// The event kinds, in the order a pull emits them.
const (
	Resolving             EventKind = C.MSB_PROGRESS_KIND_RESOLVING
	Resolved              EventKind = C.MSB_PROGRESS_KIND_RESOLVED
	LayerCached           EventKind = C.MSB_PROGRESS_KIND_LAYER_CACHED
	LayerDownloadProgress EventKind = C.MSB_PROGRESS_KIND_LAYER_DOWNLOAD_PROGRESS
	LayerDownloadComplete EventKind = C.MSB_PROGRESS_KIND_LAYER_DOWNLOAD_COMPLETE
	LayerExtractStarted   EventKind = C.MSB_PROGRESS_KIND_LAYER_EXTRACT_STARTED
	LayerExtractProgress  EventKind = C.MSB_PROGRESS_KIND_LAYER_EXTRACT_PROGRESS
	LayerExtractComplete  EventKind = C.MSB_PROGRESS_KIND_LAYER_EXTRACT_COMPLETE
	LayerIndexStarted     EventKind = C.MSB_PROGRESS_KIND_LAYER_INDEX_STARTED
	LayerIndexComplete    EventKind = C.MSB_PROGRESS_KIND_LAYER_INDEX_COMPLETE
	Complete              EventKind = C.MSB_PROGRESS_KIND_COMPLETE
	LayerWaiting          EventKind = C.MSB_PROGRESS_KIND_LAYER_WAITING
	RequestRetrying       EventKind = C.MSB_PROGRESS_KIND_REQUEST_RETRYING
)

var kindNames = map[EventKind]string{
	Resolving:             "resolving",
	Resolved:              "resolved",
	LayerCached:           "layer_cached",
	LayerDownloadProgress: "layer_download_progress",
	LayerDownloadComplete: "layer_download_complete",
	LayerExtractStarted:   "layer_extract_started",
	LayerExtractProgress:  "layer_extract_progress",
	LayerExtractComplete:  "layer_extract_complete",
	LayerIndexStarted:     "layer_index_started",
	LayerIndexComplete:    "layer_index_complete",
	Complete:              "complete",
	LayerWaiting:          "layer_waiting",
	RequestRetrying:       "request_retrying",
}

// EventKinds returns every event kind this package knows, in the library's order.
func EventKinds() []EventKind {
	kinds := make([]EventKind, 0, len(kindNames))
	for k := range kindNames {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	return kinds
}

func (k EventKind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("EventKind(%d)", uint32(k))
}

// Event is one progress event of a pull. Only the fields documented for its Kind in
// include/msbimage.h are set; layer indexes count from 0 at the bottom layer.
type Event struct {
	Kind               EventKind
	LayerIndex         int
	Reference          string
	ManifestDigest     string
	Digest             string // a layer's compressed digest
	DiffID             string // a layer's uncompressed digest
	LayerCount         int
	TotalDownloadBytes uint64
	DownloadedBytes    uint64
	TotalBytes         uint64
	HasTotalBytes      bool
	BytesExtracted     uint64
	Entries            uint64
	Cached             bool
	HolderPID          uint32 // the process holding the layer's lock (LayerWaiting)
	HasHolderPID       bool
	URL                string // a retried request's URL, without its query (RequestRetrying)
	HasLayerIndex      bool   // LayerIndex and Digest name the retried request's layer
	Attempt            uint32 // the attempt about to start, 2 for the first retry
	MaxAttempts        uint32
	WaitMS             uint64 // the wait before the retry, in milliseconds
	Reason             string // why the attempt before failed
	// JSON is the whole event in the library's JSON form, the same in every language:
	// {"type":"layerDownloadProgress","layerIndex":0,…} (see PROGRESS.md).
	JSON string
}

func goStr(s C.msb_str) string {
	if s.len == 0 {
		return ""
	}
	return C.GoStringN(s.ptr, C.int(s.len))
}

func eventFromC(e *C.msb_progress_event) Event {
	return Event{
		Kind:               EventKind(e.kind),
		LayerIndex:         int(e.layer_index),
		Reference:          goStr(e.reference),
		ManifestDigest:     goStr(e.manifest_digest),
		Digest:             goStr(e.digest),
		DiffID:             goStr(e.diff_id),
		LayerCount:         int(e.layer_count),
		TotalDownloadBytes: uint64(e.total_download_bytes),
		DownloadedBytes:    uint64(e.downloaded_bytes),
		TotalBytes:         uint64(e.total_bytes),
		HasTotalBytes:      bool(e.has_total_bytes),
		BytesExtracted:     uint64(e.bytes_extracted),
		Entries:            uint64(e.entries),
		Cached:             bool(e.cached),
		HolderPID:          uint32(e.holder_pid),
		HasHolderPID:       bool(e.has_holder_pid),
		URL:                goStr(e.url),
		HasLayerIndex:      bool(e.has_layer_index),
		Attempt:            uint32(e.attempt),
		MaxAttempts:        uint32(e.max_attempts),
		WaitMS:             uint64(e.wait_ms),
		Reason:             goStr(e.reason),
		JSON:               goStr(e.json),
	}
}

// progressSink is what the cgo.Handle of a pull points to: the Go callback, and the panic
// it raised, if any (a panic must not unwind through C; Pull raises it again).
//
// The library already calls it one event at a time and never after the pull ended, but the
// race detector cannot see the library's locks: mu makes that order visible to Go.
type progressSink struct {
	fn        func(Event)
	mu        sync.Mutex
	closed    bool
	recovered any
	once      sync.Once
	panicked  chan struct{}
}

func newProgressSink(fn func(Event)) *progressSink {
	return &progressSink{fn: fn, panicked: make(chan struct{})}
}

func (s *progressSink) deliver(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.recovered != nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.recovered = r
			s.once.Do(func() { close(s.panicked) })
		}
	}()
	s.fn(e)
}

// close stops delivery and returns the panic the callback raised, if any.
func (s *progressSink) close() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.recovered
}

// goProgress is the msb_progress_fn of every pull (through the C shim). The library calls
// it on its own threads, one call at a time per pull.
//
//export goProgress
func goProgress(e *C.msb_progress_event, handle C.uintptr_t) {
	sink := cgo.Handle(handle).Value().(*progressSink)
	sink.deliver(eventFromC(e))
}
