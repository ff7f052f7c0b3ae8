/*
 * Invalid arguments: NULL for every pointer parameter of every function (answered with
 * MSB_STATUS_INVALID_ARGUMENT naming the parameter, out-pointers reset to NULL), strings that
 * are not UTF-8 for every string parameter, references that do not parse, out-of-range
 * numbers and indexes, and NULL given to every free function.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char BAD_UTF8[] = "linux\xff\xfe";

#define BAD_STRING(call, name)                                                                 \
    do {                                                                                       \
        CHECK_STATUS(call, MSB_STATUS_INVALID_ARGUMENT);                                       \
        CHECK(message_has(name " is not valid UTF-8"));                                        \
    } while (0)

typedef struct objects {
    char dir[PATH_MAX];
    msb_cache *cache;
    msb_platform *platform;
    msb_registry_builder *builder;
    msb_registry *registry;
    msb_pull_options *options;
} objects;

static bool objects_open(objects *o) {
    memset(o, 0, sizeof *o);
    return tmpdir_new(o->dir) && msb_cache_open(o->dir, &o->cache) == MSB_STATUS_OK &&
           msb_platform_host(&o->platform) == MSB_STATUS_OK &&
           msb_registry_builder_new(o->cache, o->platform, &o->builder) == MSB_STATUS_OK &&
           msb_registry_new(o->cache, o->platform, &o->registry) == MSB_STATUS_OK &&
           msb_pull_options_new(&o->options) == MSB_STATUS_OK;
}

static void objects_close(objects *o) {
    msb_pull_options_free(o->options);
    msb_registry_free(o->registry);
    msb_registry_builder_free(o->builder);
    msb_platform_free(o->platform);
    msb_cache_free(o->cache);
    tmpdir_remove(o->dir);
}

static void test_cache_and_platform_reject_null(void) {
    msb_cache *c = SENTINEL;
    NULL_ARG(msb_cache_open(NULL, &c), "path");
    CHECK(c == NULL);
    NULL_ARG(msb_cache_open("/tmp", NULL), "out");

    msb_platform *p = SENTINEL;
    NULL_ARG(msb_platform_host(NULL), "out");
    NULL_ARG(msb_platform_new(NULL, "amd64", &p), "os");
    CHECK(p == NULL);
    NULL_ARG(msb_platform_new("linux", NULL, &p), "architecture");
    NULL_ARG(msb_platform_new("linux", "amd64", NULL), "out");
    NULL_ARG(msb_platform_new_with_variant(NULL, "arm", "v7", &p), "os");
    NULL_ARG(msb_platform_new_with_variant("linux", NULL, "v7", &p), "architecture");
    NULL_ARG(msb_platform_new_with_variant("linux", "arm", NULL, &p), "variant");
    NULL_ARG(msb_platform_new_with_variant("linux", "arm", "v7", NULL), "out");
    NULL_ARG(msb_platform_parse(NULL, &p), "platform");
    NULL_ARG(msb_platform_parse("linux/amd64", NULL), "out");

    REQUIRE_OK(msb_platform_host(&p));
    char *s = SENTINEL;
    NULL_ARG(msb_platform_os(NULL, &s), "platform");
    CHECK(s == NULL);
    NULL_ARG(msb_platform_os(p, NULL), "out");
    NULL_ARG(msb_platform_architecture(NULL, &s), "platform");
    NULL_ARG(msb_platform_architecture(p, NULL), "out");
    NULL_ARG(msb_platform_variant(NULL, &s), "platform");
    NULL_ARG(msb_platform_variant(p, NULL), "out");
    NULL_ARG(msb_platform_to_string(NULL, &s), "platform");
    NULL_ARG(msb_platform_to_string(p, NULL), "out");
    msb_platform_free(p);
}

static void test_registry_functions_reject_null(void) {
    objects o;
    REQUIRE(objects_open(&o));
    msb_registry_builder *b = SENTINEL;
    NULL_ARG(msb_registry_builder_new(NULL, o.platform, &b), "cache");
    CHECK(b == NULL);
    NULL_ARG(msb_registry_builder_new(o.cache, NULL, &b), "platform");
    NULL_ARG(msb_registry_builder_new(o.cache, o.platform, NULL), "out");
    NULL_ARG(msb_registry_builder_set_anonymous(NULL), "builder");
    NULL_ARG(msb_registry_builder_set_basic_auth(NULL, "u", "p"), "builder");
    NULL_ARG(msb_registry_builder_set_basic_auth(o.builder, NULL, "p"), "username");
    NULL_ARG(msb_registry_builder_set_basic_auth(o.builder, "u", NULL), "password");
    NULL_ARG(msb_registry_builder_set_basic_auth_for(NULL, "h", "u", "p"), "builder");
    NULL_ARG(msb_registry_builder_set_basic_auth_for(o.builder, NULL, "u", "p"), "registry");
    NULL_ARG(msb_registry_builder_set_basic_auth_for(o.builder, "h", NULL, "p"), "username");
    NULL_ARG(msb_registry_builder_set_basic_auth_for(o.builder, "h", "u", NULL), "password");
    NULL_ARG(msb_registry_builder_set_docker_config(NULL, "/x"), "builder");
    NULL_ARG(msb_registry_builder_set_docker_config(o.builder, NULL), "path");
    NULL_ARG(msb_registry_builder_add_insecure_host(NULL, "h"), "builder");
    NULL_ARG(msb_registry_builder_add_insecure_host(o.builder, NULL), "host");
    NULL_ARG(msb_registry_builder_set_ca_file(NULL, "/x"), "builder");
    NULL_ARG(msb_registry_builder_set_ca_file(o.builder, NULL), "path");
    NULL_ARG(msb_registry_builder_add_mirror(NULL, "docker.io", "m"), "builder");
    NULL_ARG(msb_registry_builder_add_mirror(o.builder, NULL, "m"), "registry");
    NULL_ARG(msb_registry_builder_add_mirror(o.builder, "docker.io", NULL), "mirror");
    NULL_ARG(msb_registry_builder_set_concurrency(NULL, 2), "builder");
    NULL_ARG(msb_registry_builder_set_durable(NULL, true), "builder");
    NULL_ARG(msb_registry_builder_set_max_retries(NULL, 2), "builder");
    msb_registry *r = SENTINEL;
    NULL_ARG(msb_registry_builder_build(NULL, &r), "builder");
    CHECK(r == NULL);
    NULL_ARG(msb_registry_builder_build(o.builder, NULL), "out");
    r = SENTINEL;
    NULL_ARG(msb_registry_new(NULL, o.platform, &r), "cache");
    CHECK(r == NULL);
    NULL_ARG(msb_registry_new(o.cache, NULL, &r), "platform");
    NULL_ARG(msb_registry_new(o.cache, o.platform, NULL), "out");

    CHECK_STATUS(msb_registry_builder_set_concurrency(o.builder, 0), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(message_has("at least 1"));
    objects_close(&o);
}

static void test_options_and_pull_functions_reject_null(void) {
    objects o;
    REQUIRE(objects_open(&o));
    NULL_ARG(msb_pull_options_new(NULL), "out");
    NULL_ARG(msb_pull_options_set_policy(NULL, MSB_PULL_POLICY_ALWAYS), "options");
    NULL_ARG(msb_pull_options_set_force(NULL, true), "options");
    NULL_ARG(msb_pull_options_set_build_index(NULL, true), "options");
    NULL_ARG(msb_pull_options_set_platform(NULL, o.platform), "options");
    NULL_ARG(msb_pull_options_set_platform(o.options, NULL), "platform");
    NULL_ARG(msb_pull_options_clear_platform(NULL), "options");
    CHECK_STATUS(msb_pull_options_set_policy(o.options, 3), MSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(msb_pull_options_set_policy(o.options, 0xffffffffu), MSB_STATUS_INVALID_ARGUMENT);

    const char *ref = "localhost:1/x:y";
    msb_pull_result *res = SENTINEL;
    NULL_ARG(msb_registry_pull(NULL, ref, o.options, NULL, NULL, &res), "registry");
    CHECK(res == NULL);
    NULL_ARG(msb_registry_pull(o.registry, NULL, o.options, NULL, NULL, &res), "reference");
    NULL_ARG(msb_registry_pull(o.registry, ref, NULL, NULL, NULL, &res), "options");
    NULL_ARG(msb_registry_pull(o.registry, ref, o.options, NULL, NULL, NULL), "out");
    msb_pull_task *t = SENTINEL;
    NULL_ARG(msb_registry_pull_start(NULL, ref, o.options, NULL, NULL, &t), "registry");
    CHECK(t == NULL);
    NULL_ARG(msb_registry_pull_start(o.registry, NULL, o.options, NULL, NULL, &t), "reference");
    NULL_ARG(msb_registry_pull_start(o.registry, ref, NULL, NULL, NULL, &t), "options");
    NULL_ARG(msb_registry_pull_start(o.registry, ref, o.options, NULL, NULL, NULL), "out");
    res = SENTINEL;
    NULL_ARG(msb_pull_task_wait(NULL, 0, &res), "task");
    CHECK(res == NULL);
    NULL_ARG(msb_pull_task_cancel(NULL), "task");

    /* With a real task: wait's out-pointer. */
    REQUIRE_OK(msb_registry_pull_start(o.registry, ref, o.options, NULL, NULL, &t));
    NULL_ARG(msb_pull_task_wait(t, 0, NULL), "out");
    msb_pull_task_free(t);
    objects_close(&o);
}

