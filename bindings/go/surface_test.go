package msbimage_test

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	msbimage "github.com/zerocore-ai/msbimage/bindings/go"
)

// apiSurface is core/api-surface.json: what the core declares (error kinds, events).
type apiSurface struct {
	ErrorKinds []struct {
		Code   string `json:"code"`
		Status uint32 `json:"status"`
	} `json:"errorKinds"`
	Events []struct {
		Type   string `json:"type"`
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	} `json:"events"`
}

func readSurface(t *testing.T) apiSurface {
	t.Helper()
	raw, err := os.ReadFile("../../core/api-surface.json")
	if err != nil {
		t.Fatal(err)
	}
	var s apiSurface
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The Go package has a Code and an Err sentinel for every error kind of the core, with the
// core's number.
func TestParityErrorKinds(t *testing.T) {
	for _, k := range readSurface(t).ErrorKinds {
		code := msbimage.Code(k.Status)
		if got, want := code.String(), "MSB_STATUS_"+k.Code; got != want {
			t.Errorf("status %d is %s in Go, %s in the core", k.Status, got, want)
		}
		if msbimage.Sentinel(code) == nil {
			t.Errorf("no Err sentinel for %s", k.Code)
		}
	}
}

// Every event type of the core arrives as a Go EventKind with a name, and every field of it
// has a field in Event (or, at least, in Event.JSON).
func TestParityEvents(t *testing.T) {
	names := map[string]bool{}
	for _, k := range msbimage.EventKinds() {
		names[k.String()] = true
	}
	for _, e := range readSurface(t).Events {
		if !names[snake(e.Type)] {
			t.Errorf("no EventKind for the core's %q event", e.Type)
		}
	}
}

// layerDownloadProgress → layer_download_progress.
func snake(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cacheReports is the cacheReports part of core/api-surface.json.
type cacheReports struct {
	CacheReports []struct {
		Name    string  `json:"name"`
		Extends *string `json:"extends"`
		Fields  []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"fields"`
	} `json:"cacheReports"`
	ProblemKinds []string `json:"problemKinds"`
	GCPolicy     struct {
		Defaults map[string]any `json:"defaults"`
	} `json:"gcPolicy"`
}

// jsonFields are the JSON names of t's fields; an embedded struct's come under "extends".
func jsonFields(t reflect.Type) (fields map[string]reflect.Type, extends string) {
	fields = map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			extends = f.Type.Name()
			continue
		}
		fields[strings.Split(f.Tag.Get("json"), ",")[0]] = f.Type
	}
	return fields, extends
}

// Every report type of the core has a Go struct with exactly its fields (same JSON names,
// lists as slices, numbers as unsigned integers), and the same base type.
func TestParityCacheReports(t *testing.T) {
	raw, err := os.ReadFile("../../core/api-surface.json")
	if err != nil {
		t.Fatal(err)
	}
	var s cacheReports
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	goTypes := map[string]reflect.Type{
		"CachedImage":   reflect.TypeOf(msbimage.CachedImage{}),
		"CachedLayer":   reflect.TypeOf(msbimage.CachedLayer{}),
		"ImageUsage":    reflect.TypeOf(msbimage.ImageUsage{}),
		"DiskUsage":     reflect.TypeOf(msbimage.DiskUsage{}),
		"RemovedImage":  reflect.TypeOf(msbimage.RemovedImage{}),
		"GcReport":      reflect.TypeOf(msbimage.GCReport{}),
		"Problem":       reflect.TypeOf(msbimage.Problem{}),
		"LayerCheck":    reflect.TypeOf(msbimage.LayerCheck{}),
		"ImageCheck":    reflect.TypeOf(msbimage.ImageCheck{}),
		"VerifyReport":  reflect.TypeOf(msbimage.VerifyReport{}),
		"RepairFailure": reflect.TypeOf(msbimage.RepairFailure{}),
		"RepairReport":  reflect.TypeOf(msbimage.RepairReport{}),
		"RemoteLayer":   reflect.TypeOf(msbimage.RemoteLayer{}),
		"RemoteImage":   reflect.TypeOf(msbimage.RemoteImage{}),
		"UnpackReport":  reflect.TypeOf(msbimage.UnpackReport{}),
		"SaveReport":    reflect.TypeOf(msbimage.SaveReport{}),
	}
	// Field types that are not reports.
	others := map[string]reflect.Type{"ImageConfig": reflect.TypeOf(msbimage.ImageConfig{})}
	if len(s.CacheReports) != len(goTypes) {
		t.Errorf("the core has %d report types, Go %d", len(s.CacheReports), len(goTypes))
	}
	kinds := map[string]reflect.Kind{"string": reflect.String, "digest": reflect.String, "u64": reflect.Uint64, "bool": reflect.Bool}
	for _, r := range s.CacheReports {
		gt, ok := goTypes[r.Name]
		if !ok {
			t.Errorf("no Go type for the core's %s", r.Name)
			continue
		}
		fields, extends := jsonFields(gt)
		if want := ""; r.Extends != nil {
			want = *r.Extends
			if extends != want {
				t.Errorf("%s: Go embeds %q, the core extends %q", r.Name, extends, want)
			}
		} else if extends != want {
			t.Errorf("%s: Go embeds %q, the core extends nothing", r.Name, extends)
		}
		if len(fields) != len(r.Fields) {
			t.Errorf("%s: Go has %d fields, the core %d", r.Name, len(fields), len(r.Fields))
		}
		for _, f := range r.Fields {
			ft, ok := fields[f.Name]
			if !ok {
				t.Errorf("%s: no Go field for %q", r.Name, f.Name)
				continue
			}
			ty, optional := strings.CutSuffix(f.Type, "?")
			if optional {
				if ft.Kind() != reflect.Pointer {
					t.Errorf("%s.%s: Go %v for %s", r.Name, f.Name, ft, f.Type)
					continue
				}
				ft = ft.Elem()
			}
			ty, list := strings.CutSuffix(ty, "[]")
			if list != (ft.Kind() == reflect.Slice) {
				t.Errorf("%s.%s: Go %v for %s", r.Name, f.Name, ft, f.Type)
				continue
			}
			if list {
				ft = ft.Elem()
			}
			want, other := others[ty]
			if !other {
				want = goTypes[ty]
			}
			if k, scalar := kinds[ty]; scalar && ft.Kind() != k || !scalar && want != ft {
				t.Errorf("%s.%s: Go %v for %s", r.Name, f.Name, ft, f.Type)
			}
		}
	}
	if !reflect.DeepEqual(s.ProblemKinds, msbimage.ProblemKinds) {
		t.Errorf("ProblemKinds: Go %v, the core %v", msbimage.ProblemKinds, s.ProblemKinds)
	}
	// GCPolicy sends exactly the core's GcPolicy keys when everything is set.
	full, err := json.Marshal(msbimage.GCPolicy{DryRun: true, MaxSize: msbimage.Bytes(1), KeepRecent: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	if err := json.Unmarshal(full, &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent) != len(s.GCPolicy.Defaults) {
		t.Errorf("GCPolicy sends %v, the core's policy has %v", sent, s.GCPolicy.Defaults)
	}
	for k := range s.GCPolicy.Defaults {
		if _, ok := sent[k]; !ok {
			t.Errorf("GCPolicy cannot set the core's %q", k)
		}
	}
}

// The pull options PullOptions sends as JSON (those without a C setter of their own) are keys
// of the core's PullOptions, spelt as the core spells them.
func TestParityPullOptionsJSON(t *testing.T) {
	raw, err := os.ReadFile("../../core/api-surface.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		PullOptions struct {
			Defaults map[string]any `json:"defaults"`
		} `json:"pullOptions"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	full, err := msbimage.PullOptionsJSON(msbimage.PullOptions{Outputs: []string{"directory"}, ErofsOpaqueXattr: "user"})
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(full), &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent) == 0 {
		t.Fatal("PullOptions sends no JSON keys")
	}
	for k := range sent {
		if _, ok := s.PullOptions.Defaults[k]; !ok {
			t.Errorf("PullOptions sends %q, which the core's PullOptions does not have", k)
		}
	}
}
