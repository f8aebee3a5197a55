//! tierlog-core: what every other crate shares — the configuration model and its
//! validation, the stream data model (field types, formats, system columns), human
//! units, and node health.

pub mod checkpoint;
pub mod config;
pub mod failpoint;
pub mod health;
pub mod metrics;
pub mod schema;
pub mod strftime;
pub mod units;

pub use config::{Config, ConfigError};
