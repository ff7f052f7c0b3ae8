/*
 * Offline images through the C ABI: msb_registry_save_json writes a docker archive or an OCI
 * layout, and msb_registry_pull / msb_registry_pull_start read them (and a layout skopeo
 * wrote) given as source strings, against the loopback registry. Reports are JSON; these
 * tests look for the strings they check with strstr.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static testkit kit;

/* Pulls `source` through `v`; NULL (and says why) on failure. */
static msb_pull_result *pull(env *v, const char *source) {
    msb_pull_result *r = NULL;
    if (msb_registry_pull(v->registry, source, v->options, NULL, NULL, &r) != MSB_STATUS_OK) {
        fprintf(stderr, "  pull %s: %s\n", source, msb_last_error_message());
        return NULL;
    }
    return r;
}

/* `"key":"value"` of a digest getter, for strstr in a report. */
static bool digest_field(const char *key, char *digest, char *out, size_t n) {
    if (digest == NULL) return false;
    snprintf(out, n, "\"%s\":\"%s\"", key, digest);
    msb_string_free(digest);
    return true;
}

static void test_save_writes_an_archive_that_pulls_back(void) {
    env v, other;
    char ref[512], dir[PATH_MAX], archive[PATH_MAX + 32], target[PATH_MAX + 64];
    char want_manifest[128], want_config[128], field[128];
    char *json = NULL, *manifest = NULL, *config = NULL, *reference = NULL;
    msb_pull_result *remote = NULL, *back = NULL;
    bool ok = tmpdir_new(dir) && env_open(&v) && env_open(&other);
    if (!ok) goto done;
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    ok = (remote = pull(&v, ref)) != NULL;
    if (!ok) goto done;
    REQUIRE_OK(msb_pull_result_manifest_digest(remote, &manifest));
    REQUIRE_OK(msb_pull_result_config_digest(remote, &config));
    ok = digest_field("manifestDigest", manifest, want_manifest, sizeof want_manifest) &&
         digest_field("configDigest", config, want_config, sizeof want_config);
    size_t layers = 0;
    REQUIRE_OK(msb_pull_result_layer_count(remote, &layers));

    snprintf(archive, sizeof archive, "%s/standard.tar", dir);
    snprintf(target, sizeof target, "docker-archive:%s", archive);
    REQUIRE_OK(msb_registry_save_json(v.registry, ref, target, NULL, &json));
    CHECK(contains(json, want_manifest));
    CHECK(contains(json, want_config));
    snprintf(field, sizeof field, "\"blobsWritten\":%zu", layers + 1);
    CHECK(contains(json, field));
    struct stat st;
    CHECK(stat(archive, &st) == 0);
    snprintf(field, sizeof field, "\"bytesWritten\":%lld", (long long)st.st_size);
    CHECK(contains(json, field));
    msb_string_free(json);
    json = NULL;

    /* Into another cache: nothing is answered from the first one. */
    ok = (back = pull(&other, target)) != NULL;
    if (!ok) goto done;
    bool cached = true;
    CHECK_STATUS(msb_pull_result_cached(back, &cached), MSB_STATUS_OK);
    CHECK(!cached);
    CHECK_STATUS(msb_pull_result_reference(back, &reference), MSB_STATUS_OK);
    CHECK(take_string_eq(reference, ref));
    CHECK_STATUS(msb_pull_result_config_digest(back, &config), MSB_STATUS_OK);
    CHECK(digest_field("configDigest", config, field, sizeof field) &&
          strcmp(field, want_config) == 0);
done:
    CHECK(ok);
    msb_pull_result_free(back);
    msb_pull_result_free(remote);
    env_close(&other);
    env_close(&v);
    tmpdir_remove(dir);
}

