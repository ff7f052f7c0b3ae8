package msbimage_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	msbimage "github.com/zerocore-ai/msbimage/bindings/go"
)

// damageHello flips the first byte of app/hello.txt in the topmost layer tree that holds it
// (same size: a content change) and returns that layer's diff_id.
func damageHello(t *testing.T, dir string, diffIDs []string) string {
	t.Helper()
	for i := len(diffIDs) - 1; i >= 0; i-- {
		p := filepath.Join(dir, "layers", "sha256", strings.TrimPrefix(diffIDs[i], "sha256:"), "fs", "app", "hello.txt")
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			t.Fatalf("read %s: %v", p, err)
		}
		b[0] ^= 0x20
		if err := os.Chmod(p, st.Mode()|0o200); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, st.Mode()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, st.Mode()); err != nil {
			t.Fatal(err)
		}
		return diffIDs[i]
	}
	t.Fatal("no layer holds app/hello.txt")
	return ""
}

func TestVerifyFindsDamageAndRepairFixesIt(t *testing.T) {
	dir := t.TempDir()
	cache, err := msbimage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	reg, err := msbimage.NewRegistry(cache, msbimage.WithPlatform("linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ref := plain.Host + "/fixtures/standard:gzip"
	res, err := reg.Pull(context.Background(), ref, msbimage.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	report, err := cache.Verify(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !report.Clean() || len(report.Images) != 1 || len(report.Layers) != len(res.LayerDiffIDs) {
		t.Fatalf("after a pull: %+v", report)
	}
	damaged := damageHello(t, dir, res.LayerDiffIDs)
	report, err = cache.Verify()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range report.Layers {
		for _, p := range l.Problems {
			if l.DiffID == damaged && p.Kind == "contentChanged" && p.Path != nil && *p.Path == "app/hello.txt" {
				found = true
			}
		}
	}
	if !found || report.Clean() {
		t.Fatalf("no contentChanged at app/hello.txt in %+v", report)
	}
	fixed, err := reg.Repair(report)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fixed.RebuiltLayers, damaged) || len(fixed.Failed) != 0 {
		t.Fatalf("repair: %+v", fixed)
	}
	report, err = cache.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !report.Clean() {
		t.Fatalf("after repair: %+v", report)
	}
	_, err = cache.Verify("example.com/nothing:here")
	requireCode(t, err, msbimage.CodeNotFound)
}

func TestInspectListsThePlatformsOfAnIndex(t *testing.T) {
	reg, _ := newRegistry(t)
	img, err := reg.Inspect(plain.Host+"/fixtures/multi:latest", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.Platforms, "linux/amd64") || len(img.Platforms) < 2 || img.IndexDigest == nil {
		t.Fatalf("inspect: %+v", img)
	}
	img, err = reg.Inspect(plain.Host+"/fixtures/multi:latest", "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.Platform, "linux/arm64") || len(img.Layers) == 0 || img.DownloadSize == 0 {
		t.Fatalf("inspect arm64: %+v", img)
	}
	_, err = reg.Inspect("Not/A:Ref:!", "")
	requireCode(t, err, msbimage.CodeInvalidReference)
}

func TestAReadOnlyCacheDoesAWarmNeverPull(t *testing.T) {
	dir := t.TempDir()
	cache, err := msbimage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	writer, err := msbimage.NewRegistry(cache, msbimage.WithPlatform("linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	ref := plain.Host + "/fixtures/standard:gzip"
	if _, err := writer.Pull(context.Background(), ref, msbimage.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	ro, err := msbimage.OpenWithOptions(dir, msbimage.CacheOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	reader, err := msbimage.NewRegistry(ro, msbimage.WithPlatform("linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	res, err := reader.Pull(context.Background(), ref, msbimage.PullOptions{Policy: msbimage.Never}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cached {
		t.Fatalf("a warm pull that was not cached: %+v", res)
	}
	_, err = ro.GC(msbimage.GCPolicy{})
	requireCode(t, err, msbimage.CodeIO)
}
