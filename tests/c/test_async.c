/*
 * Background pulls: msb_registry_pull_start → msb_pull_task with wait/cancel/free. Cancelling
 * mid-download (through a throttling proxy) from the main thread, another thread and the
 * progress callback itself; freeing a running task; and after each, the cache invariants:
 * no half-published layer, tmp/ empty, and a later pull succeeds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static testkit kit;

typedef struct tracker {
    atomic_int events;
    atomic_int download_progress;
    atomic_int download_complete;
    atomic_int cancel_in_callback; /* 1: cancel on the first download progress */
    _Atomic(msb_pull_task *) task;
    atomic_int wait_in_callback_status;  /* status of msb_pull_task_wait(…, 100) in callback */
    atomic_int pull_in_callback_status;  /* status of msb_registry_pull in the callback */
    const msb_registry *registry;
    const msb_pull_options *options;
} tracker;

static void tracker_init(tracker *t) {
    memset(t, 0, sizeof *t);
    atomic_init(&t->wait_in_callback_status, -1);
    atomic_init(&t->pull_in_callback_status, -1);
}

static void on_progress(const msb_progress_event *e, void *user_data) {
    tracker *t = user_data;
    atomic_fetch_add(&t->events, 1);
    if (e->kind == MSB_PROGRESS_KIND_LAYER_DOWNLOAD_COMPLETE)
        atomic_fetch_add(&t->download_complete, 1);
    if (e->kind != MSB_PROGRESS_KIND_LAYER_DOWNLOAD_PROGRESS) return;
    if (atomic_fetch_add(&t->download_progress, 1) != 0) return;
    msb_pull_task *task = atomic_load(&t->task);
    if (atomic_load(&t->cancel_in_callback) && task != NULL) {
        msb_pull_result *r = NULL;
        atomic_store(&t->wait_in_callback_status, (int)msb_pull_task_wait(task, 100, &r));
        msb_pull_result_free(r);
        r = NULL;
        atomic_store(&t->pull_in_callback_status,
                     (int)msb_registry_pull(t->registry, "example.com/x:y", t->options, NULL,
                                            NULL, &r));
        msb_pull_result_free(r);
        msb_pull_task_cancel(task);
    }
}

/* Pulls the standard image straight from the registry and checks the cache afterwards. */
static void check_later_pull_succeeds(env *v) {
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    msb_pull_result *r = NULL;
    CHECK_STATUS(msb_registry_pull(v->registry, ref, v->options, NULL, NULL, &r),
                 MSB_STATUS_OK);
    size_t n = 0;
    CHECK_STATUS(msb_pull_result_layer_count(r, &n), MSB_STATUS_OK);
    CHECK(n == 3);
    msb_pull_result_free(r);
    check_cache_consistent(v->dir, 0);
}

/* Waits until the pull reported its first downloaded bytes. */
static bool wait_for_download(tracker *t) {
    for (int i = 0; i < 1200 && atomic_load(&t->download_progress) == 0; i++) sleep_ms(50);
    return atomic_load(&t->download_progress) > 0;
}

static void test_wait_returns_the_same_outcome_again(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:zstd", ref, sizeof ref);
    tracker t;
    tracker_init(&t);
    msb_pull_task *task = NULL;
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, on_progress, &t, &task));
    msb_pull_options_free(v.options); /* the task copied them */
    v.options = NULL;

    msb_pull_result *r = (msb_pull_result *)1;
    msb_status s = msb_pull_task_wait(task, 0, &r);
    CHECK(s == MSB_STATUS_OK || s == MSB_STATUS_TIMEOUT);
    if (s == MSB_STATUS_TIMEOUT) {
        CHECK(r == NULL);
        CHECK(strstr(msb_last_error_message(), "still running") != NULL);
    }
    msb_pull_result_free(s == MSB_STATUS_OK ? r : NULL);

    r = NULL;
    CHECK_STATUS(msb_pull_task_wait(task, -1, &r), MSB_STATUS_OK);
    CHECK(r != NULL);
    int events = atomic_load(&t.events);
    CHECK(events > 0);
    msb_pull_result *again = NULL;
    CHECK_STATUS(msb_pull_task_wait(task, 10, &again), MSB_STATUS_OK);
    CHECK(again != NULL && again != r);
    CHECK_STATUS(msb_pull_task_cancel(task), MSB_STATUS_OK); /* after the end: harmless */
    msb_pull_result_free(again);
    again = NULL;
    CHECK_STATUS(msb_pull_task_wait(task, 0, &again), MSB_STATUS_OK);
    msb_pull_result_free(again);
    sleep_ms(100);
    CHECK(atomic_load(&t.events) == events); /* no callback after the end */
    msb_pull_task_free(task);
    msb_pull_result_free(r);
    env_close(&v);
}

static void test_cancel_mid_download_leaves_the_cache_consistent(void) {
    env v;
    REQUIRE(env_open(&v));
    slow_proxy *proxy = slow_proxy_start(kit.host, 16384, 10);
    REQUIRE(proxy != NULL);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/fixtures/standard:gzip", slow_proxy_host(proxy));
    tracker t;
    tracker_init(&t);
    msb_pull_task *task = NULL;
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, on_progress, &t, &task));

    CHECK(wait_for_download(&t));
    CHECK(atomic_load(&t.download_complete) < 3); /* the 3 MB layer is still arriving */
    CHECK_STATUS(msb_pull_task_cancel(task), MSB_STATUS_OK);
    CHECK_STATUS(msb_pull_task_cancel(task), MSB_STATUS_OK); /* twice is harmless */
    msb_pull_result *r = (msb_pull_result *)1;
    CHECK_STATUS(msb_pull_task_wait(task, -1, &r), MSB_STATUS_CANCELLED);
    CHECK(r == NULL);
    CHECK(strstr(msb_last_error_message(), "cancelled") != NULL);
    int events = atomic_load(&t.events);
    sleep_ms(300);
    CHECK(atomic_load(&t.events) == events); /* no callback after wait returned */
    msb_pull_task_free(task);

    check_cache_consistent(v.dir, 0); /* the core cleans up before wait returns */
    check_later_pull_succeeds(&v);
    slow_proxy_stop(proxy);
    env_close(&v);
}

