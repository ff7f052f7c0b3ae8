/*
 * Blocking pulls through the C ABI against the loopback registry: progress events, every
 * result accessor, warm pulls from the cache, zstd/uncompressed layers, an index resolved
 * for a chosen platform, and the platform and version functions.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static testkit kit;

typedef struct counts {
    int by_kind[16];
    int complete_layers[8]; /* LAYER_EXTRACT_COMPLETE per layer index */
    size_t resolved_layer_count;
    bool complete_cached;
    bool on_caller_thread;
    bool strings_ok;
    pthread_t caller;
    char reference[256];
} counts;

static void on_progress(const msb_progress_event *e, void *user_data) {
    counts *c = user_data;
    if (e->kind < 16) c->by_kind[e->kind]++;
    if (pthread_equal(pthread_self(), c->caller)) c->on_caller_thread = true;
    switch (e->kind) {
    case MSB_PROGRESS_KIND_RESOLVING:
        snprintf(c->reference, sizeof c->reference, "%.*s", (int)e->reference.len,
                 e->reference.ptr);
        break;
    case MSB_PROGRESS_KIND_RESOLVED:
        c->resolved_layer_count = e->layer_count;
        if (e->manifest_digest.len != 71 || strncmp(e->manifest_digest.ptr, "sha256:", 7) != 0)
            c->strings_ok = false;
        break;
    case MSB_PROGRESS_KIND_LAYER_DOWNLOAD_COMPLETE:
        if (e->digest.len != 71) c->strings_ok = false;
        break;
    case MSB_PROGRESS_KIND_LAYER_EXTRACT_COMPLETE:
        if (e->layer_index < 8) c->complete_layers[e->layer_index]++;
        if (e->diff_id.len != 71 || e->entries == 0) c->strings_ok = false;
        break;
    case MSB_PROGRESS_KIND_COMPLETE:
        c->complete_cached = e->cached;
        break;
    default:
        break;
    }
}

