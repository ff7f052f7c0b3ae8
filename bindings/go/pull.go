package msbimage

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"context"
	"encoding/json"
	"runtime/cgo"
)

// Policy says when a pull contacts the registry.
type Policy uint32

// The pull policies.
const (
	// IfMissing answers from the cache when the image is complete there; pulls otherwise.
	IfMissing Policy = C.MSB_PULL_POLICY_IF_MISSING
	// Always fetches the manifest again; cached layers are reused.
	Always Policy = C.MSB_PULL_POLICY_ALWAYS
	// Never uses the cache only (ErrNotCached otherwise).
	Never Policy = C.MSB_PULL_POLICY_NEVER
)

// PullOptions are the options of one pull. The zero value is the default: IfMissing, build
// the index, the registry's platform.
type PullOptions struct {
	Policy   Policy
	Force    bool   // download and extract every layer again
	NoIndex  bool   // skip building the layers' lookup index
	Platform string // "os/arch[/variant]"; "" means the registry's platform
	// Outputs is what each layer becomes: "directory" (the extracted tree) and/or
	// "erofs-layers" (an EROFS image, LayerImages; alone, no tree is written), and
	// "erofs-flat" adds one EROFS image of the merged tree (FlatImage); nil means the core's
	// default, the directory.
	Outputs []string
	// ErofsOpaqueXattr marks opaque directories in EROFS layer images: "trusted" (the
	// default when "") or "user" (overlayfs' userxattr mounts).
	ErofsOpaqueXattr string
}

// json is the options without a setter of their own, as the core's PullOptions JSON
// (msb_pull_options_set_json); "" when all keep their defaults.
func (o PullOptions) json() (string, error) {
	extra := map[string]any{}
	if o.Outputs != nil {
		extra["outputs"] = o.Outputs
	}
	if o.ErofsOpaqueXattr != "" {
		extra["erofsOpaqueXattr"] = o.ErofsOpaqueXattr
	}
	if len(extra) == 0 {
		return "", nil
	}
	b, err := json.Marshal(extra)
	return string(b), err
}

// ImageConfig holds the runtime settings of an image.
type ImageConfig struct {
	Env          []string          `json:"env"`
	Cmd          []string          `json:"cmd"`
	Entrypoint   []string          `json:"entrypoint"`
	WorkingDir   string            `json:"working_dir"`
	User         string            `json:"user"`
	ExposedPorts []string          `json:"exposed_ports"`
	Volumes      []string          `json:"volumes"`
	Labels       map[string]string `json:"labels"`
	StopSignal   string            `json:"stop_signal"`
	OS           string            `json:"os"`
	Architecture string            `json:"architecture"`
	Variant      string            `json:"variant"`
}

// PullResult is what a pull produced.
type PullResult struct {
	Reference      string      // the normalised reference
	Platform       string      // the platform pulled for
	Layers         []string    // extracted layer trees, bottom to top
	LayerDiffIDs   []string    // the layers' uncompressed digests, parallel to Layers
	LayerIndexes   []string    // the layers' sidecar index files, parallel to Layers
	LayerImages    []string    // the layers' EROFS images (present if asked for), parallel to Layers
	FlatImage      string      // the flat EROFS image of the whole image, "" unless asked for
	ManifestDigest string      // the platform manifest's digest
	IndexDigest    string      // the index's digest, "" when the reference named a manifest
	ConfigDigest   string      // the config blob's digest (the image ID)
	Cached         bool        // answered from the cache without contacting the registry
	Config         ImageConfig // the image config
}

func (o PullOptions) toC() (*C.msb_pull_options, error) {
	var opts *C.msb_pull_options
	if err := call(func() C.msb_status { return C.msb_pull_options_new(&opts) }); err != nil {
		return nil, err
	}
	err := call(func() C.msb_status { return C.msb_pull_options_set_policy(opts, C.uint32_t(o.Policy)) })
	if err == nil {
		err = call(func() C.msb_status { return C.msb_pull_options_set_force(opts, C.bool(o.Force)) })
	}
	if err == nil {
		err = call(func() C.msb_status { return C.msb_pull_options_set_build_index(opts, C.bool(!o.NoIndex)) })
	}
	if err == nil {
		var extra string
		if extra, err = o.json(); err == nil && extra != "" {
			cs := C.CString(extra)
			err = call(func() C.msb_status { return C.msb_pull_options_set_json(opts, cs) })
			freeString(cs)
		}
	}
	if err == nil && o.Platform != "" {
		var p *C.msb_platform
		p, err = parsePlatform(o.Platform)
		if err == nil {
			err = call(func() C.msb_status { return C.msb_pull_options_set_platform(opts, p) })
			C.msb_platform_free(p)
		}
	}
	if err != nil {
		C.msb_pull_options_free(opts)
		return nil, err
	}
	return opts, nil
}

