//! Sidecar lookup index: see issue 4 (in progress).