static void test_result_accessors_reject_null(void) {
    char *s = SENTINEL;
    size_t n = 0;
    bool b = false;
    NULL_ARG(msb_pull_result_layer_count(NULL, &n), "result");
    NULL_ARG(msb_pull_result_layer_path(NULL, 0, &s), "result");
    CHECK(s == NULL);
    NULL_ARG(msb_pull_result_layer_diff_id(NULL, 0, &s), "result");
    NULL_ARG(msb_pull_result_cached(NULL, &b), "result");
    NULL_ARG(msb_pull_result_reference(NULL, &s), "result");
    NULL_ARG(msb_pull_result_platform(NULL, &s), "result");
    NULL_ARG(msb_pull_result_manifest_digest(NULL, &s), "result");
    NULL_ARG(msb_pull_result_index_digest(NULL, &s), "result");
    NULL_ARG(msb_pull_result_config_digest(NULL, &s), "result");
    NULL_ARG(msb_pull_result_config_json(NULL, &s), "result");
    NULL_ARG(msb_pull_result_working_dir(NULL, &s), "result");
    NULL_ARG(msb_pull_result_user(NULL, &s), "result");
    NULL_ARG(msb_pull_result_env_count(NULL, &n), "result");
    NULL_ARG(msb_pull_result_env(NULL, 0, &s), "result");
    NULL_ARG(msb_pull_result_cmd_count(NULL, &n), "result");
    NULL_ARG(msb_pull_result_cmd(NULL, 0, &s), "result");
    NULL_ARG(msb_pull_result_entrypoint_count(NULL, &n), "result");
    NULL_ARG(msb_pull_result_entrypoint(NULL, 0, &s), "result");
}

