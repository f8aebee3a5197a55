use std::fmt;

/// One thing wrong with a config: where (key path, e.g. `streams[1].policy.hot_for`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

/// Everything wrong with one config file. Validation collects all problems instead of
/// stopping at the first, so an operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or other source) the config came from.
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl Problem {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem { path: path.into(), reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.path.is_empty() {
                write!(f, "{}: {}", self.source_name, p.reason)?;
            } else {
                write!(f, "{}: {}: {}", self.source_name, p.path, p.reason)?;
            }
        }
        Ok(())
    }
}
