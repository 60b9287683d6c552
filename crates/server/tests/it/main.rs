//! Integration tests of the HTTP server in-process, without the binary: the API is closed until
//! a grant opens it, policies apply to what it returns, no request reaches a file outside the
//! lake or the lake's own tables, and streamed events are in the lake once acknowledged. (The
//! CLI crate keeps the tests that need the real binary and real clients.)

mod api;
mod support;