/* The out-parameters of result accessors, with a real result from the test registry. */
static void test_result_accessors_reject_null_out(void) {
    testkit kit;
    REQUIRE(testkit_start(&kit, NULL));
    objects o;
    if (!objects_open(&o)) {
        testkit_stop(&kit);
        REQUIRE(false);
    }
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    msb_pull_result *r = NULL;
    CHECK_STATUS(msb_registry_pull(o.registry, ref, o.options, NULL, NULL, &r), MSB_STATUS_OK);
    if (r != NULL) {
        NULL_ARG(msb_pull_result_layer_count(r, NULL), "out");
        NULL_ARG(msb_pull_result_layer_path(r, 0, NULL), "out");
        NULL_ARG(msb_pull_result_layer_diff_id(r, 0, NULL), "out");
        NULL_ARG(msb_pull_result_cached(r, NULL), "out");
        NULL_ARG(msb_pull_result_reference(r, NULL), "out");
        NULL_ARG(msb_pull_result_platform(r, NULL), "out");
        NULL_ARG(msb_pull_result_manifest_digest(r, NULL), "out");
        NULL_ARG(msb_pull_result_index_digest(r, NULL), "out");
        NULL_ARG(msb_pull_result_config_digest(r, NULL), "out");
        NULL_ARG(msb_pull_result_config_json(r, NULL), "out");
        NULL_ARG(msb_pull_result_working_dir(r, NULL), "out");
        NULL_ARG(msb_pull_result_user(r, NULL), "out");
        NULL_ARG(msb_pull_result_env_count(r, NULL), "out");
        NULL_ARG(msb_pull_result_env(r, 0, NULL), "out");
        NULL_ARG(msb_pull_result_cmd_count(r, NULL), "out");
        NULL_ARG(msb_pull_result_cmd(r, 0, NULL), "out");
        NULL_ARG(msb_pull_result_entrypoint_count(r, NULL), "out");
        NULL_ARG(msb_pull_result_entrypoint(r, 0, NULL), "out");
        char *s = SENTINEL;
        CHECK_STATUS(msb_pull_result_layer_diff_id(r, 3, &s), MSB_STATUS_INVALID_ARGUMENT);
        CHECK(s == NULL);
        CHECK_STATUS(msb_pull_result_env(r, 1000, &s), MSB_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(msb_pull_result_cmd(r, (size_t)-1, &s), MSB_STATUS_INVALID_ARGUMENT);
        CHECK(message_has("out of range"));
        CHECK_STATUS(msb_pull_result_entrypoint(r, 1, &s), MSB_STATUS_INVALID_ARGUMENT);
        msb_pull_result_free(r);
    }
    objects_close(&o);
    testkit_stop(&kit);
}

static void test_strings_must_be_utf8(void) {
    objects o;
    REQUIRE(objects_open(&o));
    msb_cache *c = SENTINEL;
    BAD_STRING(msb_cache_open(BAD_UTF8, &c), "path");
    CHECK(c == NULL);
    msb_platform *p = NULL;
    BAD_STRING(msb_platform_new(BAD_UTF8, "amd64", &p), "os");
    BAD_STRING(msb_platform_new("linux", BAD_UTF8, &p), "architecture");
    BAD_STRING(msb_platform_new_with_variant(BAD_UTF8, "arm", "v7", &p), "os");
    BAD_STRING(msb_platform_new_with_variant("linux", BAD_UTF8, "v7", &p), "architecture");
    BAD_STRING(msb_platform_new_with_variant("linux", "arm", BAD_UTF8, &p), "variant");
    BAD_STRING(msb_platform_parse(BAD_UTF8, &p), "platform");
    BAD_STRING(msb_registry_builder_set_basic_auth(o.builder, BAD_UTF8, "p"), "username");
    BAD_STRING(msb_registry_builder_set_basic_auth(o.builder, "u", BAD_UTF8), "password");
    BAD_STRING(msb_registry_builder_set_basic_auth_for(o.builder, BAD_UTF8, "u", "p"),
               "registry");
    BAD_STRING(msb_registry_builder_set_basic_auth_for(o.builder, "h", BAD_UTF8, "p"),
               "username");
    BAD_STRING(msb_registry_builder_set_basic_auth_for(o.builder, "h", "u", BAD_UTF8),
               "password");
    BAD_STRING(msb_registry_builder_set_docker_config(o.builder, BAD_UTF8), "path");
    BAD_STRING(msb_registry_builder_add_insecure_host(o.builder, BAD_UTF8), "host");
    BAD_STRING(msb_registry_builder_set_ca_file(o.builder, BAD_UTF8), "path");
    BAD_STRING(msb_registry_builder_add_mirror(o.builder, BAD_UTF8, "m"), "registry");
    BAD_STRING(msb_registry_builder_add_mirror(o.builder, "docker.io", BAD_UTF8), "mirror");
    msb_pull_result *r = SENTINEL;
    BAD_STRING(msb_registry_pull(o.registry, BAD_UTF8, o.options, NULL, NULL, &r), "reference");
    CHECK(r == NULL);
    msb_pull_task *t = SENTINEL;
    BAD_STRING(msb_registry_pull_start(o.registry, BAD_UTF8, o.options, NULL, NULL, &t),
               "reference");
    CHECK(t == NULL);
    objects_close(&o);
}

static void test_bad_references(void) {
    objects o;
    REQUIRE(objects_open(&o));
    const char *bad[] = {
        "",
        " alpine",
        "alpine latest",
        "Alpine:UPPER/x",
        "http://example.com/x:1",
        ":tag",
        "@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "/leading",
        "trailing/",
        "a//b",
        "name:tag:more",
        "name@sha256:short",
        "name@md5:e3b0c44298fc1c149afbf4c8996fb924",
        "name:-badtag",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msb_pull_result *r = SENTINEL;
        msb_status s = msb_registry_pull(o.registry, bad[i], o.options, NULL, NULL, &r);
        if (s != MSB_STATUS_INVALID_REFERENCE) {
            fprintf(stderr, "  reference \"%s\": %s (%s)\n", bad[i], msb_status_name(s),
                    msb_last_error_message());
            CHECK(s == MSB_STATUS_INVALID_REFERENCE);
        }
        CHECK(r == NULL);
        CHECK(strlen(msb_last_error_message()) > 0);
        msb_pull_task *t = SENTINEL;
        CHECK_STATUS(msb_registry_pull_start(o.registry, bad[i], o.options, NULL, NULL, &t),
                     MSB_STATUS_INVALID_REFERENCE);
        CHECK(t == NULL);
    }
    objects_close(&o);
}

static void test_free_functions_accept_null(void) {
    msb_cache_free(NULL);
    msb_platform_free(NULL);
    msb_registry_builder_free(NULL);
    msb_registry_free(NULL);
    msb_pull_options_free(NULL);
    msb_pull_task_free(NULL);
    msb_pull_result_free(NULL);
    msb_string_free(NULL);
    CHECK(msb_last_error_message() != NULL);
}

int main(void) {
    RUN(test_cache_and_platform_reject_null);
    RUN(test_registry_functions_reject_null);
    RUN(test_options_and_pull_functions_reject_null);
    RUN(test_result_accessors_reject_null);
    RUN(test_result_accessors_reject_null_out);
    RUN(test_strings_must_be_utf8);
    RUN(test_bad_references);
    RUN(test_free_functions_accept_null);
    return tf_summary("test_args");
}
