package msbimage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	msbimage "github.com/zerocore-ai/msbimage/bindings/go"
)

// pullStandard pulls fixtures/standard:gzip into a new cache.
func pullStandard(t *testing.T, opts msbimage.PullOptions) *msbimage.PullResult {
	t.Helper()
	reg, _ := newRegistry(t)
	res, err := reg.Pull(context.Background(), plain.Host+"/fixtures/standard:gzip", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func openStack(t *testing.T, res *msbimage.PullResult) *msbimage.LayerStack {
	t.Helper()
	stack, err := res.LayerStack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stack.Close() })
	return stack
}

func mustStat(t *testing.T, stack *msbimage.LayerStack, path string) msbimage.Stat {
	t.Helper()
	st, err := stack.Stat(path)
	if err != nil {
		t.Fatalf("Stat(%q): %v", path, err)
	}
	return st
}

func names(entries []msbimage.DirEntry) string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name
	}
	return strings.Join(out, ",")
}

func TestLayerStackMergedView(t *testing.T) {
	res := pullStandard(t, msbimage.PullOptions{})
	stack := openStack(t, res)

	if n, err := stack.LayerCount(); err != nil || n != 3 {
		t.Fatalf("LayerCount = %d, %v", n, err)
	}

	// An overwritten file comes from layer 1; slashes do not matter.
	st := mustStat(t, stack, "etc/overwritten")
	if st.Size != 13 || st.Layer != 1 || st.Kind != msbimage.KindFile || st.Mode != 0o100644 {
		t.Fatalf("etc/overwritten: %+v", st)
	}
	if abs := mustStat(t, stack, "/etc/overwritten/"); abs != st {
		t.Fatalf("/etc/overwritten/: %+v, want %+v", abs, st)
	}

	// Whiteouts and opaque directories hide.
	for _, p := range []string{"etc/to-delete", "/opaque/old-a", "opaque/old-b", "no/such/file"} {
		_, err := stack.Stat(p)
		requireCode(t, err, msbimage.CodeNotFound)
		if !errors.Is(err, msbimage.ErrNotFound) {
			t.Fatalf("%s: %v is not ErrNotFound", p, err)
		}
	}
	entries, err := stack.ReadDir("opaque")
	if err != nil || names(entries) != "new" {
		t.Fatalf("ReadDir(opaque) = %v, %v", entries, err)
	}
	if e := entries[0].Stat; e.Size != 13 || e.Layer != 1 || e != mustStat(t, stack, "opaque/new") {
		t.Fatalf("opaque/new: %+v", e)
	}
	if mustStat(t, stack, "opaque").Flags&msbimage.FlagOpaque == 0 {
		t.Fatal("opaque is not flagged opaque")
	}
	if entries, err := stack.ReadDir("/etc"); err != nil || names(entries) != "abs-link,overwritten" {
		t.Fatalf("ReadDir(/etc) = %v, %v", entries, err)
	}
	root, err := stack.ReadDir("/")
	if err != nil || names(root) != "app,data,dev,etc,home,long,opaque,root,tmp,usr" {
		t.Fatalf("ReadDir(/) = %v, %v", names(root), err)
	}

	// Modes, symlinks, devices.
	suid := mustStat(t, stack, "usr/bin/suid")
	if suid.Mode != 0o104755 || suid.FileMode() != fs.ModeSetuid|0o755 {
		t.Fatalf("usr/bin/suid: mode %o (%v)", suid.Mode, suid.FileMode())
	}
	link := mustStat(t, stack, "etc/abs-link")
	if link.Kind != msbimage.KindSymlink || link.FileMode()&fs.ModeSymlink == 0 || link.Size != 13 {
		t.Fatalf("etc/abs-link: %+v", link)
	}
	if target, err := stack.Readlink("/etc/abs-link"); err != nil || target != "/usr/bin/tool" {
		t.Fatalf("Readlink(etc/abs-link) = %q, %v", target, err)
	}
	if target, err := stack.Readlink("usr/bin/rel-link"); err != nil || target != "tool" {
		t.Fatalf("Readlink(usr/bin/rel-link) = %q, %v", target, err)
	}
	_, err = stack.Readlink("usr/bin/tool")
	requireCode(t, err, msbimage.CodeInvalidArgument)
	null := mustStat(t, stack, "dev/null")
	if null.Rdev != (1<<8)|3 || null.Kind != msbimage.KindCharDevice || null.Mode&0o170000 != 0o020000 {
		t.Fatalf("dev/null: %+v", null)
	}
	if fifo := mustStat(t, stack, "dev/fifo"); fifo.Kind != msbimage.KindFifo || fifo.Kind.String() != "fifo" {
		t.Fatalf("dev/fifo: %+v", fifo)
	}

	// Hardlinks share an inode.
	tool, hard := mustStat(t, stack, "usr/bin/tool"), mustStat(t, stack, "usr/bin/tool-hardlink")
	if tool.Inode == 0 || tool.Inode != hard.Inode || tool.Nlink != 2 || hard.Nlink != 2 ||
		tool.Flags&msbimage.FlagHardlink == 0 {
		t.Fatalf("usr/bin/tool %+v, usr/bin/tool-hardlink %+v", tool, hard)
	}

	// Extended attributes.
	if v, err := stack.Xattr("app/xattr-file", "user.test"); err != nil || string(v) != "hello" {
		t.Fatalf("Xattr = %q, %v", v, err)
	}
	_, err = stack.Xattr("app/xattr-file", "user.nope")
	requireCode(t, err, msbimage.CodeNotFound)
	if list, err := stack.ListXattrs("/app/xattr-file"); err != nil || strings.Join(list, ",") != "user.test" {
		t.Fatalf("ListXattrs = %v, %v", list, err)
	}
	if list, err := stack.ListXattrs("app/hello.txt"); err != nil || len(list) != 0 {
		t.Fatalf("ListXattrs(app/hello.txt) = %v, %v", list, err)
	}
	if mustStat(t, stack, "app/xattr-file").Flags&msbimage.FlagHasXattrs == 0 {
		t.Fatal("app/xattr-file is not flagged as having xattrs")
	}

	// Host paths.
	hello, err := stack.HostPath("/app/hello.txt")
	if err != nil || hello != filepath.Join(res.Layers[2], "app", "hello.txt") {
		t.Fatalf("HostPath(app/hello.txt) = %q, %v", hello, err)
	}
	if data, err := os.ReadFile(hello); err != nil || string(data) != "hello from layer 3\n" {
		t.Fatalf("%s: %q, %v", hello, data, err)
	}
	over, err := stack.HostPath("etc/overwritten")
	if data, _ := os.ReadFile(over); err != nil || string(data) != "from layer 2\n" {
		t.Fatalf("%s: %q, %v", over, data, err)
	}
	_, err = stack.HostPath("etc/to-delete")
	requireCode(t, err, msbimage.CodeNotFound)
}

