/*
 * 8 threads pulling at once into one cache: four share one registry, four build their own
 * (from the same cache handle), over four images that share layers. Every pull succeeds, the
 * cache ends consistent, and each thread keeps its own last error message.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define THREADS 8

static testkit kit;

typedef struct job {
    int id;
    const msb_cache *cache;
    const msb_platform *platform;
    const msb_registry *shared; /* NULL: build an own registry */
    char ref[512];
    const char *platform_override; /* for the index, or NULL */
    atomic_int events;
    atomic_int complete_events;
    msb_status first, second, error_check;
    size_t layers;
    bool own_message;
} job;

static void on_progress(const msb_progress_event *e, void *user_data) {
    job *j = user_data;
    atomic_fetch_add(&j->events, 1);
    if (e->kind == MSB_PROGRESS_KIND_COMPLETE) atomic_fetch_add(&j->complete_events, 1);
}

static void *run_job(void *arg) {
    job *j = arg;
    msb_registry *own = NULL;
    const msb_registry *reg = j->shared;
    if (reg == NULL) {
        msb_registry_builder *b = NULL;
        if (msb_registry_builder_new(j->cache, j->platform, &b) != MSB_STATUS_OK) return NULL;
        msb_registry_builder_set_concurrency(b, 2);
        msb_registry_builder_build(b, &own);
        msb_registry_builder_free(b);
        reg = own;
    }
    msb_pull_options *o = NULL;
    msb_pull_options_new(&o);
    if (j->platform_override != NULL) {
        msb_platform *p = NULL;
        msb_platform_parse(j->platform_override, &p);
        msb_pull_options_set_platform(o, p);
        msb_platform_free(p);
    }
    msb_pull_result *r = NULL;
    j->first = msb_registry_pull(reg, j->ref, o, on_progress, j, &r);
    if (r != NULL) msb_pull_result_layer_count(r, &j->layers);
    msb_pull_result_free(r);
    r = NULL;
    j->second = msb_registry_pull(reg, j->ref, o, on_progress, j, &r);
    msb_pull_result_free(r);

    /* Each thread fails with its own message and must read back its own. */
    char bad[64], mine[64];
    snprintf(bad, sizeof bad, "thread-%d-os", j->id);
    snprintf(mine, sizeof mine, "thread-%d-os", j->id);
    msb_platform *p = NULL;
    j->error_check = msb_platform_parse(bad, &p);
    j->own_message = strstr(msb_last_error_message(), mine) != NULL;

    msb_pull_options_free(o);
    msb_registry_free(own);
    return NULL;
}

static void test_eight_threads_pull_into_one_cache(void) {
    env v;
    REQUIRE(env_open(&v));
    const char *dir = v.dir;
    const msb_cache *cache = v.cache;
    const msb_platform *platform = v.platform;
    const msb_registry *shared = v.registry;

    static const char *refs[][2] = {{"fixtures/standard:gzip", NULL},
                                    {"fixtures/standard:zstd", NULL},
                                    {"fixtures/standard:none", NULL},
                                    {"fixtures/multi:latest", "linux/arm64"}};
    job *jobs = calloc(THREADS, sizeof *jobs);
    REQUIRE(jobs != NULL);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i].id = i;
        jobs[i].cache = cache;
        jobs[i].platform = platform;
        jobs[i].shared = i < THREADS / 2 ? shared : NULL;
        testkit_ref(&kit, refs[i % 4][0], jobs[i].ref, sizeof jobs[i].ref);
        jobs[i].platform_override = refs[i % 4][1];
        jobs[i].first = jobs[i].second = MSB_STATUS_INTERNAL;
        CHECK(pthread_create(&threads[i], NULL, run_job, &jobs[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);

    for (int i = 0; i < THREADS; i++) {
        if (jobs[i].first != MSB_STATUS_OK || jobs[i].second != MSB_STATUS_OK)
            fprintf(stderr, "  thread %d (%s): %s, %s\n", i, jobs[i].ref,
                    msb_status_name(jobs[i].first), msb_status_name(jobs[i].second));
        CHECK(jobs[i].first == MSB_STATUS_OK);
        CHECK(jobs[i].second == MSB_STATUS_OK);
        CHECK(jobs[i].layers >= 1);
        CHECK(i % 4 == 3 || jobs[i].layers == 3);
        CHECK(atomic_load(&jobs[i].complete_events) == 2);
        CHECK(jobs[i].error_check == MSB_STATUS_INVALID_ARGUMENT);
        CHECK(jobs[i].own_message);
    }
    check_cache_consistent(dir, 0);
    /* gzip, zstd and uncompressed carry the same content: stored once. */
    char layers[PATH_MAX + 32];
    snprintf(layers, sizeof layers, "%s/layers/sha256", dir);
    CHECK(dir_entries(layers) >= 4);

    free(jobs);
    env_close(&v);
}

int main(void) {
    if (!testkit_start(&kit, NULL)) return tf_setup_failed("test_threads", "registry");
    RUN(test_eight_threads_pull_into_one_cache);
    testkit_stop(&kit);
    return tf_summary("test_threads");
}
