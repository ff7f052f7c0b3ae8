package msbimage_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

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