func TestLayerStackOpenedFromIndexPaths(t *testing.T) {
	res := pullStandard(t, msbimage.PullOptions{})
	full := openStack(t, res)
	bottom, err := msbimage.OpenLayerStack(res.LayerIndexes[0])
	if err != nil {
		t.Fatal(err)
	}
	defer bottom.Close()
	if st := mustStat(t, bottom, "etc/to-delete"); st.Layer != 0 {
		t.Fatalf("etc/to-delete in the bottom layer: %+v", st)
	}
	if a, b := mustStat(t, full, "usr/bin/tool"), mustStat(t, bottom, "usr/bin/tool"); a != b {
		t.Fatalf("usr/bin/tool: %+v vs %+v", a, b)
	}
	empty, err := msbimage.OpenLayerStack()
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	_, err = empty.Stat("/")
	requireCode(t, err, msbimage.CodeNotFound)
}

func TestLayerStackErrors(t *testing.T) {
	noIndex := pullStandard(t, msbimage.PullOptions{NoIndex: true})
	_, err := noIndex.LayerStack()
	e := requireCode(t, err, msbimage.CodeIO)
	if !strings.Contains(e.Message, "build_index") {
		t.Fatalf("message %q", e.Message)
	}
	_, err = msbimage.OpenLayerStack(filepath.Join(t.TempDir(), "missing", "index"))
	requireCode(t, err, msbimage.CodeIO)
	garbage := filepath.Join(t.TempDir(), "index")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not an index ", 64)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = msbimage.OpenLayerStack(garbage)
	requireCode(t, err, msbimage.CodeIO)
	_, err = msbimage.OpenLayerStack("a\x00b")
	requireCode(t, err, msbimage.CodeInvalidArgument)

	stack := openStack(t, pullStandard(t, msbimage.PullOptions{}))
	_, err = stack.Stat("etc\x00passwd")
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = stack.Xattr("app/xattr-file", "user\x00test")
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = stack.ReadDir("etc/overwritten")
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = stack.ReadDir("nowhere")
	requireCode(t, err, msbimage.CodeNotFound)
	// Paths are bytes: not UTF-8 is simply not there.
	_, err = stack.Stat("etc/\xff\xfe")
	requireCode(t, err, msbimage.CodeNotFound)

	stack.Close()
	stack.Close() // twice is fine
	_, err = stack.Stat("etc")
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = stack.HostPath("etc")
	requireCode(t, err, msbimage.CodeInvalidArgument)
}

