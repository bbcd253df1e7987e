//! Build script: tells cargo to rebuild the crate when a migration changes, because
//! `sqlx::migrate!` embeds the migration files at compile time and cargo cannot see that.

// The `cargo:` protocol is spoken on stdout; that is what this print is for.
#![allow(clippy::print_stdout)]

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