static void test_cancel_right_after_start(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:none", ref, sizeof ref);
    msb_pull_task *task = NULL;
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, NULL, NULL, &task));
    CHECK_STATUS(msb_pull_task_cancel(task), MSB_STATUS_OK);
    msb_pull_result *r = NULL;
    msb_status s = msb_pull_task_wait(task, -1, &r);
    CHECK(s == MSB_STATUS_CANCELLED || s == MSB_STATUS_OK); /* it may have won the race */
    CHECK((s == MSB_STATUS_OK) == (r != NULL));
    msb_pull_result_free(r);
    msb_pull_task_free(task);
    check_cache_consistent(v.dir, 0);
    check_later_pull_succeeds(&v);
    env_close(&v);
}

typedef struct waiter {
    msb_pull_task *task;
    msb_status status;
} waiter;

static void *wait_on_task(void *arg) {
    waiter *w = arg;
    msb_pull_result *r = NULL;
    w->status = msb_pull_task_wait(w->task, -1, &r);
    msb_pull_result_free(r);
    return NULL;
}

static void test_cancel_from_another_thread_wakes_the_waiter(void) {
    env v;
    REQUIRE(env_open(&v));
    slow_proxy *proxy = slow_proxy_start(kit.host, 16384, 10);
    REQUIRE(proxy != NULL);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/fixtures/standard:zstd", slow_proxy_host(proxy));
    tracker t;
    tracker_init(&t);
    waiter w = {NULL, MSB_STATUS_INTERNAL};
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, on_progress, &t, &w.task));
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, wait_on_task, &w) == 0);
    CHECK(wait_for_download(&t));
    CHECK_STATUS(msb_pull_task_cancel(w.task), MSB_STATUS_OK);
    pthread_join(th, NULL);
    CHECK(w.status == MSB_STATUS_CANCELLED);
    msb_pull_task_free(w.task);
    check_cache_consistent(v.dir, 0);
    check_later_pull_succeeds(&v);
    slow_proxy_stop(proxy);
    env_close(&v);
}

static void test_cancel_inside_the_progress_callback(void) {
    env v;
    REQUIRE(env_open(&v));
    slow_proxy *proxy = slow_proxy_start(kit.host, 16384, 10);
    REQUIRE(proxy != NULL);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/fixtures/standard:none", slow_proxy_host(proxy));
    tracker t;
    tracker_init(&t);
    atomic_store(&t.cancel_in_callback, 1);
    t.registry = v.registry;
    t.options = v.options;
    msb_pull_task *task = NULL;
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, on_progress, &t, &task));
    atomic_store(&t.task, task);
    msb_pull_result *r = NULL;
    msb_status s = msb_pull_task_wait(task, -1, &r);
    /* The first progress event may have come before the task pointer was published. */
    CHECK(s == MSB_STATUS_CANCELLED || atomic_load(&t.wait_in_callback_status) == -1);
    if (atomic_load(&t.wait_in_callback_status) != -1) {
        /* Waiting for a pull on a library thread is refused, not deadlocked. */
        CHECK(atomic_load(&t.wait_in_callback_status) == MSB_STATUS_INVALID_ARGUMENT);
        CHECK(atomic_load(&t.pull_in_callback_status) == MSB_STATUS_INVALID_ARGUMENT);
    }
    msb_pull_result_free(r);
    msb_pull_task_free(task);
    check_cache_consistent(v.dir, 30000);
    slow_proxy_stop(proxy);
    env_close(&v);
}

static void test_free_of_a_running_task_stops_its_callbacks(void) {
    env v;
    REQUIRE(env_open(&v));
    slow_proxy *proxy = slow_proxy_start(kit.host, 16384, 10);
    REQUIRE(proxy != NULL);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/fixtures/standard:gzip", slow_proxy_host(proxy));
    tracker *t = malloc(sizeof *t);
    REQUIRE(t != NULL);
    tracker_init(t);
    msb_pull_task *task = NULL;
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, on_progress, t, &task));
    CHECK(wait_for_download(t));
    msb_pull_task_free(task);
    /* From here on the library must not touch user_data: valgrind would see it. */
    free(t);
    sleep_ms(300);
    check_cache_consistent(v.dir, 30000);
    check_later_pull_succeeds(&v);
    slow_proxy_stop(proxy);
    env_close(&v);
}

int main(void) {
    if (!testkit_start(&kit, NULL)) return tf_setup_failed("test_async", "registry");
    RUN(test_wait_returns_the_same_outcome_again);
    RUN(test_cancel_mid_download_leaves_the_cache_consistent);
    RUN(test_cancel_right_after_start);
    RUN(test_cancel_from_another_thread_wakes_the_waiter);
    RUN(test_cancel_inside_the_progress_callback);
    RUN(test_free_of_a_running_task_stops_its_callbacks);
    testkit_stop(&kit);
    return tf_summary("test_async");
}