func TestLayerStackConcurrentReaders(t *testing.T) {
	stack := openStack(t, pullStandard(t, msbimage.PullOptions{}))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				st, err := stack.Stat("usr/bin/tool")
				if err == nil && st.Nlink != 2 {
					err = errors.New("usr/bin/tool: nlink is not 2")
				}
				if err == nil {
					_, err = stack.Stat("etc/to-delete")
					if errors.Is(err, msbimage.ErrNotFound) {
						err = nil
					} else if err == nil {
						err = errors.New("etc/to-delete is visible")
					}
				}
				if err == nil {
					_, err = stack.ReadDir("etc")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLayerStackCloseWhileReading(t *testing.T) {
	stack := openStack(t, pullStandard(t, msbimage.PullOptions{}))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				_, err := stack.HostPath("app/hello.txt")
				var e *msbimage.Error
				if err != nil && (!errors.As(err, &e) || e.Code != msbimage.CodeInvalidArgument) {
					errs <- err
					return
				}
			}
		}()
	}
	stack.Close() // calls after this fail with CodeInvalidArgument, never crash
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Options without a setter of their own go through the core's PullOptions JSON: EROFS layer
// images and the flat image are written, and a misspelt output is refused by the core.
func TestPullWritesErofsLayerImages(t *testing.T) {
	res := pullStandard(t, msbimage.PullOptions{Outputs: []string{"directory", "erofs-layers", "erofs-flat"}})
	if len(res.LayerImages) != len(res.Layers) {
		t.Fatalf("%d images for %d layers", len(res.LayerImages), len(res.Layers))
	}
	if !strings.HasSuffix(res.FlatImage, strings.TrimPrefix(res.ManifestDigest, "sha256:")+".erofs") {
		t.Fatalf("flat image %q for manifest %s", res.FlatImage, res.ManifestDigest)
	}
	if plain := pullStandard(t, msbimage.PullOptions{}); plain.FlatImage != "" {
		t.Fatalf("a flat image not asked for: %q", plain.FlatImage)
	}
	for _, image := range append(res.LayerImages, res.FlatImage) {
		head := make([]byte, 1028)
		f, err := os.Open(image)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Read(head)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The EROFS superblock's magic at byte 1024.
		if magic := uint32(head[1024]) | uint32(head[1025])<<8 | uint32(head[1026])<<16 | uint32(head[1027])<<24; magic != 0xE0F5E1E2 {
			t.Fatalf("%s: magic %#x", image, magic)
		}
	}
	reg, _ := newRegistry(t)
	_, err := reg.Pull(context.Background(), plain.Host+"/fixtures/standard:gzip",
		msbimage.PullOptions{Outputs: []string{"directory", "erofs"}}, nil)
	var e *msbimage.Error
	if !errors.As(err, &e) || e.Code != msbimage.CodeInvalidArgument || !strings.Contains(e.Message, "erofs") {
		t.Fatalf("a misspelt output: %v", err)
	}
}
