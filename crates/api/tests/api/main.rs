//! Integration tests: each starts the real application on port 0 against a fresh database and
//! talks HTTP to it. Every test runs twice, on SQLite and on PostgreSQL (see `both_backends!`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod auth;
mod bad_input;
mod cli;
mod cluster;
mod curl;
mod events;
mod exhaustion;
mod faults;
mod jobs;
mod layering;
mod lifecycle;
mod login_guard;
mod openapi;
mod ops;
mod pages;
mod producers;
mod python_client;
mod readers;
mod routing;
mod sessions;
mod traffic_ops;
