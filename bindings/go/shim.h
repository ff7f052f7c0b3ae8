/* The C side of the cgo bridge: starts a pull whose progress callback is the exported Go
 * trampoline, with the cgo.Handle of the Go callback passed through user_data. */
#ifndef MSBIMAGE_GO_SHIM_H
#define MSBIMAGE_GO_SHIM_H

#include <stdint.h>

#include "msbimage.h"

/* msb_registry_pull_start with goProgress as the callback (none when handle is 0). */
msb_status msbgo_pull_start(const msb_registry *registry, const char *reference,
                            const msb_pull_options *options, uintptr_t handle,
                            msb_pull_task **out);

#endif
