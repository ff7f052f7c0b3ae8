/*
 * A tiny test harness for the C tests of libmsbimage: a runner with CHECK macros, the
 * loopback registry (msbimage-testkit serve), the cache + platform + registry set-up most
 * tests share, checks of error messages, temporary cache directories and the cache
 * consistency check. Plain C11 + POSIX. Set-up code that a second test file needs lives here.
 */
#ifndef MSB_TEST_HARNESS_H
#define MSB_TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "msbimage.h"

/* ---- runner ---- */

void tf_fail(const char *file, int line, const char *what);
void tf_fail_status(const char *file, int line, const char *call, msb_status got,
                    msb_status want);
void tf_run(const char *name, void (*test)(void));
int tf_summary(const char *program);
int tf_current_failures(void);
/* What main() prints and returns when its set-up (`what`: "registry", "setup") failed: one
 * failed case and the summary line. */
int tf_setup_failed(const char *program, const char *what);

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) tf_fail(__FILE__, __LINE__, #cond);                                       \
    } while (0)

/* Fails the test and returns from it when the condition does not hold. */
#define REQUIRE(cond)                                                                          \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            tf_fail(__FILE__, __LINE__, #cond);                                                \
            return;                                                                            \
        }                                                                                      \
    } while (0)

#define CHECK_STATUS(call, want)                                                               \
    do {                                                                                       \
        msb_status got_ = (call);                                                              \
        if (got_ != (want)) tf_fail_status(__FILE__, __LINE__, #call, got_, (want));           \
    } while (0)

#define REQUIRE_OK(call)                                                                       \
    do {                                                                                       \
        msb_status got_ = (call);                                                              \
        if (got_ != MSB_STATUS_OK) {                                                           \
            tf_fail_status(__FILE__, __LINE__, #call, got_, MSB_STATUS_OK);                    \
            return;                                                                            \
        }                                                                                      \
    } while (0)

#define RUN(test) tf_run(#test, test)

/* ---- the loopback registry ---- */

typedef struct testkit {
    pid_t pid;
    int stdin_fd;
    char host[256]; /* "127.0.0.1:PORT" */
    char line[8192]; /* the JSON line it printed */
} testkit;

/* Starts `msbimage-testkit serve --push-fixtures [extra]` ($MSB_TESTKIT or
 * target/debug/msbimage-testkit). `basic` is "user:pass" or NULL. */
bool testkit_start(testkit *kit, const char *basic);
/* Closes its stdin (it exits) and reaps it. */
void testkit_stop(testkit *kit);
/* Writes the reference "<host>/<repo_tag>" of an image on the registry into `out`. */
void testkit_ref(const testkit *kit, const char *repo_tag, char *out, size_t n);

/* ---- a cache with a registry ---- */

/* A fresh cache in a temporary directory, the linux/amd64 platform, a registry over both and
 * default pull options. */
typedef struct env {
    char dir[PATH_MAX];
    msb_cache *cache;
    msb_platform *platform;
    msb_registry *registry;
    msb_pull_options *options;
} env;

/* Opens all of it; false when any step failed (env_close still cleans up). */
bool env_open(env *v);
/* Frees what env_open made (NULL members are skipped) and removes the directory. */
void env_close(env *v);

/* ---- error messages ---- */

/* Whether msb_last_error_message() contains `needle`; says what it holds when not. */
bool message_has(const char *needle);
/* Whether `json` (a report from the library; may be NULL) contains `needle`; says what it
 * holds when not. */
bool contains(const char *json, const char *needle);

/* The call must fail with INVALID_ARGUMENT and a message that names the parameter. */
#define NULL_ARG(call, name)                                                                   \
    do {                                                                                       \
        CHECK_STATUS(call, MSB_STATUS_INVALID_ARGUMENT);                                       \
        CHECK(message_has(name " is NULL"));                                                   \
    } while (0)

/* A non-NULL pointer value that must be reset to NULL by a failing call. */
extern int tf_sentinel_storage;
#define SENTINEL ((void *)&tf_sentinel_storage)

/* ---- network helpers ---- */

/* A TCP forwarder on 127.0.0.1 to `upstream` ("host:port") that sends at most `chunk` bytes
 * downstream every `tick_ms`, so a pull through it is slow enough to be cancelled while a
 * layer downloads. */
typedef struct slow_proxy slow_proxy;
slow_proxy *slow_proxy_start(const char *upstream, size_t chunk, int tick_ms);
const char *slow_proxy_host(const slow_proxy *p); /* "127.0.0.1:PORT" */
void slow_proxy_stop(slow_proxy *p);

/* A listening socket on 127.0.0.1 that never accepts: a request to it never gets an answer.
 * Writes "127.0.0.1:PORT" into host; returns the fd (close it to stop), or -1. */
int black_hole_start(char host[64]);

/* ---- files ---- */

/* A new empty directory under $TMPDIR (or /tmp). */
bool tmpdir_new(char path[PATH_MAX]);
/* rm -rf. */
void tmpdir_remove(const char *path);
/* Number of entries in a directory (without . and ..), -1 if it cannot be read. */
int dir_entries(const char *path);
bool is_dir(const char *path);
bool is_file(const char *path);
/* Checks the cache invariants: every layer dir under layers/sha256 is complete (meta.json +
 * fs/), and tmp/ is empty (waiting up to `wait_ms` for cancelled workers to clean up).
 * Reports failures through CHECK; returns whether all held. */
bool check_cache_consistent(const char *cache_dir, int wait_ms);

/* ---- misc ---- */

void sleep_ms(int ms);
/* A string from the library: compares it and frees it. */
bool take_string_eq(char *s, const char *want);

#endif
