//! The TOML configuration of a node (DESIGN.md §7): the model, its defaults, loading with
//! environment overrides, and validation that names the file, key path and reason.

mod error;
mod load;
mod model;
mod validate;

pub use error::{ConfigError, Problem};
pub use load::{ENV_OVERRIDES, Env};
pub use model::{
    ALL_STREAMS, ColdConfig, ColdLocation, Config, FieldDecl, KafkaConfig, LinePattern, NodeConfig, OnMismatch, Policy,
    QueryConfig, Secret, StreamConfig, UserConfig,
};
