#include "shim.h"

#include "_cgo_export.h"

static void msbgo_progress(const msb_progress_event *event, void *user_data) {
    goProgress((msb_progress_event *)event, (uintptr_t)user_data);
}

msb_status msbgo_pull_start(const msb_registry *registry, const char *reference,
                            const msb_pull_options *options, uintptr_t handle,
                            msb_pull_task **out) {
    return msb_registry_pull_start(registry, reference, options,
                                   handle != 0 ? msbgo_progress : NULL, (void *)handle, out);
}
