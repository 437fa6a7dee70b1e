//! cpwatch: keeps child-protection timescales and professional-disagreement ladders on time.
//!
//! The core (`calendar`, `policy`, `domain`, `records`, `evaluate`) is pure: no I/O, no clock.
//! The adapters (`store`, `import`, `mail`, `jobs`, `daemon`, `cli`) surround it.

pub mod calendar;
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
pub mod policy;
pub mod records;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod store;