static void test_a_layout_pulls_through_pull_start(void) {
    env v;
    char ref[512], dir[PATH_MAX], source[PATH_MAX + 64], cmd[2 * PATH_MAX + 1024];
    char *json = NULL, *a = NULL, *b = NULL;
    msb_pull_task *task = NULL;
    msb_pull_result *local = NULL, *remote = NULL;
    bool ok = tmpdir_new(dir) && env_open(&v);
    if (!ok) goto done;
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    /* skopeo writes the layout (the test registry is plain HTTP on loopback). */
    snprintf(cmd, sizeof cmd,
             "skopeo --insecure-policy copy -q --src-tls-verify=false docker://%s oci:%s/s:t",
             ref, dir);
    ok = system(cmd) == 0;
    if (!ok) goto done;
    snprintf(source, sizeof source, "oci-layout:%s/s:t", dir);
    REQUIRE_OK(msb_registry_pull_start(v.registry, source, v.options, NULL, NULL, &task));
    CHECK_STATUS(msb_pull_task_wait(task, -1, &local), MSB_STATUS_OK);
    ok = local != NULL && (remote = pull(&v, ref)) != NULL;
    if (!ok) goto done;
    char *reference = NULL;
    CHECK_STATUS(msb_pull_result_reference(local, &reference), MSB_STATUS_OK);
    CHECK(take_string_eq(reference, "localhost/s:t"));
    CHECK_STATUS(msb_pull_result_manifest_digest(local, &a), MSB_STATUS_OK);
    CHECK_STATUS(msb_pull_result_manifest_digest(remote, &b), MSB_STATUS_OK);
    CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);

    /* And saved again as a layout, for an explicit platform. */
    msb_platform *amd64 = NULL;
    REQUIRE_OK(msb_platform_parse("linux/amd64", &amd64));
    snprintf(source, sizeof source, "oci-layout:%s/saved:v1", dir);
    CHECK_STATUS(msb_registry_save_json(v.registry, ref, source, amd64, &json), MSB_STATUS_OK);
    msb_platform_free(amd64);
    CHECK(contains(json, "\"target\":\"oci-layout:"));
    CHECK(json != NULL && b != NULL && strstr(json, b) != NULL);
    char index[PATH_MAX + 32];
    snprintf(index, sizeof index, "%s/saved/index.json", dir);
    CHECK(is_file(index));
done:
    CHECK(ok);
    msb_string_free(json);
    msb_string_free(a);
    msb_string_free(b);
    msb_pull_result_free(local);
    msb_pull_result_free(remote);
    msb_pull_task_free(task);
    env_close(&v);
    tmpdir_remove(dir);
}

static void test_bad_sources_and_targets(void) {
    env v;
    char ref[512], dir[PATH_MAX], path[PATH_MAX + 64], other[600];
    char *json = SENTINEL;
    msb_pull_result *r = SENTINEL;
    bool ok = tmpdir_new(dir) && env_open(&v);
    if (!ok) goto done;
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    CHECK_STATUS(msb_registry_pull(v.registry, "Not A Ref!", v.options, NULL, NULL, &r),
                 MSB_STATUS_INVALID_REFERENCE);
    CHECK(r == NULL);
    CHECK_STATUS(msb_registry_pull(v.registry, "oci-layout:", v.options, NULL, NULL, &r),
                 MSB_STATUS_INVALID_ARGUMENT);
    snprintf(path, sizeof path, "docker-archive:%s/missing.tar", dir);
    CHECK_STATUS(msb_registry_pull(v.registry, path, v.options, NULL, NULL, &r),
                 MSB_STATUS_NOT_FOUND);
    CHECK(message_has("missing.tar"));
    CHECK_STATUS(msb_registry_save_json(v.registry, ref, "Not A Target!", NULL, &json),
                 MSB_STATUS_INVALID_REFERENCE);
    CHECK(json == NULL);
    snprintf(other, sizeof other, "%s-copy", ref);
    CHECK_STATUS(msb_registry_save_json(v.registry, ref, other, NULL, &json),
                 MSB_STATUS_INVALID_ARGUMENT);
    CHECK(message_has("pushing to a registry"));
    NULL_ARG(msb_registry_save_json(NULL, ref, path, NULL, &json), "registry");
    NULL_ARG(msb_registry_save_json(v.registry, NULL, path, NULL, &json), "source");
    NULL_ARG(msb_registry_save_json(v.registry, ref, NULL, NULL, &json), "target");
    NULL_ARG(msb_registry_save_json(v.registry, ref, path, NULL, NULL), "out_json");
done:
    CHECK(ok);
    env_close(&v);
    tmpdir_remove(dir);
}

int main(void) {
    if (!testkit_start(&kit, NULL)) return tf_setup_failed("test_offline", "registry");
    RUN(test_save_writes_an_archive_that_pulls_back);
    RUN(test_a_layout_pulls_through_pull_start);
    RUN(test_bad_sources_and_targets);
    testkit_stop(&kit);
    return tf_summary("test_offline");
}
