//! Node readiness: the state of each dependency (broker, object store, …), written by the
//! probes that watch them and read by `/ready`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The state of one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    /// Not checked yet.
    Starting,
    Ready,
    /// Why it cannot be used, e.g. "broker 127.0.0.1:9092 unreachable: …".
    Unavailable(String),
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<RwLock<BTreeMap<&'static str, ComponentState>>>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a component in the `Starting` state; the node is not ready until it is.
    pub fn register(&self, name: &'static str) {
        self.set(name, ComponentState::Starting);
    }

    pub fn set(&self, name: &'static str, state: ComponentState) {
        self.components.write().expect("health lock poisoned").insert(name, state);
    }

    pub fn snapshot(&self) -> Vec<(&'static str, ComponentState)> {
        let map = self.components.read().expect("health lock poisoned");
        map.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Ready when every registered component is.
    pub fn is_ready(&self) -> bool {
        let map = self.components.read().expect("health lock poisoned");
        map.values().all(|s| *s == ComponentState::Ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_components_are() {
        let health = Health::new();
        health.register("kafka");
        health.register("cold");
        assert!(!health.is_ready());
        health.set("kafka", ComponentState::Ready);
        assert!(!health.is_ready());
        health.set("cold", ComponentState::Ready);
        assert!(health.is_ready());
        health.set("kafka", ComponentState::Unavailable("down".into()));
        assert!(!health.is_ready());
    }
}
