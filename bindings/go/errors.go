package msbimage

// #include "msbimage.h"
import "C"

import (
	"errors"
	"fmt"
	"runtime"
)

// Code is a stable msbimage status code (msb_status in the C header).
type Code uint32

// The status codes. Their numbers are those of include/msbimage.h and never change.
const (
	CodeOK               Code = C.MSB_STATUS_OK
	CodeInvalidArgument  Code = C.MSB_STATUS_INVALID_ARGUMENT
	CodeInvalidReference Code = C.MSB_STATUS_INVALID_REFERENCE
	CodeNotCached        Code = C.MSB_STATUS_NOT_CACHED
	CodePlatformNotFound Code = C.MSB_STATUS_PLATFORM_NOT_FOUND
	CodeAuth             Code = C.MSB_STATUS_AUTH
	CodeRegistry         Code = C.MSB_STATUS_REGISTRY
	CodeDigestMismatch   Code = C.MSB_STATUS_DIGEST_MISMATCH
	CodeExtraction       Code = C.MSB_STATUS_EXTRACTION
	CodeIO               Code = C.MSB_STATUS_IO
	CodeUnsupported      Code = C.MSB_STATUS_UNSUPPORTED
	CodeCancelled        Code = C.MSB_STATUS_CANCELLED
	CodePanic            Code = C.MSB_STATUS_PANIC
	CodeInternal         Code = C.MSB_STATUS_INTERNAL
	CodeTimeout          Code = C.MSB_STATUS_TIMEOUT
	CodeNotFound         Code = C.MSB_STATUS_NOT_FOUND
	CodeLockTimeout      Code = C.MSB_STATUS_LOCK_TIMEOUT
	CodeRegistryBlocked  Code = C.MSB_STATUS_REGISTRY_BLOCKED
	CodeDeadlineExceeded Code = C.MSB_STATUS_DEADLINE_EXCEEDED
)

// String returns the code's name in the C header, e.g. "MSB_STATUS_AUTH".
func (c Code) String() string {
	return C.GoString(C.msb_status_name(C.uint32_t(c)))
}

// Error is what every failing call returns: the status code and the library's message.
// Use errors.As to get at the code, or errors.Is with the Err* values below:
//
//	var e *msbimage.Error
//	if errors.As(err, &e) && e.Code == msbimage.CodeNotCached { … }
//	if errors.Is(err, msbimage.ErrNotCached) { … }
//
// A pull stopped by its context also matches the context's error (context.Canceled or
// context.DeadlineExceeded).
type Error struct {
	Code    Code
	Message string
	cause   error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "msbimage: " + e.Code.String()
	}
	return fmt.Sprintf("msbimage: %s (%s)", e.Message, e.Code)
}

// Unwrap returns the context error that cancelled the pull, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same code (the Err* values).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Message == "" && t.cause == nil && t.Code == e.Code
}

// Sentinels for errors.Is, one per error code.
var (
	ErrInvalidArgument  = &Error{Code: CodeInvalidArgument}
	ErrInvalidReference = &Error{Code: CodeInvalidReference}
	ErrNotCached        = &Error{Code: CodeNotCached}
	ErrPlatformNotFound = &Error{Code: CodePlatformNotFound}
	ErrAuth             = &Error{Code: CodeAuth}
	ErrRegistry         = &Error{Code: CodeRegistry}
	ErrDigestMismatch   = &Error{Code: CodeDigestMismatch}
	ErrExtraction       = &Error{Code: CodeExtraction}
	ErrIO               = &Error{Code: CodeIO}
	ErrUnsupported      = &Error{Code: CodeUnsupported}
	ErrCancelled        = &Error{Code: CodeCancelled}
	ErrPanic            = &Error{Code: CodePanic}
	ErrInternal         = &Error{Code: CodeInternal}
	ErrNotFound         = &Error{Code: CodeNotFound}
	ErrLockTimeout      = &Error{Code: CodeLockTimeout}
	ErrRegistryBlocked  = &Error{Code: CodeRegistryBlocked}
	ErrDeadlineExceeded = &Error{Code: CodeDeadlineExceeded}
)

var sentinels = []*Error{
	ErrInvalidArgument, ErrInvalidReference, ErrNotCached, ErrPlatformNotFound, ErrAuth,
	ErrRegistry, ErrDigestMismatch, ErrExtraction, ErrIO, ErrUnsupported, ErrCancelled,
	ErrPanic, ErrInternal, ErrNotFound, ErrLockTimeout, ErrRegistryBlocked,
	ErrDeadlineExceeded,
}

// Sentinel returns the Err* value for code (for errors.Is), or nil for a code this package
// does not know.
func Sentinel(code Code) *Error {
	for _, s := range sentinels {
		if s.Code == code {
			return s
		}
	}
	return nil
}

// call runs one C call and turns a failing status into an *Error. The goroutine stays on
// its OS thread meanwhile: the library's last error message is per thread.
func call(f func() C.msb_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	status := f()
	if status == C.MSB_STATUS_OK {
		return nil
	}
	return &Error{Code: Code(status), Message: C.GoString(C.msb_last_error_message())}
}
