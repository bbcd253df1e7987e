//! The store suite: every test body here runs on SQLite and on PostgreSQL (the
//! `both_backends!` macro makes a `sqlite::<name>` and a `postgres::<name>` test of each).
//!
//! A `Fixture` is a fresh database — an SQLite file in a temp dir, or a PostgreSQL schema
//! of its own (dropped afterwards) — plus a side connection for raw SQL, used to tamper with
//! the audit log. PostgreSQL tests skip with one loud line when no server can be reached,
//! and fail instead when `CI` is set (see `anycloud_store::testing`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[macro_use]
mod fixture;

mod copy;
mod governance;
mod keys;
mod migrations;
mod once;
mod responses;
mod usage;