// Pull pulls ref ("docker.io/library/alpine:3.20"), or an offline image:
// "oci-layout:DIR[:TAG|@DIGEST]" (or "oci:") or "docker-archive:FILE[:NAME:TAG]", read into the
// cache under its name through the same verification, and returns what it produced.
//
// onProgress, if not nil, receives every progress event on a library thread (one call at a
// time); it must return quickly. If it panics, the pull is cancelled and Pull panics with the
// same value. Cancelling ctx cancels the pull: Pull then returns an *Error with
// CodeCancelled that also matches ctx.Err() with errors.Is.
func (r *Registry) Pull(ctx context.Context, ref string, opts PullOptions, onProgress func(Event)) (*PullResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeCancelled, Message: ref + ": pull cancelled", cause: err}
	}
	copts, err := opts.toC()
	if err != nil {
		return nil, err
	}
	defer C.msb_pull_options_free(copts)
	cref := cString(ref)
	defer freeString(cref)

	var sink *progressSink
	var handle C.uintptr_t
	if onProgress != nil {
		sink = newProgressSink(onProgress)
		h := cgo.NewHandle(sink)
		defer h.Delete() // runs after msb_pull_task_free: no callback can come then
		handle = C.uintptr_t(h)
	}

	task, err := r.start(cref, copts, handle)
	if err != nil {
		return nil, err
	}
	defer C.msb_pull_task_free(task)

	var res *C.msb_pull_result
	var waitErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitErr = call(func() C.msb_status { return C.msb_pull_task_wait(task, -1, &res) })
	}()
	var panicked <-chan struct{}
	if sink != nil {
		panicked = sink.panicked
	}
	select {
	case <-done:
	case <-ctx.Done():
		C.msb_pull_task_cancel(task)
		<-done
	case <-panicked:
		C.msb_pull_task_cancel(task)
		<-done
	}
	if sink != nil {
		if recovered := sink.close(); recovered != nil {
			C.msb_pull_result_free(res)
			panic(recovered)
		}
	}
	if waitErr != nil {
		if e, ok := waitErr.(*Error); ok && e.Code == CodeCancelled {
			e.cause = ctx.Err()
		}
		return nil, waitErr
	}
	defer C.msb_pull_result_free(res)
	return resultFromC(res)
}

func (r *Registry) start(ref *C.char, opts *C.msb_pull_options, handle C.uintptr_t) (*C.msb_pull_task, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.ptr == nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: "the registry is closed"}
	}
	var task *C.msb_pull_task
	err := call(func() C.msb_status { return C.msbgo_pull_start(r.ptr, ref, opts, handle, &task) })
	return task, err
}

// stringOut reads one string accessor of a result.
func stringOut(f func(out **C.char) C.msb_status) (string, error) {
	var s *C.char
	err := call(func() C.msb_status { return f(&s) })
	return goString(s), err
}

func resultFromC(r *C.msb_pull_result) (*PullResult, error) {
	out := &PullResult{}
	var err error
	str := func(dst *string, f func(out **C.char) C.msb_status) {
		if err == nil {
			*dst, err = stringOut(f)
		}
	}
	str(&out.Reference, func(s **C.char) C.msb_status { return C.msb_pull_result_reference(r, s) })
	str(&out.Platform, func(s **C.char) C.msb_status { return C.msb_pull_result_platform(r, s) })
	str(&out.ManifestDigest, func(s **C.char) C.msb_status { return C.msb_pull_result_manifest_digest(r, s) })
	str(&out.IndexDigest, func(s **C.char) C.msb_status { return C.msb_pull_result_index_digest(r, s) })
	str(&out.ConfigDigest, func(s **C.char) C.msb_status { return C.msb_pull_result_config_digest(r, s) })
	var configJSON string
	str(&configJSON, func(s **C.char) C.msb_status { return C.msb_pull_result_config_json(r, s) })
	str(&out.FlatImage, func(s **C.char) C.msb_status { return C.msb_pull_result_flat_image_path(r, s) })
	if err != nil {
		return nil, err
	}
	var cached C.bool
	var n C.size_t
	if err := call(func() C.msb_status { return C.msb_pull_result_cached(r, &cached) }); err != nil {
		return nil, err
	}
	out.Cached = bool(cached)
	if err := call(func() C.msb_status { return C.msb_pull_result_layer_count(r, &n) }); err != nil {
		return nil, err
	}
	out.Layers = make([]string, int(n))
	out.LayerDiffIDs = make([]string, int(n))
	out.LayerIndexes = make([]string, int(n))
	out.LayerImages = make([]string, int(n))
	for i := range out.Layers {
		idx := C.size_t(i)
		str(&out.LayerIndexes[i], func(s **C.char) C.msb_status { return C.msb_pull_result_layer_index_path(r, idx, s) })
		str(&out.LayerImages[i], func(s **C.char) C.msb_status { return C.msb_pull_result_layer_image_path(r, idx, s) })
		str(&out.Layers[i], func(s **C.char) C.msb_status { return C.msb_pull_result_layer_path(r, idx, s) })
		str(&out.LayerDiffIDs[i], func(s **C.char) C.msb_status { return C.msb_pull_result_layer_diff_id(r, idx, s) })
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(configJSON), &out.Config); err != nil {
		return nil, &Error{Code: CodeInternal, Message: "cannot decode the image config: " + err.Error()}
	}
	return out, nil
}
