//! cpwatch: keeps child-protection timescales and professional-disagreement ladders on time.
//!
//! The core (`calendar`, `policy`, `domain`, `evaluate`, `report`) is pure: no I/O, no clock.
//! The adapters surround it: `store` (PostgreSQL, all SQL), `import` (case files in), `mail`
//! (messages out), `holiday_refresh` (the GOV.UK feed), `jobs` (the pass, delivery, the report's
//! count), `schedule` (the cron wake-up), `daemon`, `demo`, `health`, `settings` and `cli`.
//! Dependencies point inward; ARCHITECTURE.md has the map.

pub mod calendar;
pub mod case_view;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod evaluate;
pub mod health;
pub mod holiday_refresh;
pub mod import;
pub mod jobs;
pub mod mail;
pub mod pass_output;
pub mod policy;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod store;
