/*
 * The cache's life cycle through the C ABI: msb_cache_images_json, msb_cache_layers_json,
 * msb_cache_disk_usage_json, msb_cache_remove_image_json, msb_cache_gc_json and
 * msb_layer_lease, on images pulled from the loopback registry into a fresh cache per test.
 * Reports are JSON; these tests read the few numbers and strings they check with strstr.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static testkit kit;

/* A fresh cache with `repo_tag` pulled into it; `ref` receives the full reference. */
static bool open_pulled(env *v, const char *repo_tag, char *ref, size_t n,
                        msb_pull_result **result) {
    testkit_ref(&kit, repo_tag, ref, n);
    if (!env_open(v)) return false;
    msb_pull_result *r = NULL;
    msb_status st = msb_registry_pull(v->registry, ref, v->options, NULL, NULL, &r);
    if (st != MSB_STATUS_OK) {
        fprintf(stderr, "  pull %s: %s\n", ref, msb_last_error_message());
        return false;
    }
    if (result != NULL) {
        *result = r;
    } else {
        msb_pull_result_free(r);
    }
    return true;
}

/* The unsigned number after `"key":` in json (the first one), or -1. */
static long long number_of(const char *json, const char *key) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) {
        fprintf(stderr, "  no %s in %s\n", key, json);
        return -1;
    }
    return strtoll(at + strlen(pattern), NULL, 10);
}

/* How many digests the array `"key":[…]` of json holds, or -1. */
static int digests_in(const char *json, const char *key) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\":[", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) {
        fprintf(stderr, "  no %s in %s\n", key, json);
        return -1;
    }
    const char *end = strchr(at, ']');
    int count = 0;
    for (const char *p = at; (p = strstr(p, "sha256:")) != NULL && p < end; p++) count++;
    return count;
}

static void test_ls_and_du_show_a_pulled_image(void) {
    env v;
    char ref[512], *json = NULL;
    bool ok = open_pulled(&v, "fixtures/standard:gzip", ref, sizeof ref, NULL);
    if (!ok) goto done;
    REQUIRE_OK(msb_cache_images_json(v.cache, &json));
    char name[600];
    snprintf(name, sizeof name, "\"names\":[\"%s\"]", ref);
    CHECK(contains(json, name));
    CHECK(contains(json, "\"platform\":\"linux/amd64\""));
    CHECK(contains(json, "\"complete\":true"));
    CHECK(digests_in(json, "layers") == 3);
    msb_string_free(json);

    REQUIRE_OK(msb_cache_layers_json(v.cache, &json));
    CHECK(contains(json, "\"diffId\":\"sha256:"));
    char holders[600];
    snprintf(holders, sizeof holders, "\"images\":[\"%s\"]", ref); /* who holds each layer */
    CHECK(contains(json, holders));
    msb_string_free(json);

    REQUIRE_OK(msb_cache_disk_usage_json(v.cache, &json));
    long long exclusive = number_of(json, "exclusiveBytes");
    long long shared = number_of(json, "sharedBytes");
    long long layers = number_of(json, "layerBytes");
    CHECK(exclusive > 0);
    CHECK(shared == 0); /* one image: nothing shared */
    CHECK(exclusive + shared == layers);
    CHECK(number_of(json, "unreferencedBytes") == 0);
    msb_string_free(json);
    json = NULL;
done:
    CHECK(ok);
    env_close(&v);
}

static void test_rm_removes_the_image_and_a_never_pull_then_fails(void) {
    env v;
    char ref[512], *json = NULL;
    bool ok = open_pulled(&v, "fixtures/standard:gzip", ref, sizeof ref, NULL);
    if (!ok) goto done;
    REQUIRE_OK(msb_cache_remove_image_json(v.cache, ref, NULL, &json));
    CHECK(contains(json, "\"dryRun\":false"));
    CHECK(digests_in(json, "removedLayers") == 3);
    CHECK(digests_in(json, "inUseLayers") == 0);
    CHECK(number_of(json, "freedBytes") > 0);
    msb_string_free(json);
    REQUIRE_OK(msb_cache_images_json(v.cache, &json));
    CHECK(take_string_eq(json, "[]"));

    msb_pull_result *r = SENTINEL;
    CHECK_STATUS(msb_pull_options_set_policy(v.options, MSB_PULL_POLICY_NEVER), MSB_STATUS_OK);
    CHECK_STATUS(msb_registry_pull(v.registry, ref, v.options, NULL, NULL, &r),
                 MSB_STATUS_NOT_CACHED);
    CHECK(r == NULL);

    json = SENTINEL;
    CHECK_STATUS(msb_cache_remove_image_json(v.cache, ref, NULL, &json), MSB_STATUS_NOT_FOUND);
    CHECK(json == NULL);
    CHECK(message_has("no such image"));
    CHECK_STATUS(msb_cache_remove_image_json(v.cache, "Not/A:Ref:!", NULL, &json),
                 MSB_STATUS_INVALID_REFERENCE);
    NULL_ARG(msb_cache_remove_image_json(v.cache, NULL, NULL, &json), "reference");
    NULL_ARG(msb_cache_remove_image_json(NULL, ref, NULL, &json), "cache");
    NULL_ARG(msb_cache_images_json(v.cache, NULL), "out_json");
done:
    CHECK(ok);
    env_close(&v);
}

