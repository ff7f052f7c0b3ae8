/*
 * Verify, repair, inspect, unpack and opening a cache with options through the C ABI:
 * msb_cache_verify_json, msb_registry_repair_json, msb_registry_inspect_json,
 * msb_pull_result_unpack_json and msb_cache_open_with_options, against the loopback registry.
 * Reports are JSON; these tests look for the strings they check with strstr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static testkit kit;

static bool pull(env *v, const char *repo_tag, char *ref, size_t n, msb_pull_result **out) {
    testkit_ref(&kit, repo_tag, ref, n);
    msb_pull_result *r = NULL;
    msb_status st = msb_registry_pull(v->registry, ref, v->options, NULL, NULL, &r);
    if (st != MSB_STATUS_OK) {
        fprintf(stderr, "  pull %s: %s\n", ref, msb_last_error_message());
        return false;
    }
    if (out != NULL) {
        *out = r;
    } else {
        msb_pull_result_free(r);
    }
    return true;
}

/* Flips the first byte of `path` (same size: a content change), keeping its mode. */
static bool damage(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return false;
    chmod(path, st.st_mode | S_IWUSR);
    int fd = open(path, O_RDWR);
    if (fd < 0) return false;
    char c = 0;
    bool ok = pread(fd, &c, 1, 0) == 1;
    c ^= 0x20;
    ok = ok && pwrite(fd, &c, 1, 0) == 1;
    close(fd);
    chmod(path, st.st_mode);
    return ok;
}

static void test_verify_is_clean_then_finds_damage_and_repair_fixes_it(void) {
    env v;
    char ref[512], *json = NULL, *diff_id = NULL, *fixed = NULL;
    msb_pull_result *result = NULL;
    bool ok = env_open(&v) && pull(&v, "fixtures/standard:gzip", ref, sizeof ref, &result);
    if (!ok) goto done;
    const char *refs[] = {ref, NULL};
    REQUIRE_OK(msb_cache_verify_json(v.cache, refs, &json));
    CHECK(contains(json, "\"problems\":[]"));
    CHECK(strstr(json, "\"kind\"") == NULL);
    msb_string_free(json);
    json = NULL;

    /* The topmost layer holding app/hello.txt gets one byte changed. */
    size_t count = 0;
    REQUIRE_OK(msb_pull_result_layer_count(result, &count));
    char file[PATH_MAX * 2];
    bool found = false;
    for (size_t i = count; i-- > 0 && !found;) {
        REQUIRE_OK(msb_pull_result_layer_diff_id(result, i, &diff_id));
        snprintf(file, sizeof file, "%s/layers/sha256/%s/fs/app/hello.txt", v.dir,
                 diff_id + strlen("sha256:"));
        found = is_file(file);
        if (!found) {
            msb_string_free(diff_id);
            diff_id = NULL;
        }
    }
    CHECK(found);
    if (!found) goto done;
    msb_pull_result_free(result); /* let repair swap the layer without waiting for us */
    result = NULL;
    CHECK(damage(file));

    REQUIRE_OK(msb_cache_verify_json(v.cache, NULL, &json)); /* the whole cache */
    CHECK(contains(json, "{\"kind\":\"contentChanged\",\"path\":\"app/hello.txt\""));
    CHECK(contains(json, diff_id));

    REQUIRE_OK(msb_registry_repair_json(v.registry, json, &fixed));
    CHECK(contains(fixed, "\"rebuiltLayers\":[\""));
    CHECK(contains(fixed, diff_id));
    CHECK(contains(fixed, "\"failed\":[]"));
    msb_string_free(fixed);
    fixed = NULL;
    msb_string_free(json);
    json = NULL;
    REQUIRE_OK(msb_cache_verify_json(v.cache, refs, &json));
    CHECK(strstr(json, "\"kind\"") == NULL);
    msb_string_free(json);
    json = NULL;

    /* Errors: a name the cache does not hold, JSON that is not a report. */
    const char *absent[] = {"example.com/nothing:here", NULL};
    json = SENTINEL;
    CHECK_STATUS(msb_cache_verify_json(v.cache, absent, &json), MSB_STATUS_NOT_FOUND);
    CHECK(json == NULL);
    CHECK_STATUS(msb_registry_repair_json(v.registry, "{\"images\": 3}", &json),
                 MSB_STATUS_INVALID_ARGUMENT);
    NULL_ARG(msb_registry_repair_json(v.registry, NULL, &json), "report_json");
    NULL_ARG(msb_cache_verify_json(NULL, NULL, &json), "cache");
    json = NULL;
done:
    CHECK(ok);
    msb_string_free(json);
    msb_string_free(fixed);
    msb_string_free(diff_id);
    msb_pull_result_free(result);
    env_close(&v);
}