static void check_list(msb_pull_result *r, msb_status (*count)(const msb_pull_result *, size_t *),
                       msb_status (*at)(const msb_pull_result *, size_t, char **),
                       const char *const *want, size_t want_n) {
    size_t n = 99;
    CHECK_STATUS(count(r, &n), MSB_STATUS_OK);
    CHECK(n == want_n);
    for (size_t i = 0; i < n && i < want_n; i++) {
        char *s = NULL;
        CHECK_STATUS(at(r, i, &s), MSB_STATUS_OK);
        CHECK(take_string_eq(s, want[i]));
    }
    char *s = (char *)1;
    CHECK_STATUS(at(r, n, &s), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(s == NULL);
}

static void test_blocking_pull_reports_progress_and_result(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);

    counts c;
    memset(&c, 0, sizeof c);
    c.caller = pthread_self();
    c.strings_ok = true;
    msb_pull_result *r = NULL;
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, on_progress, &c, &r),
                 MSB_STATUS_OK);
    if (r == NULL) {
        env_close(&v);
        return;
    }

    CHECK(c.by_kind[MSB_PROGRESS_KIND_RESOLVING] == 1);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_RESOLVED] == 1);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_COMPLETE] == 1);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_EXTRACT_COMPLETE] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_DOWNLOAD_COMPLETE] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_EXTRACT_STARTED] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_INDEX_STARTED] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_INDEX_COMPLETE] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_CACHED] == 0);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_DOWNLOAD_PROGRESS] >= 1);
    CHECK(c.complete_layers[0] == 1 && c.complete_layers[1] == 1 && c.complete_layers[2] == 1);
    CHECK(c.resolved_layer_count == 3);
    CHECK(!c.complete_cached);
    CHECK(!c.on_caller_thread);
    CHECK(c.strings_ok);
    CHECK(strstr(c.reference, "fixtures/standard:gzip") != NULL);

    size_t layers = 0;
    CHECK_STATUS(msb_pull_result_layer_count(r, &layers), MSB_STATUS_OK);
    CHECK(layers == 3);
    for (size_t i = 0; i < layers; i++) {
        char *path = NULL, *diff_id = NULL;
        CHECK_STATUS(msb_pull_result_layer_path(r, i, &path), MSB_STATUS_OK);
        CHECK(path != NULL && is_dir(path) && strncmp(path, "/", 1) == 0);
        CHECK(path != NULL && strstr(path, "/layers/sha256/") != NULL);
        CHECK_STATUS(msb_pull_result_layer_diff_id(r, i, &diff_id), MSB_STATUS_OK);
        CHECK(diff_id != NULL && strncmp(diff_id, "sha256:", 7) == 0);
        CHECK(path != NULL && diff_id != NULL && strstr(path, diff_id + 7) != NULL);
        msb_string_free(path);
        msb_string_free(diff_id);
    }
    char *s = (char *)1;
    CHECK_STATUS(msb_pull_result_layer_path(r, 3, &s), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK(strstr(msb_last_error_message(), "out of range") != NULL);

    char *manifest = NULL;
    CHECK_STATUS(msb_pull_result_manifest_digest(r, &manifest), MSB_STATUS_OK);
    CHECK(manifest != NULL && strstr(kit.line, manifest) != NULL); /* testkit lists it */
    msb_string_free(manifest);
    char *config_digest = NULL;
    CHECK_STATUS(msb_pull_result_config_digest(r, &config_digest), MSB_STATUS_OK);
    CHECK(config_digest != NULL && strncmp(config_digest, "sha256:", 7) == 0);
    msb_string_free(config_digest);
    char *index = (char *)1;
    CHECK_STATUS(msb_pull_result_index_digest(r, &index), MSB_STATUS_OK);
    CHECK(index == NULL);
    bool cached = true;
    CHECK_STATUS(msb_pull_result_cached(r, &cached), MSB_STATUS_OK);
    CHECK(!cached);
    char *reference = NULL;
    CHECK_STATUS(msb_pull_result_reference(r, &reference), MSB_STATUS_OK);
    CHECK(take_string_eq(reference, ref));
    char *platform = NULL;
    CHECK_STATUS(msb_pull_result_platform(r, &platform), MSB_STATUS_OK);
    CHECK(take_string_eq(platform, "linux/amd64"));

    const char *env_want[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "GREETING=hello world"};
    check_list(r, msb_pull_result_env_count, msb_pull_result_env, env_want, 2);
    const char *cmd_want[] = {"--flag", "value"};
    check_list(r, msb_pull_result_cmd_count, msb_pull_result_cmd, cmd_want, 2);
    const char *entry_want[] = {"/usr/bin/tool"};
    check_list(r, msb_pull_result_entrypoint_count, msb_pull_result_entrypoint, entry_want, 1);
    char *wd = NULL, *user = NULL, *json = NULL;
    CHECK_STATUS(msb_pull_result_working_dir(r, &wd), MSB_STATUS_OK);
    CHECK(take_string_eq(wd, "/app"));
    CHECK_STATUS(msb_pull_result_user(r, &user), MSB_STATUS_OK);
    CHECK(take_string_eq(user, "1000:1000"));
    CHECK_STATUS(msb_pull_result_config_json(r, &json), MSB_STATUS_OK);
    CHECK(json != NULL && json[0] == '{');
    CHECK(json != NULL && strstr(json, "\"working_dir\":\"/app\"") != NULL);
    CHECK(json != NULL && strstr(json, "GREETING=hello world") != NULL);
    msb_string_free(json);

    /* A file from the top layer is where the layer path says. */
    char *top = NULL;
    CHECK_STATUS(msb_pull_result_layer_path(r, 2, &top), MSB_STATUS_OK);
    if (top != NULL) {
        char hello[PATH_MAX];
        snprintf(hello, sizeof hello, "%s/app/hello.txt", top);
        CHECK(is_file(hello));
        msb_string_free(top);
    }
    msb_pull_result_free(r);
    check_cache_consistent(v.dir, 0);
    env_close(&v);
}

