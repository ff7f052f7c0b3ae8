package msbimage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	msbimage "github.com/zerocore-ai/msbimage/bindings/go"
)

// Offline images through Go: Registry.Save writes a docker archive or an OCI layout, and Pull
// reads them (and a layout skopeo wrote) given as source strings, against the loopback
// registry.

func TestSaveWritesAnArchiveThatPullsBack(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	ref := plain.Host + "/fixtures/standard:gzip"
	remote, err := reg.Pull(ctx, ref, msbimage.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "standard.tar")
	report, err := reg.Save(ref, "docker-archive:"+archive, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	want := msbimage.SaveReport{
		Reference:      ref,
		Target:         "docker-archive:" + archive,
		ManifestDigest: remote.ManifestDigest,
		ConfigDigest:   remote.ConfigDigest,
		BlobsWritten:   uint64(len(remote.Layers) + 1),
		BytesWritten:   uint64(st.Size()),
	}
	if *report != want {
		t.Fatalf("save: %+v, want %+v", *report, want)
	}
	// Into another cache: nothing is answered from the first one.
	other, _ := newRegistry(t)
	back, err := other.Pull(ctx, "docker-archive:"+archive, msbimage.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if back.Cached || back.Reference != ref || back.ConfigDigest != remote.ConfigDigest ||
		!slices.Equal(back.LayerDiffIDs, remote.LayerDiffIDs) {
		t.Fatalf("pulled back: %+v", back)
	}
}

func TestASkopeoLayoutPullsAndSavesForAPlatform(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	dir := t.TempDir()
	ref := plain.Host + "/fixtures/standard:gzip"
	out, err := exec.Command("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
		"docker://"+ref, "oci:"+filepath.Join(dir, "s")+":t").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo: %v: %s", err, out)
	}
	local, err := reg.Pull(ctx, "oci-layout:"+filepath.Join(dir, "s")+":t", msbimage.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := reg.Pull(ctx, ref, msbimage.PullOptions{Policy: msbimage.Always}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if local.Reference != "localhost/s:t" || local.ManifestDigest != remote.ManifestDigest ||
		!slices.Equal(local.LayerDiffIDs, remote.LayerDiffIDs) {
		t.Fatalf("layout pull: %+v, registry: %+v", local, remote)
	}

	multi := plain.Host + "/fixtures/multi:latest"
	arm, err := reg.Inspect(multi, "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := reg.Save(multi, "oci-layout:"+filepath.Join(dir, "saved")+":v1", "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	if saved.ManifestDigest != arm.ManifestDigest || !strings.HasPrefix(saved.Target, "oci-layout:") {
		t.Fatalf("save for linux/arm64: %+v, inspect %s", saved, arm.ManifestDigest)
	}
	_, err = reg.Save(multi, "oci-layout:"+filepath.Join(dir, "none")+":v1", "linux/s390x")
	requireCode(t, err, msbimage.CodePlatformNotFound)
}

func TestBadSourcesAndTargets(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	dir := t.TempDir()
	ref := plain.Host + "/fixtures/standard:gzip"
	_, err := reg.Pull(ctx, "Not A Ref!", msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeInvalidReference)
	_, err = reg.Pull(ctx, "oci-layout:", msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = reg.Pull(ctx, "docker-archive:"+filepath.Join(dir, "missing.tar"), msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeNotFound)
	_, err = reg.Save(ref, "Not A Target!", "")
	requireCode(t, err, msbimage.CodeInvalidReference)
	_, err = reg.Save(ref, ref+"-copy", "")
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = reg.Save(ref, "oci:"+dir, "linux")
	requireCode(t, err, msbimage.CodeInvalidArgument)
}
