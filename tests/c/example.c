/* Pull an image through libmsbimage and print its layer directories.
 *   cc -std=c11 example.c -I include -L DIR -lmsbimage -o example
 *   ./example docker.io/library/alpine:3.20 /tmp/msb-cache [os/arch[/variant]]
 */
#include <stdio.h>

#include "msbimage.h"

/* Runs on a library thread, one call at a time for this pull. `e` and its strings are
 * borrowed: valid only during the call. */
static void on_progress(const msb_progress_event *e, void *user_data) {
    size_t *layers_done = user_data;
    if (e->kind == MSB_PROGRESS_KIND_RESOLVED)
        fprintf(stderr, "%.*s: %zu layers\n", (int)e->reference.len, e->reference.ptr,
                e->layer_count);
    if (e->kind == MSB_PROGRESS_KIND_LAYER_EXTRACT_COMPLETE ||
        e->kind == MSB_PROGRESS_KIND_LAYER_CACHED)
        (*layers_done)++;
}

#define TRY(call)                                                                              \
    do {                                                                                       \
        msb_status s_ = (call);                                                                \
        if (s_ != MSB_STATUS_OK) {                                                             \
            /* The message is borrowed and per thread: read it right away. */                  \
            fprintf(stderr, "%s: %s\n", msb_status_name(s_), msb_last_error_message());       \
            rc = (int)s_;                                                                      \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s REFERENCE CACHE_DIR [PLATFORM]\n", argv[0]);
        return 2;
    }
    int rc = 0;
    size_t layers_done = 0;
    msb_cache *cache = NULL;
    msb_platform *platform = NULL;
    msb_registry_builder *builder = NULL;
    msb_registry *registry = NULL;
    msb_pull_options *options = NULL;
    msb_pull_result *result = NULL;

    TRY(msb_cache_open(argv[2], &cache));
    TRY(argc > 3 ? msb_platform_parse(argv[3], &platform) : msb_platform_host(&platform));
    TRY(msb_registry_builder_new(cache, platform, &builder));
    TRY(msb_registry_builder_set_concurrency(builder, 4));
    TRY(msb_registry_builder_build(builder, &registry));
    TRY(msb_pull_options_new(&options));
    TRY(msb_pull_options_set_policy(options, MSB_PULL_POLICY_IF_MISSING));

    /* Blocks until the pull ends; msb_registry_pull_start + msb_pull_task_wait/cancel is the
     * background form. */
    TRY(msb_registry_pull(registry, argv[1], options, on_progress, &layers_done, &result));

    size_t count = 0;
    bool cached = false;
    char *digest = NULL;
    TRY(msb_pull_result_layer_count(result, &count));
    TRY(msb_pull_result_cached(result, &cached));
    TRY(msb_pull_result_manifest_digest(result, &digest));
    printf("%s (%s, %zu/%zu layers reported)\n", digest, cached ? "cached" : "pulled",
           layers_done, count);
    msb_string_free(digest); /* strings we get are ours: msb_string_free */
    for (size_t i = 0; i < count; i++) {
        char *path = NULL;
        TRY(msb_pull_result_layer_path(result, i, &path));
        printf("  %s\n", path);
        msb_string_free(path);
    }

out:
    /* One free function per object; NULL is fine. The registry keeps what it needs from
     * the cache, platform and builder, so the order does not matter. */
    msb_pull_result_free(result);
    msb_pull_options_free(options);
    msb_registry_free(registry);
    msb_registry_builder_free(builder);
    msb_platform_free(platform);
    msb_cache_free(cache);
    return rc;
}
