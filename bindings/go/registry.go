package msbimage

// #include <stdlib.h>
// #include "msbimage.h"
import "C"

import (
	"runtime"
	"sync"
)

// Option configures a Registry.
type Option func(*registryConfig)

type registryConfig struct {
	platform string
	steps    []func(b *C.msb_registry_builder) error
}

func (c *registryConfig) step(f func(b *C.msb_registry_builder) error) {
	c.steps = append(c.steps, f)
}

// withStrings runs f with C copies of ss.
func withStrings(ss []string, f func(cs []*C.char) C.msb_status) error {
	cs := make([]*C.char, len(ss))
	for i, s := range ss {
		cs[i] = cString(s)
	}
	defer func() {
		for _, c := range cs {
			freeString(c)
		}
	}()
	return call(func() C.msb_status { return f(cs) })
}

// WithPlatform pulls images for platform ("os/arch[/variant]", e.g. "linux/arm64") instead
// of the host's Linux platform.
func WithPlatform(platform string) Option {
	return func(c *registryConfig) { c.platform = platform }
}

// WithBasicAuth sends username/password (or an access token) to every registry without
// host-specific credentials.
func WithBasicAuth(username, password string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{username, password}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_set_basic_auth(b, s[0], s[1])
			})
		})
	}
}

// WithBasicAuthFor sends username/password to one registry ("ghcr.io", "localhost:5000").
func WithBasicAuthFor(registry, username, password string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{registry, username, password}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_set_basic_auth_for(b, s[0], s[1], s[2])
			})
		})
	}
}

// WithDockerConfig reads credentials from a Docker config.json for registries without
// explicit credentials.
func WithDockerConfig(path string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{path}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_set_docker_config(b, s[0])
			})
		})
	}
}

// WithInsecureRegistry allows plain HTTP and unverified TLS for host[:port].
func WithInsecureRegistry(host string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{host}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_add_insecure_host(b, s[0])
			})
		})
	}
}

// WithCAFile trusts the CA certificates of a PEM file besides the system's.
func WithCAFile(path string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{path}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_set_ca_file(b, s[0])
			})
		})
	}
}

// WithMirror tries mirror ("host[:port]" or "http(s)://host[:port]") before registry
// ("docker.io"). Mirrors are tried in the order given.
func WithMirror(registry, mirror string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{registry, mirror}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_add_mirror(b, s[0], s[1])
			})
		})
	}
}

// WithConcurrency sets how many layers download and extract at once (default 4).
func WithConcurrency(layers int) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			if layers < 1 || layers > 1<<16 {
				return &Error{Code: CodeInvalidArgument, Message: "concurrency must be between 1 and 65536"}
			}
			return call(func() C.msb_status {
				return C.msb_registry_builder_set_concurrency(b, C.uint32_t(layers))
			})
		})
	}
}

// WithDurable sets whether published layers are flushed to disk first (default true).
func WithDurable(durable bool) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return call(func() C.msb_status {
				return C.msb_registry_builder_set_durable(b, C.bool(durable))
			})
		})
	}
}

// WithMaxRetries sets the retries of a request after a transient failure (default 4).
func WithMaxRetries(retries int) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			if retries < 0 || retries > 1<<16 {
				return &Error{Code: CodeInvalidArgument, Message: "retries must be between 0 and 65536"}
			}
			return call(func() C.msb_status {
				return C.msb_registry_builder_set_max_retries(b, C.uint32_t(retries))
			})
		})
	}
}

// WithConfigJSON applies registry settings given as a JSON object with the core's
// RegistryConfig keys (camelCase, listed in core/api-surface.json), e.g.
// `{"cacheMaxSize": 21474836480, "lockTimeout": 30}`: every setting, including those without
// an option of their own. Keys it does not name keep their value; an unknown key or a value
// of the wrong type is a CodeInvalidArgument error naming it.
func WithConfigJSON(settings string) Option {
	return func(c *registryConfig) {
		c.step(func(b *C.msb_registry_builder) error {
			return withStrings([]string{settings}, func(s []*C.char) C.msb_status {
				return C.msb_registry_builder_set_config_json(b, s[0])
			})
		})
	}
}

// Registry pulls images into a cache. Safe for concurrent use: any number of goroutines may
// pull through one Registry at once.
type Registry struct {
	mu  sync.RWMutex
	ptr *C.msb_registry
}

// parsePlatform returns the platform handle for s ("" is the host's Linux platform).
func parsePlatform(s string) (*C.msb_platform, error) {
	var p *C.msb_platform
	if s == "" {
		return p, call(func() C.msb_status { return C.msb_platform_host(&p) })
	}
	cs := cString(s)
	defer freeString(cs)
	return p, call(func() C.msb_status { return C.msb_platform_parse(cs, &p) })
}

// optionalPlatform parses s, or is nil for "" (which the C calls read as the default).
// msb_platform_free accepts nil.
func optionalPlatform(s string) (*C.msb_platform, error) {
	if s == "" {
		return nil, nil
	}
	return parsePlatform(s)
}

// NewRegistry makes a registry client that pulls into cache.
func NewRegistry(cache *Cache, opts ...Option) (*Registry, error) {
	if cache == nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: "cache is nil"}
	}
	var cfg registryConfig
	for _, o := range opts {
		o(&cfg)
	}
	platform, err := parsePlatform(cfg.platform)
	if err != nil {
		return nil, err
	}
	defer C.msb_platform_free(platform)

	cache.mu.RLock()
	defer cache.mu.RUnlock()
	if cache.ptr == nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: "the cache is closed"}
	}
	var b *C.msb_registry_builder
	if err := call(func() C.msb_status { return C.msb_registry_builder_new(cache.ptr, platform, &b) }); err != nil {
		return nil, err
	}
	defer C.msb_registry_builder_free(b)
	for _, step := range cfg.steps {
		if err := step(b); err != nil {
			return nil, err
		}
	}
	r := &Registry{}
	if err := call(func() C.msb_status { return C.msb_registry_builder_build(b, &r.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(r, (*Registry).Close)
	return r, nil
}

// Close releases the registry. Pulls already running finish normally.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr != nil {
		C.msb_registry_free(r.ptr)
		r.ptr = nil
		runtime.SetFinalizer(r, nil)
	}
	return nil
}