static void test_inspect_lists_the_platforms_of_an_index(void) {
    env v;
    char ref[512], *json = NULL;
    bool ok = env_open(&v);
    if (!ok) goto done;
    testkit_ref(&kit, "fixtures/multi:latest", ref, sizeof ref);
    REQUIRE_OK(msb_registry_inspect_json(v.registry, ref, NULL, &json));
    CHECK(contains(json, "\"linux/amd64\""));
    CHECK(contains(json, "\"linux/arm64"));
    CHECK(contains(json, "\"indexDigest\":\"sha256:"));
    CHECK(contains(json, "\"platform\":\"linux/amd64\""));
    msb_string_free(json);
    json = SENTINEL;
    CHECK_STATUS(msb_registry_inspect_json(v.registry, "Not/A:Ref:!", NULL, &json),
                 MSB_STATUS_INVALID_REFERENCE);
    CHECK(json == NULL);
    json = NULL;
done:
    CHECK(ok);
    env_close(&v);
}

static void test_unpack_writes_the_rootfs(void) {
    env v;
    char ref[512], dest[PATH_MAX], *json = NULL;
    msb_pull_result *result = NULL;
    bool ok = tmpdir_new(dest) && env_open(&v) &&
              pull(&v, "fixtures/standard:gzip", ref, sizeof ref, &result);
    if (!ok) goto done;
    char root[PATH_MAX + 16], file[PATH_MAX + 64];
    snprintf(root, sizeof root, "%s/root", dest);
    msb_status st = msb_pull_result_unpack_json(result, root, 1, &json);
    if (st == MSB_STATUS_IO && strstr(msb_last_error_message(), "os error 38") != NULL) {
        /* openat2 is ENOSYS under valgrind: nothing to check there. */
        printf("# skipped: openat2 is not implemented here (valgrind)\n");
        goto done;
    }
    CHECK_STATUS(st, MSB_STATUS_OK);
    if (st != MSB_STATUS_OK) goto done;
    CHECK(contains(json, "\"rootless\":true"));
    snprintf(file, sizeof file, "%s/app/hello.txt", root);
    CHECK(is_file(file));
    msb_string_free(json);
    json = SENTINEL;
    /* Not empty now. */
    CHECK_STATUS(msb_pull_result_unpack_json(result, root, 1, &json), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(json == NULL);
    CHECK_STATUS(msb_pull_result_unpack_json(result, dest, 7, &json), MSB_STATUS_INVALID_ARGUMENT);
    json = NULL;
done:
    CHECK(ok);
    msb_pull_result_free(result);
    env_close(&v);
    tmpdir_remove(dest);
}

static void test_a_read_only_cache_does_a_warm_never_pull(void) {
    env v;
    char ref[512];
    msb_cache *ro = NULL;
    msb_registry *reader = NULL;
    msb_pull_result *r = NULL;
    bool ok = env_open(&v) && pull(&v, "fixtures/standard:gzip", ref, sizeof ref, NULL);
    if (!ok) goto done;
    REQUIRE_OK(msb_cache_open_with_options(v.dir, "{\"readOnly\": true}", &ro));
    REQUIRE_OK(msb_registry_new(ro, v.platform, &reader));
    CHECK_STATUS(msb_pull_options_set_policy(v.options, MSB_PULL_POLICY_NEVER), MSB_STATUS_OK);
    REQUIRE_OK(msb_registry_pull(reader, ref, v.options, NULL, NULL, &r));
    char *json = NULL;
    CHECK_STATUS(msb_cache_gc_json(ro, NULL, &json), MSB_STATUS_IO); /* a reader never writes */
    msb_string_free(json);

    msb_cache *bad = SENTINEL;
    CHECK_STATUS(msb_cache_open_with_options(v.dir, "{\"readonly\": true}", &bad),
                 MSB_STATUS_INVALID_ARGUMENT);
    CHECK(bad == NULL);
done:
    CHECK(ok);
    msb_pull_result_free(r);
    msb_registry_free(reader);
    msb_cache_free(ro);
    env_close(&v);
}

int main(void) {
    if (!testkit_start(&kit, NULL)) return tf_setup_failed("test_verify", "registry");
    RUN(test_verify_is_clean_then_finds_damage_and_repair_fixes_it);
    RUN(test_inspect_lists_the_platforms_of_an_index);
    RUN(test_unpack_writes_the_rootfs);
    RUN(test_a_read_only_cache_does_a_warm_never_pull);
    testkit_stop(&kit);
    return tf_summary("test_verify");
}
