/*
 * Every error kind provoked once through the C ABI, each with its status code and a message
 * that says what went wrong: invalid argument, invalid reference, not cached, platform not
 * found, auth, registry (missing tag), I/O, cancelled, and the wait timeout.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static testkit kit;      /* anonymous, with fixtures */
static testkit kit_auth; /* basic auth user:pass, with fixtures */

/* Pulls and expects `want`; the result pointer must stay NULL on failure. */
static void expect_pull(env *v, const msb_registry *reg, const char *ref, msb_status want,
                        const char *message_part) {
    msb_pull_result *r = (msb_pull_result *)1;
    CHECK_STATUS(msb_registry_pull(reg, ref, v->options, NULL, NULL, &r), want);
    if (want != MSB_STATUS_OK) {
        CHECK(r == NULL);
        if (message_part != NULL) CHECK(message_has(message_part));
    } else {
        msb_pull_result_free(r);
    }
}

static void test_invalid_argument(void) {
    msb_cache *c = (msb_cache *)1;
    CHECK_STATUS(msb_cache_open(NULL, &c), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(c == NULL);
    CHECK(message_has("path is NULL"));
    msb_pull_options *o = NULL;
    REQUIRE_OK(msb_pull_options_new(&o));
    CHECK_STATUS(msb_pull_options_set_policy(o, 7), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(message_has("unknown pull policy 7"));
    msb_pull_options_free(o);
}

static void test_invalid_reference(void) {
    env v;
    REQUIRE(env_open(&v));
    expect_pull(&v, v.registry, "Not/A Valid:Ref", MSB_STATUS_INVALID_REFERENCE,
                "invalid reference");
    msb_pull_task *t = (msb_pull_task *)1;
    CHECK_STATUS(msb_registry_pull_start(v.registry, "http://example.com/x", v.options, NULL,
                                         NULL, &t),
                 MSB_STATUS_INVALID_REFERENCE);
    CHECK(t == NULL);
    CHECK(message_has("scheme"));
    env_close(&v);
}

static void test_not_cached(void) {
    env v;
    REQUIRE(env_open(&v));
    REQUIRE_OK(msb_pull_options_set_policy(v.options, MSB_PULL_POLICY_NEVER));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:gzip", ref, sizeof ref);
    expect_pull(&v, v.registry, ref, MSB_STATUS_NOT_CACHED, "not in the cache");
    /* force with NEVER is a contradiction the core rejects. */
    REQUIRE_OK(msb_pull_options_set_force(v.options, true));
    expect_pull(&v, v.registry, ref, MSB_STATUS_INVALID_ARGUMENT, "force");
    env_close(&v);
}

static void test_platform_not_found(void) {
    env v;
    REQUIRE(env_open(&v));
    msb_platform *p = NULL;
    REQUIRE_OK(msb_platform_parse("linux/s390x", &p));
    REQUIRE_OK(msb_pull_options_set_platform(v.options, p));
    msb_platform_free(p);
    char ref[512];
    testkit_ref(&kit, "fixtures/multi:latest", ref, sizeof ref);
    expect_pull(&v, v.registry, ref, MSB_STATUS_PLATFORM_NOT_FOUND, "linux/arm64");
    CHECK(message_has("s390x"));
    env_close(&v);
}

static void test_auth(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit_auth, "fixtures/standard:gzip", ref, sizeof ref);
    /* Anonymous. */
    expect_pull(&v, v.registry, ref, MSB_STATUS_AUTH, "authentication");
    /* Wrong password, as default credentials. */
    msb_registry_builder *b = NULL;
    REQUIRE_OK(msb_registry_builder_new(v.cache, v.platform, &b));
    REQUIRE_OK(msb_registry_builder_set_basic_auth(b, "user", "wrong"));
    msb_registry *wrong = NULL;
    REQUIRE_OK(msb_registry_builder_build(b, &wrong));
    expect_pull(&v, wrong, ref, MSB_STATUS_AUTH, "authentication");
    msb_registry_free(wrong);
    /* The right password for that host only wins over the wrong default. */
    REQUIRE_OK(msb_registry_builder_set_basic_auth_for(b, kit_auth.host, "user", "pass"));
    msb_registry *right = NULL;
    REQUIRE_OK(msb_registry_builder_build(b, &right));
    expect_pull(&v, right, ref, MSB_STATUS_OK, NULL);
    msb_registry_free(right);
    msb_registry_builder_free(b);
    env_close(&v);
}

static void test_registry_missing_tag(void) {
    env v;
    REQUIRE(env_open(&v));
    char ref[512];
    testkit_ref(&kit, "fixtures/standard:no-such-tag", ref, sizeof ref);
    expect_pull(&v, v.registry, ref, MSB_STATUS_REGISTRY, "not found");
    testkit_ref(&kit, "fixtures/no-such-repo:latest", ref, sizeof ref);
    expect_pull(&v, v.registry, ref, MSB_STATUS_REGISTRY, "no-such-repo");
    env_close(&v);
}

static void test_io(void) {
    msb_cache *c = (msb_cache *)1;
    CHECK_STATUS(msb_cache_open("/dev/null/cache", &c), MSB_STATUS_IO);
    CHECK(c == NULL);
    CHECK(message_has("/dev/null/cache"));
}

static void test_unreadable_ca_file(void) {
    env v;
    REQUIRE(env_open(&v));
    msb_registry_builder *b = NULL;
    REQUIRE_OK(msb_registry_builder_new(v.cache, v.platform, &b));
    REQUIRE_OK(msb_registry_builder_set_ca_file(b, "/nonexistent/ca.pem"));
    msb_registry *r = (msb_registry *)1;
    CHECK_STATUS(msb_registry_builder_build(b, &r), MSB_STATUS_INVALID_ARGUMENT);
    CHECK(r == NULL);
    CHECK(message_has("/nonexistent/ca.pem"));
    msb_registry_builder_free(b);
    env_close(&v);
}

static void test_cancelled_and_timeout(void) {
    env v;
    REQUIRE(env_open(&v));
    char hole[64];
    int fd = black_hole_start(hole);
    REQUIRE(fd >= 0);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/never/answers:latest", hole);
    msb_pull_task *t = NULL;
    REQUIRE_OK(msb_registry_pull_start(v.registry, ref, v.options, NULL, NULL, &t));
    msb_pull_result *r = (msb_pull_result *)1;
    CHECK_STATUS(msb_pull_task_wait(t, 50, &r), MSB_STATUS_TIMEOUT);
    CHECK(r == NULL);
    CHECK_STATUS(msb_pull_task_cancel(t), MSB_STATUS_OK);
    CHECK_STATUS(msb_pull_task_wait(t, -1, &r), MSB_STATUS_CANCELLED);
    CHECK(message_has("pull cancelled"));
    msb_pull_task_free(t);
    close(fd);
    env_close(&v);
}

static void test_last_error_is_per_thread_and_borrowed(void) {
    msb_platform *p = NULL;
    CHECK_STATUS(msb_platform_parse("nonsense", &p), MSB_STATUS_INVALID_ARGUMENT);
    const char *m1 = msb_last_error_message();
    CHECK(m1 != NULL && strstr(m1, "nonsense") != NULL);
    /* A successful call leaves the message of the last failure in place. */
    CHECK_STATUS(msb_platform_host(&p), MSB_STATUS_OK);
    msb_platform_free(p);
    CHECK(strstr(msb_last_error_message(), "nonsense") != NULL);
}

int main(void) {
    if (!testkit_start(&kit, NULL) || !testkit_start(&kit_auth, "user:pass")) {
        testkit_stop(&kit);
        return tf_setup_failed("test_errors", "registry");
    }
    RUN(test_invalid_argument);
    RUN(test_invalid_reference);
    RUN(test_not_cached);
    RUN(test_platform_not_found);
    RUN(test_auth);
    RUN(test_registry_missing_tag);
    RUN(test_io);
    RUN(test_unreadable_ca_file);
    RUN(test_cancelled_and_timeout);
    RUN(test_last_error_is_per_thread_and_borrowed);
    testkit_stop(&kit_auth);
    testkit_stop(&kit);
    return tf_summary("test_errors");
}