static void test_gc_dry_run_reports_and_removes_nothing_then_collects(void) {
    env v;
    char ref[512], *json = NULL;
    bool ok = open_pulled(&v, "fixtures/standard:gzip", ref, sizeof ref, NULL);
    if (!ok) goto done;
    /* With nothing unreferenced, a plain gc removes no layer. */
    REQUIRE_OK(msb_cache_gc_json(v.cache, NULL, &json));
    CHECK(digests_in(json, "removedLayers") == 0);
    msb_string_free(json);

    REQUIRE_OK(msb_cache_gc_json(v.cache, "{\"dryRun\": true, \"maxSize\": 0}", &json));
    CHECK(contains(json, "\"dryRun\":true"));
    CHECK(contains(json, ref));
    CHECK(digests_in(json, "removedLayers") == 3);
    CHECK(number_of(json, "freedBytes") > 0);
    msb_string_free(json);
    REQUIRE_OK(msb_cache_images_json(v.cache, &json));
    CHECK(contains(json, ref)); /* the dry run removed nothing */
    msb_string_free(json);

    json = SENTINEL;
    CHECK_STATUS(msb_cache_gc_json(v.cache, "{\"max_size\": 0}", &json),
                 MSB_STATUS_INVALID_ARGUMENT);
    CHECK(json == NULL);
    CHECK(message_has("max_size"));
    CHECK_STATUS(msb_cache_gc_json(v.cache, "{\"keepRecent\": -1}", &json),
                 MSB_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(msb_cache_gc_json(v.cache, "[", &json), MSB_STATUS_INVALID_ARGUMENT);

    /* keepRecent protects the image just used; maxSize 0 then evicts nothing. */
    REQUIRE_OK(msb_cache_gc_json(v.cache, "{\"maxSize\": 0, \"keepRecent\": 3600}", &json));
    CHECK(contains(json, "\"removedImages\":[]"));
    msb_string_free(json);
    REQUIRE_OK(msb_cache_gc_json(v.cache, "{\"maxSize\": 0}", &json));
    CHECK(contains(json, ref));
    CHECK(digests_in(json, "removedLayers") == 3);
    msb_string_free(json);
    REQUIRE_OK(msb_cache_layers_json(v.cache, &json));
    CHECK(take_string_eq(json, "[]"));
done:
    CHECK(ok);
    env_close(&v);
}

static void test_a_held_layer_survives_rm_and_gc_until_the_lease_is_freed(void) {
    env v;
    char ref[512], *json = NULL, *diff_id = NULL;
    msb_pull_result *result = NULL;
    msb_layer_lease *lease = NULL;
    bool ok = open_pulled(&v, "fixtures/standard:gzip", ref, sizeof ref, &result);
    if (!ok) goto done;
    REQUIRE_OK(msb_pull_result_layer_diff_id(result, 0, &diff_id));
    char tree[PATH_MAX * 2];
    snprintf(tree, sizeof tree, "%s/layers/sha256/%s", v.dir, diff_id + strlen("sha256:"));
    REQUIRE_OK(msb_cache_hold_layer(v.cache, diff_id, &lease));
    char *held = NULL;
    REQUIRE_OK(msb_layer_lease_diff_id(lease, &held));
    CHECK(take_string_eq(held, diff_id));
    msb_pull_result_free(result); /* the result's own leases go; ours stays */
    result = NULL;

    REQUIRE_OK(msb_cache_remove_image_json(v.cache, ref, NULL, &json));
    CHECK(digests_in(json, "inUseLayers") == 1);
    CHECK(contains(json, diff_id));
    CHECK(digests_in(json, "removedLayers") == 2);
    msb_string_free(json);
    CHECK(is_dir(tree));
    REQUIRE_OK(msb_cache_gc_json(v.cache, "{}", &json));
    CHECK(digests_in(json, "inUseLayers") == 1);
    CHECK(digests_in(json, "removedLayers") == 0);
    msb_string_free(json);
    CHECK(is_dir(tree));

    msb_layer_lease_free(lease);
    lease = NULL;
    REQUIRE_OK(msb_cache_gc_json(v.cache, NULL, &json));
    CHECK(digests_in(json, "removedLayers") == 1);
    CHECK(contains(json, diff_id));
    msb_string_free(json);
    CHECK(!is_dir(tree));

    msb_layer_lease *bad = SENTINEL;
    CHECK_STATUS(msb_cache_hold_layer(v.cache, "sha256:nothex", &bad), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    NULL_ARG(msb_cache_hold_layer(v.cache, NULL, &bad), "diff_id");
    msb_layer_lease_free(NULL);
done:
    CHECK(ok);
    msb_string_free(diff_id);
    msb_layer_lease_free(lease);
    msb_pull_result_free(result);
    env_close(&v);
}

int main(void) {
    if (!testkit_start(&kit, NULL)) return tf_setup_failed("test_cache", "registry");
    RUN(test_ls_and_du_show_a_pulled_image);
    RUN(test_rm_removes_the_image_and_a_never_pull_then_fails);
    RUN(test_gc_dry_run_reports_and_removes_nothing_then_collects);
    RUN(test_a_held_layer_survives_rm_and_gc_until_the_lease_is_freed);
    testkit_stop(&kit);
    return tf_summary("test_cache");
}
