package msbimage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	msbimage "github.com/zerocore-ai/msbimage/bindings/go"
)

// A loopback registry started by msbimage-testkit.
type registry struct {
	Host      string            `json:"host"`
	Manifests map[string]string `json:"manifests"`
	cmd       *exec.Cmd
	stdin     io.WriteCloser
}

var (
	plain *registry // fixtures, anonymous
	basic *registry // fixtures, basic auth user:pass
)

func testkitPath() string {
	if p := os.Getenv("MSB_TESTKIT"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "target", "debug", "msbimage-testkit")
}

func startRegistry(args ...string) (*registry, error) {
	cmd := exec.Command(testkitPath(), append([]string{"serve", "--push-fixtures"}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (build it with cargo build -p msbimage-testkit): %w", testkitPath(), err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("testkit printed no line: %w", err)
	}
	r := &registry{cmd: cmd, stdin: stdin}
	if err := json.Unmarshal([]byte(line), r); err != nil {
		return nil, fmt.Errorf("testkit line %q: %w", line, err)
	}
	return r, nil
}

func (r *registry) stop() {
	_ = r.stdin.Close() // the testkit exits when its stdin closes
	_ = r.cmd.Wait()
}

func TestMain(m *testing.M) {
	var err error
	if plain, err = startRegistry(); err != nil {
		fmt.Fprintln(os.Stderr, "msbimage tests:", err)
		os.Exit(1)
	}
	if basic, err = startRegistry("--basic", "user:pass"); err != nil {
		plain.stop()
		fmt.Fprintln(os.Stderr, "msbimage tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	basic.stop()
	plain.stop()
	os.Exit(code)
}

func newRegistry(t *testing.T, opts ...msbimage.Option) (*msbimage.Registry, string) {
	t.Helper()
	dir := t.TempDir()
	cache, err := msbimage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close() // the registry keeps its own reference
	reg, err := msbimage.NewRegistry(cache, append([]msbimage.Option{msbimage.WithPlatform("linux/amd64")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg, dir
}

func requireCode(t *testing.T, err error, want msbimage.Code) *msbimage.Error {
	t.Helper()
	var e *msbimage.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *msbimage.Error", err, err)
	}
	if e.Code != want {
		t.Fatalf("code %v, want %v (%v)", e.Code, want, err)
	}
	if e.Message == "" {
		t.Fatalf("error %v has no message", err)
	}
	return e
}

func requireConsistentCache(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tmp/ still holds %d entries", len(entries))
		}
		time.Sleep(50 * time.Millisecond)
	}
	layers, _ := os.ReadDir(filepath.Join(dir, "layers", "sha256"))
	for _, l := range layers {
		base := filepath.Join(dir, "layers", "sha256", l.Name())
		if _, err := os.Stat(filepath.Join(base, "meta.json")); err != nil {
			t.Fatalf("half-published layer %s", base)
		}
	}
}

func TestVersion(t *testing.T) {
	if msbimage.Version() != "0.1.0" {
		t.Fatalf("version %q", msbimage.Version())
	}
	if msbimage.ABIVersion() != msbimage.HeaderABIVersion {
		t.Fatalf("library ABI %d, header ABI %d", msbimage.ABIVersion(), msbimage.HeaderABIVersion)
	}
}

func TestPullReportsProgressAndResult(t *testing.T) {
	reg, dir := newRegistry(t)
	ref := plain.Host + "/fixtures/standard:gzip"
	counts := map[msbimage.EventKind]int{}
	extracted := map[int]int{}
	res, err := reg.Pull(context.Background(), ref, msbimage.PullOptions{}, func(e msbimage.Event) {
		counts[e.Kind]++ // calls never overlap
		if e.Kind == msbimage.LayerExtractComplete {
			extracted[e.LayerIndex]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts[msbimage.Resolving] != 1 || counts[msbimage.Resolved] != 1 || counts[msbimage.Complete] != 1 {
		t.Fatalf("milestones %v", counts)
	}
	if counts[msbimage.LayerExtractComplete] != 3 || len(extracted) != 3 || counts[msbimage.LayerIndexComplete] != 3 {
		t.Fatalf("layer completions %v", extracted)
	}
	if len(res.Layers) != 3 || len(res.LayerDiffIDs) != 3 {
		t.Fatalf("layers %v", res.Layers)
	}
	for i, l := range res.Layers {
		if st, err := os.Stat(l); err != nil || !st.IsDir() {
			t.Fatalf("layer %d: %s is not a directory", i, l)
		}
		if !strings.Contains(l, strings.TrimPrefix(res.LayerDiffIDs[i], "sha256:")) {
			t.Fatalf("layer %s does not hold diff id %s", l, res.LayerDiffIDs[i])
		}
	}
	if res.ManifestDigest != plain.Manifests["fixtures/standard:gzip"] {
		t.Fatalf("manifest digest %s, registry says %s", res.ManifestDigest, plain.Manifests["fixtures/standard:gzip"])
	}
	if res.IndexDigest != "" || res.Cached || res.Reference != ref || res.Platform != "linux/amd64" {
		t.Fatalf("result %+v", res)
	}
	if !strings.HasPrefix(res.ConfigDigest, "sha256:") {
		t.Fatalf("config digest %q", res.ConfigDigest)
	}
	c := res.Config
	if c.WorkingDir != "/app" || c.User != "1000:1000" || len(c.Env) != 2 || c.Env[1] != "GREETING=hello world" ||
		strings.Join(c.Cmd, " ") != "--flag value" || strings.Join(c.Entrypoint, " ") != "/usr/bin/tool" ||
		c.OS != "linux" || c.Architecture != "amd64" {
		t.Fatalf("config %+v", c)
	}
	if _, err := os.Stat(filepath.Join(res.Layers[2], "app", "hello.txt")); err != nil {
		t.Fatal(err)
	}

	again, err := reg.Pull(context.Background(), ref, msbimage.PullOptions{Policy: msbimage.Never}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached {
		t.Fatal("second pull did not come from the cache")
	}
	requireConsistentCache(t, dir)
}

func TestPullResolvesTheRequestedPlatformFromAnIndex(t *testing.T) {
	reg, _ := newRegistry(t)
	for _, p := range [][2]string{{"linux/arm/v6", "linux/arm/v6"}, {"linux/arm64", "linux/arm64/v8"}} {
		res, err := reg.Pull(context.Background(), plain.Host+"/fixtures/multi:latest",
			msbimage.PullOptions{Platform: p[0], NoIndex: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Platform != p[1] || res.IndexDigest != plain.Manifests["fixtures/multi:latest"] {
			t.Fatalf("platform %s index %s", res.Platform, res.IndexDigest)
		}
	}
}

func TestErrorsCarryTheirCode(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()

	_, err := reg.Pull(ctx, "Not A/Reference", msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeInvalidReference)
	if !errors.Is(err, msbimage.ErrInvalidReference) || errors.Is(err, msbimage.ErrAuth) {
		t.Fatalf("errors.Is does not follow the code: %v", err)
	}

	_, err = reg.Pull(ctx, plain.Host+"/fixtures/standard:zstd", msbimage.PullOptions{Policy: msbimage.Never}, nil)
	requireCode(t, err, msbimage.CodeNotCached)

	_, err = reg.Pull(ctx, plain.Host+"/fixtures/multi:latest", msbimage.PullOptions{Platform: "linux/s390x"}, nil)
	e := requireCode(t, err, msbimage.CodePlatformNotFound)
	if !strings.Contains(e.Message, "s390x") {
		t.Fatalf("message %q", e.Message)
	}

	_, err = reg.Pull(ctx, plain.Host+"/fixtures/standard:no-such-tag", msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeRegistry)

	_, err = reg.Pull(ctx, plain.Host+"/fixtures/standard:gzip", msbimage.PullOptions{Platform: "linux"}, nil)
	requireCode(t, err, msbimage.CodeInvalidArgument)

	_, err = reg.Pull(ctx, plain.Host+"/fixtures/standard:gzip", msbimage.PullOptions{Policy: 9}, nil)
	requireCode(t, err, msbimage.CodeInvalidArgument)

	_, err = msbimage.Open("/dev/null/cache")
	requireCode(t, err, msbimage.CodeIO)

	cache, err := msbimage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	_, err = msbimage.NewRegistry(cache, msbimage.WithCAFile("/nonexistent/ca.pem"))
	requireCode(t, err, msbimage.CodeInvalidArgument)
	_, err = msbimage.NewRegistry(cache, msbimage.WithConcurrency(0))
	requireCode(t, err, msbimage.CodeInvalidArgument)
}

func TestAuth(t *testing.T) {
	ref := basic.Host + "/fixtures/standard:gzip"
	anon, _ := newRegistry(t)
	_, err := anon.Pull(context.Background(), ref, msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeAuth)

	wrong, _ := newRegistry(t, msbimage.WithBasicAuth("user", "wrong"))
	_, err = wrong.Pull(context.Background(), ref, msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeAuth)

	right, _ := newRegistry(t, msbimage.WithBasicAuth("user", "wrong"),
		msbimage.WithBasicAuthFor(basic.Host, "user", "pass"),
		msbimage.WithInsecureRegistry(basic.Host), msbimage.WithConcurrency(2),
		msbimage.WithDurable(false), msbimage.WithMaxRetries(1))
	if _, err := right.Pull(context.Background(), ref, msbimage.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

// Every core setting reaches Go as data: with cacheMaxSize 0 each pull that downloads a layer
// evicts the images before it (never itself), so of two images only the last one's record
// stays; without it both do. An unknown key is refused by name.
func TestSettingsAsJSON(t *testing.T) {
	cache, err := msbimage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	_, err = msbimage.NewRegistry(cache, msbimage.WithConfigJSON(`{"cacheMaxSze": 0}`))
	if e := requireCode(t, err, msbimage.CodeInvalidArgument); !strings.Contains(e.Message, "cacheMaxSze") {
		t.Fatalf("the unknown key is not named: %v", e)
	}
	for _, capped := range []bool{true, false} {
		opts := []msbimage.Option{msbimage.WithDurable(false)}
		if capped {
			opts = append(opts, msbimage.WithConfigJSON(`{"cacheMaxSize": 0}`))
		}
		reg, dir := newRegistry(t, opts...)
		for _, ref := range []string{"fixtures/standard:gzip", "fixtures/multi:latest"} {
			if _, err := reg.Pull(context.Background(), plain.Host+"/"+ref, msbimage.PullOptions{}, nil); err != nil {
				t.Fatal(err)
			}
		}
		records, err := os.ReadDir(filepath.Join(dir, "images"))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 2}[capped]; len(records) != want {
			t.Fatalf("capped %v: %d image records, want %d", capped, len(records), want)
		}
	}
}

// A listener that never accepts: a pull from it hangs until cancelled.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func TestContextCancellationCancelsThePull(t *testing.T) {
	reg, _ := newRegistry(t)
	ref := blackHole(t) + "/never/answers:latest"

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := reg.Pull(ctx, ref, msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeCancelled)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, msbimage.ErrCancelled) {
		t.Fatalf("error %v does not match its context", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("cancel took %v", time.Since(start))
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = reg.Pull(ctx, ref, msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v does not match context.Canceled", err)
	}
}

func TestCancelFromTheProgressCallbackKeepsTheCacheConsistent(t *testing.T) {
	reg, dir := newRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var events atomic.Int32
	_, err := reg.Pull(ctx, plain.Host+"/fixtures/standard:gzip", msbimage.PullOptions{}, func(e msbimage.Event) {
		events.Add(1)
		if e.Kind == msbimage.LayerDownloadProgress {
			cancel()
		}
	})
	// The loopback registry is fast: the pull may finish before the cancel lands.
	if err != nil {
		requireCode(t, err, msbimage.CodeCancelled)
	}
	after := events.Load()
	time.Sleep(100 * time.Millisecond)
	if events.Load() != after {
		t.Fatal("a progress callback ran after Pull returned")
	}
	requireConsistentCache(t, dir)
	if _, err := reg.Pull(context.Background(), plain.Host+"/fixtures/standard:gzip", msbimage.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	requireConsistentCache(t, dir)
}

func TestAPanickingCallbackPanicsInPull(t *testing.T) {
	reg, dir := newRegistry(t)
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want boom", r)
		}
		requireConsistentCache(t, dir)
	}()
	_, _ = reg.Pull(context.Background(), plain.Host+"/fixtures/standard:none", msbimage.PullOptions{}, func(e msbimage.Event) {
		panic("boom")
	})
	t.Fatal("Pull returned")
}

func TestConcurrentPullsIntoOneCache(t *testing.T) {
	reg, dir := newRegistry(t)
	refs := []string{"fixtures/standard:gzip", "fixtures/standard:zstd", "fixtures/standard:none", "fixtures/multi:latest"}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var n int
			res, err := reg.Pull(context.Background(), plain.Host+"/"+refs[i%len(refs)], msbimage.PullOptions{}, func(msbimage.Event) { n++ })
			if err == nil && (len(res.Layers) == 0 || n == 0) {
				err = fmt.Errorf("%d layers, %d events", len(res.Layers), n)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	requireConsistentCache(t, dir)
}

func TestClosedHandles(t *testing.T) {
	cache, err := msbimage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := msbimage.NewRegistry(cache)
	if err != nil {
		t.Fatal(err)
	}
	cache.Close()
	cache.Close() // twice is fine
	_, err = msbimage.NewRegistry(cache)
	requireCode(t, err, msbimage.CodeInvalidArgument)
	reg.Close()
	_, err = reg.Pull(context.Background(), plain.Host+"/fixtures/standard:gzip", msbimage.PullOptions{}, nil)
	requireCode(t, err, msbimage.CodeInvalidArgument)
}