static void test_second_pull_answers_from_the_cache(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:zstd", ref, sizeof ref);
    msb_pull_result *r = NULL;
    REQUIRE_OK(msb_registry_pull(v.registry, ref, v.options, NULL, NULL, &r));
    msb_pull_result_free(r);

    counts c;
    memset(&c, 0, sizeof c);
    c.caller = pthread_self();
    r = NULL;
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, on_progress, &c, &r),
                 MSB_STATUS_OK);
    bool cached = false;
    CHECK_STATUS(msb_pull_result_cached(r, &cached), MSB_STATUS_OK);
    CHECK(cached);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_CACHED] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_COMPLETE] == 1);
    CHECK(c.complete_cached);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_DOWNLOAD_PROGRESS] == 0);
    msb_pull_result_free(r);

    /* Policy NEVER is satisfied by the cache; ALWAYS refetches the manifest only. */
    r = NULL;
    CHECK_STATUS(msb_pull_options_set_policy(v.options, MSB_PULL_POLICY_NEVER), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, NULL, NULL, &r), MSB_STATUS_OK);
    msb_pull_result_free(r);
    r = NULL;
    CHECK_STATUS(msb_pull_options_set_policy(v.options, MSB_PULL_POLICY_ALWAYS), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, NULL, NULL, &r), MSB_STATUS_OK);
    cached = true;
    CHECK_STATUS(msb_pull_result_cached(r, &cached), MSB_STATUS_OK);
    CHECK(!cached);
    msb_pull_result_free(r);

    /* force re-extracts every layer. */
    memset(&c, 0, sizeof c);
    c.caller = pthread_self();
    r = NULL;
    CHECK_STATUS(msb_pull_options_set_force(v.options, true), MSB_STATUS_OK);
    CHECK_STATUS(msb_pull_options_set_build_index(v.options, false), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, on_progress, &c, &r),
                 MSB_STATUS_OK);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_EXTRACT_COMPLETE] == 3);
    CHECK(c.by_kind[MSB_PROGRESS_KIND_LAYER_INDEX_COMPLETE] == 0); /* build_index off */
    msb_pull_result_free(r);
    check_cache_consistent(v.dir, 0);
    env_close(&v);
}

static void test_uncompressed_layers(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:none", ref, sizeof ref);
    msb_pull_result *r = NULL;
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, NULL, NULL, &r), MSB_STATUS_OK);
    size_t n = 0;
    CHECK_STATUS(msb_pull_result_layer_count(r, &n), MSB_STATUS_OK);
    CHECK(n == 3);
    msb_pull_result_free(r);
    env_close(&v);
}

static void test_index_resolves_the_requested_platform(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/multi:latest", ref, sizeof ref);
    const char *platforms[][2] = {{"linux/arm/v6", "linux/arm/v6"},
                                  {"linux/arm64", "linux/arm64/v8"},
                                  {"linux/amd64", "linux/amd64"}};
    for (size_t i = 0; i < 3; i++) {
        msb_platform *p = NULL;
        REQUIRE_OK(msb_platform_parse(platforms[i][0], &p));
        CHECK_STATUS(msb_pull_options_set_platform(v.options, p), MSB_STATUS_OK);
        msb_platform_free(p); /* options keep a copy */
        msb_pull_result *r = NULL;
        CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, NULL, NULL, &r),
                     MSB_STATUS_OK);
        char *index = NULL, *platform = NULL;
        CHECK_STATUS(msb_pull_result_index_digest(r, &index), MSB_STATUS_OK);
        CHECK(index != NULL && strstr(kit.line, index) != NULL);
        msb_string_free(index);
        CHECK_STATUS(msb_pull_result_platform(r, &platform), MSB_STATUS_OK);
        CHECK(take_string_eq(platform, platforms[i][1]));
        msb_pull_result_free(r);
    }
    CHECK_STATUS(msb_pull_options_clear_platform(v.options), MSB_STATUS_OK);
    env_close(&v);
}

