//! cpwatch: keeps child-protection timescales and professional-disagreement ladders on time.
//!
//! The core (`calendar`, `policy`, `policy_view`, `domain`, `records`, `evaluate`, `report`) is
//! pure: no I/O, no clock.
//! The adapters surround it: `store` (PostgreSQL, all SQL), `import` (case files and census
//! extracts in), `mail` (messages out, through `smtp`), `holiday_refresh` (the GOV.UK feed),
//! `jobs` (the pass, delivery, the report's counts), `schedule` (the cron wake-up), `listen`
//! (direct writes wake the pass), `daemon`, `demo` (with `pgserver`, a private PostgreSQL),
//! `health`, `settings` and `cli`.
//! `demo` and `pgserver` are built only with the `demo` cargo feature (on by default; the Debian
//! package is built without it). Dependencies point inward; ARCHITECTURE.md has the map.

pub mod calendar;
pub mod case_view;
pub mod cli;
pub mod daemon;
pub mod dburl;
#[cfg(feature = "demo")]
pub mod demo;
pub mod domain;
pub mod evaluate;
pub mod health;
pub mod holiday_refresh;
pub mod http;
pub mod import;
pub mod jobs;
pub mod listen;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod pass_output;
#[cfg(feature = "demo")]
pub mod pgserver;
pub mod policy;
pub mod policy_view;
pub mod records;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod smtp;
pub mod store;
pub mod team_channel;
