//! Shared helpers for the criterion benches (inputs, fixtures paths).
#![warn(missing_docs)]