static void test_builder_settings_build_a_working_registry(void) {
    env v;
    REQUIRE(env_open(&v));
    msb_registry_builder *b = NULL;
    REQUIRE_OK(msb_registry_builder_new(v.cache, v.platform, &b));
    CHECK_STATUS(msb_registry_builder_add_insecure_host(b, kit.host), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_set_concurrency(b, 2), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_set_durable(b, false), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_set_max_retries(b, 1), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_set_basic_auth(b, "nobody", "unused"), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_set_anonymous(b), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_add_mirror(b, "docker.io", "http://127.0.0.1:9"),
                 MSB_STATUS_OK);
    msb_registry *r1 = NULL, *r2 = NULL;
    CHECK_STATUS(msb_registry_builder_build(b, &r1), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_builder_build(b, &r2), MSB_STATUS_OK); /* not consumed */
    msb_registry_builder_free(b);
    msb_cache_free(v.cache); /* registries keep their own reference */
    v.cache = NULL;

    char ref[512];
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    msb_pull_result *r = NULL;
    CHECK_STATUS(msb_registry_pull(r1, ref, v.options, NULL, NULL, &r), MSB_STATUS_OK);
    msb_pull_result_free(r);
    r = NULL;
    CHECK_STATUS(msb_registry_pull(r2, ref, v.options, NULL, NULL, &r), MSB_STATUS_OK);
    msb_pull_result_free(r);
    msb_registry_free(r1);
    msb_registry_free(r2);
    env_close(&v);
}

static void test_platforms(void) {
    msb_platform *p = NULL;
    char *s = NULL;
    REQUIRE_OK(msb_platform_host(&p));
    CHECK_STATUS(msb_platform_os(p, &s), MSB_STATUS_OK);
    CHECK(take_string_eq(s, "linux"));
    msb_platform_free(p);

    REQUIRE_OK(msb_platform_parse("linux/aarch64", &p));
    CHECK_STATUS(msb_platform_to_string(p, &s), MSB_STATUS_OK);
    CHECK(take_string_eq(s, "linux/arm64/v8"));
    CHECK_STATUS(msb_platform_architecture(p, &s), MSB_STATUS_OK);
    CHECK(take_string_eq(s, "arm64"));
    CHECK_STATUS(msb_platform_variant(p, &s), MSB_STATUS_OK);
    CHECK(take_string_eq(s, "v8"));
    msb_platform_free(p);

    REQUIRE_OK(msb_platform_new("Linux", "x86_64", &p));
    CHECK_STATUS(msb_platform_to_string(p, &s), MSB_STATUS_OK);
    CHECK(take_string_eq(s, "linux/amd64"));
    s = (char *)1;
    CHECK_STATUS(msb_platform_variant(p, &s), MSB_STATUS_OK);
    CHECK(s == NULL);
    msb_platform_free(p);

    REQUIRE_OK(msb_platform_new_with_variant("linux", "arm", "6", &p));
    CHECK_STATUS(msb_platform_to_string(p, &s), MSB_STATUS_OK);
    CHECK(take_string_eq(s, "linux/arm/v6"));
    msb_platform_free(p);

    p = (msb_platform *)1;
    CHECK_STATUS(msb_platform_parse("linux", &p), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(p == NULL);
    CHECK(strstr(msb_last_error_message(), "linux") != NULL);
    CHECK_STATUS(msb_platform_parse("linux/amd64/v2/x", &p), MSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(msb_platform_new("", "amd64", &p), MSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(msb_platform_new("linux", "am d64", &p), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(p == NULL);
}

static void test_versions(void) {
    CHECK(msb_abi_version() == MSB_ABI_VERSION);
    const char *v = msb_version();
    CHECK(v != NULL && strcmp(v, "0.1.0") == 0);
    CHECK(strcmp(msb_status_name(MSB_STATUS_AUTH), "MSB_STATUS_AUTH") == 0);
    CHECK(strcmp(msb_status_name(12345), "MSB_STATUS_UNKNOWN") == 0);
}

int main(void) {
    if (!testkit_start(&kit, NULL)) {
        fprintf(stderr, "cannot start the test registry\n");
        return tf_setup_failed("test_pull", "registry");
    }
    RUN(test_versions);
    RUN(test_platforms);
    RUN(test_blocking_pull_reports_progress_and_result);
    RUN(test_second_pull_answers_from_the_cache);
    RUN(test_uncompressed_layers);
    RUN(test_index_resolves_the_requested_platform);
    RUN(test_builder_settings_build_a_working_registry);
    testkit_stop(&kit);
    return tf_summary("test_pull");
}
