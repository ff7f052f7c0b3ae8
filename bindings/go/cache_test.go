package msbimage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	msbimage "github.com/zerocore-ai/msbimage/bindings/go"
)

// pulledCache is a new cache with fixtures/standard:gzip pulled into it, its registry and
// the image's reference.
func pulledCache(t *testing.T) (*msbimage.Cache, *msbimage.Registry, string, *msbimage.PullResult) {
	t.Helper()
	cache, err := msbimage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	reg, err := msbimage.NewRegistry(cache, msbimage.WithPlatform("linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ref := plain.Host + "/fixtures/standard:gzip"
	res, err := reg.Pull(context.Background(), ref, msbimage.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cache, reg, ref, res
}

func TestCacheListsImagesAndLayersWithConsistentUsage(t *testing.T) {
	cache, _, ref, res := pulledCache(t)
	images, err := cache.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || !slices.Equal(images[0].Names, []string{ref}) {
		t.Fatalf("images %+v, want one named %s", images, ref)
	}
	img := images[0]
	if img.Platform != "linux/amd64" || !img.Complete || img.ManifestDigest != res.ManifestDigest ||
		!slices.Equal(img.Layers, res.LayerDiffIDs) || img.LastUsed == 0 {
		t.Fatalf("image %+v does not match the pull %+v", img, res)
	}
	layers, err := cache.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 {
		t.Fatalf("%d layers", len(layers))
	}
	var sum uint64
	for _, l := range layers {
		if !slices.Equal(l.Images, []string{ref}) || l.Bytes == 0 || !slices.Contains(res.LayerDiffIDs, l.DiffID) {
			t.Errorf("layer %+v", l)
		}
		sum += l.Bytes
	}
	du, err := cache.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if len(du.Images) != 1 || du.Images[0].CachedImage.ManifestDigest != img.ManifestDigest {
		t.Fatalf("usage %+v", du)
	}
	u := du.Images[0]
	if u.ExclusiveBytes+u.SharedBytes != du.LayerBytes || u.SharedBytes != 0 || du.LayerBytes != sum || du.UnreferencedBytes != 0 {
		t.Fatalf("exclusive %d + shared %d, layers %d (sum %d), unreferenced %d",
			u.ExclusiveBytes, u.SharedBytes, du.LayerBytes, sum, du.UnreferencedBytes)
	}
}

func TestRemoveImageThenANeverPullFails(t *testing.T) {
	cache, reg, ref, _ := pulledCache(t)
	report, err := cache.RemoveImage(ref, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	if len(report.RemovedImages) != 1 || !slices.Equal(report.RemovedImages[0].Names, []string{ref}) ||
		len(report.RemovedLayers) != 3 || len(report.InUseLayers) != 0 || report.FreedBytes == 0 || report.DryRun {
		t.Fatalf("report %+v", report)
	}
	if images, err := cache.Images(); err != nil || len(images) != 0 {
		t.Fatalf("images after rm: %+v, %v", images, err)
	}
	_, err = reg.Pull(context.Background(), ref, msbimage.PullOptions{Policy: msbimage.Never}, nil)
	requireCode(t, err, msbimage.CodeNotCached)
	_, err = cache.RemoveImage(ref, "")
	requireCode(t, err, msbimage.CodeNotFound)
	_, err = cache.RemoveImage("Not A Reference", "")
	requireCode(t, err, msbimage.CodeInvalidReference)
	_, err = cache.RemoveImage(ref, "linux")
	requireCode(t, err, msbimage.CodeInvalidArgument)
}

func TestGCDryRunRemovesNothingThenEvicts(t *testing.T) {
	cache, _, ref, _ := pulledCache(t)
	report, err := cache.GC(msbimage.GCPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.RemovedLayers) != 0 || len(report.RemovedImages) != 0 {
		t.Fatalf("a plain gc removed %+v", report)
	}
	dry, err := cache.GC(msbimage.GCPolicy{DryRun: true, MaxSize: msbimage.Bytes(0)})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.RemovedImages) != 1 || len(dry.RemovedLayers) != 3 || dry.FreedBytes == 0 {
		t.Fatalf("dry run %+v", dry)
	}
	if images, _ := cache.Images(); len(images) != 1 {
		t.Fatalf("the dry run removed the image: %+v", images)
	}
	kept, err := cache.GC(msbimage.GCPolicy{MaxSize: msbimage.Bytes(0), KeepRecent: time.Hour})
	if err != nil || len(kept.RemovedImages) != 0 {
		t.Fatalf("keep recent: %+v, %v", kept, err)
	}
	real, err := cache.GC(msbimage.GCPolicy{MaxSize: msbimage.Bytes(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(real.RemovedImages) != 1 || real.RemovedImages[0].Names[0] != ref || !slices.Equal(sorted(real.RemovedLayers), sorted(dry.RemovedLayers)) {
		t.Fatalf("gc %+v after dry run %+v", real, dry)
	}
	if layers, _ := cache.Layers(); len(layers) != 0 {
		t.Fatalf("layers left: %+v", layers)
	}
}

func TestAHeldLayerSurvivesRemoveAndGCUntilClosed(t *testing.T) {
	cache, _, ref, res := pulledCache(t)
	diffID := res.LayerDiffIDs[1]
	tree := filepath.Dir(res.Layers[1])
	lease, err := cache.HoldLayer(diffID)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	if lease.DiffID() != diffID {
		t.Fatalf("lease of %s", lease.DiffID())
	}
	rm, err := cache.RemoveImage(ref, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rm.InUseLayers, []string{diffID}) || len(rm.RemovedLayers) != 2 {
		t.Fatalf("rm %+v", rm)
	}
	gc, err := cache.GC(msbimage.GCPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gc.InUseLayers, []string{diffID}) || len(gc.RemovedLayers) != 0 {
		t.Fatalf("gc while held %+v", gc)
	}
	if _, err := os.Stat(tree); err != nil {
		t.Fatalf("the held layer's tree is gone: %v", err)
	}
	lease.Close()
	lease.Close()
	gc, err = cache.GC(msbimage.GCPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gc.RemovedLayers, []string{diffID}) || len(gc.InUseLayers) != 0 {
		t.Fatalf("gc after release %+v", gc)
	}
	if _, err := os.Stat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the released layer's tree is still there: %v", err)
	}
	_, err = cache.HoldLayer("sha256:" + strings.Repeat("x", 64))
	requireCode(t, err, msbimage.CodeInvalidArgument)
	cache.Close()
	_, err = cache.Images()
	requireCode(t, err, msbimage.CodeInvalidArgument)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
