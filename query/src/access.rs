//! Who may query what. `[[query.users]]` holds credentials (an HTTP bearer token, a
//! PostgreSQL password) and the streams each may read. With no user configured the
//! node is open to whoever reaches its ports; with any, every query needs a credential.

use std::collections::BTreeSet;
use std::sync::Arc;

use tierlog_core::config::{ALL_STREAMS, QueryConfig, Secret, UserConfig};

/// The streams a caller may read, decided once per request or connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every stream: no users are configured.
    All,
    /// A configured user's streams (and their error tables); `"*"` for every stream.
    Streams { user: String, streams: Arc<BTreeSet<String>> },
}

impl Grant {
    /// Whether the caller may read `stream` (a stream name, not a table name).
    pub fn allows(&self, stream: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Streams { streams, .. } => streams.contains(stream) || streams.contains(ALL_STREAMS),
        }
    }

    /// The user name, for logs and refusals.
    pub fn user(&self) -> Option<&str> {
        match self {
            Grant::All => None,
            Grant::Streams { user, .. } => Some(user),
        }
    }
}

/// Why a bearer token was refused. The text never says which part was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("authentication required: send 'Authorization: Bearer <token>' (query.users)")]
    MissingToken,
    #[error("invalid token")]
    InvalidToken,
}

/// The configured users, checked against what callers present.
#[derive(Debug, Clone, Default)]
pub struct Access {
    users: Arc<Vec<(UserConfig, Grant)>>,
}

impl Access {
    pub fn new(config: &QueryConfig) -> Access {
        let users = config.users.iter().map(|u| (u.clone(), Access::grant_for(u))).collect();
        Access { users: Arc::new(users) }
    }

    /// The grant a configured user holds; `"*"` among its streams covers them all, and
    /// the grant still names the user (whose own settings, like `max_cold_bytes`, apply).
    pub fn grant_for(user: &UserConfig) -> Grant {
        Grant::Streams { user: user.name.clone(), streams: Arc::new(user.streams.iter().cloned().collect()) }
    }

    /// No users configured: everything is allowed without credentials.
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// The grant of an HTTP request, from its `Authorization` header value.
    pub fn bearer(&self, authorization: Option<&str>) -> Result<Grant, Denied> {
        if self.is_open() {
            return Ok(Grant::All);
        }
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Denied::MissingToken)?;
        // Compare against every user, so the time taken does not tell which one matched.
        let mut found = None;
        for (user, grant) in self.users.iter() {
            if user.token.as_ref().is_some_and(|t| same_secret(t, token)) {
                found = Some(grant.clone());
            }
        }
        found.ok_or(Denied::InvalidToken)
    }

    /// The password a PostgreSQL user must present; `None` when the user is unknown or
    /// has only a token.
    pub fn password_of(&self, user: &str) -> Option<&Secret> {
        self.users.iter().find(|(u, _)| u.name == user).and_then(|(u, _)| u.password.as_ref())
    }

    /// The grant of an already authenticated PostgreSQL user.
    pub fn grant_of(&self, user: &str) -> Option<Grant> {
        if self.is_open() {
            return Some(Grant::All);
        }
        self.users.iter().find(|(u, _)| u.name == user && u.password.is_some()).map(|(_, g)| g.clone())
    }
}

/// Equality whose time depends only on the lengths.
fn same_secret(secret: &Secret, given: &str) -> bool {
    let (a, b) = (secret.expose().as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        let user = |name: &str, token: Option<&str>, password: Option<&str>, streams: &[&str]| UserConfig {
            name: name.into(),
            token: token.map(Secret::new),
            password: password.map(Secret::new),
            streams: streams.iter().map(|s| s.to_string()).collect(),
            max_cold_bytes: None,
        };
        Access::new(&QueryConfig {
            users: vec![
                user("ops", Some("token-ops-1"), None, &["*"]),
                user("bi", Some("token-bi-22"), Some("pw-bi-333"), &["app", "web"]),
            ],
            ..QueryConfig::default()
        })
    }

    #[test]
    fn open_without_users() {
        let open = Access::new(&QueryConfig::default());
        assert_eq!(open.bearer(None), Ok(Grant::All));
        assert_eq!(open.grant_of("anyone"), Some(Grant::All));
    }

    #[test]
    fn tokens_map_to_their_streams() {
        let a = access();
        assert_eq!(a.bearer(None), Err(Denied::MissingToken));
        assert_eq!(a.bearer(Some("Basic abc")), Err(Denied::MissingToken));
        assert_eq!(a.bearer(Some("Bearer token-ops-")), Err(Denied::InvalidToken));
        let ops = a.bearer(Some("Bearer token-ops-1")).unwrap();
        assert_eq!(ops.user(), Some("ops"), "a \"*\" grant still names its user");
        assert!(ops.allows("app") && ops.allows("secret"));
        let bi = a.bearer(Some("Bearer token-bi-22")).unwrap();
        assert!(bi.allows("app") && bi.allows("web") && !bi.allows("secret"));
    }

    #[test]
    fn passwords_belong_to_their_user() {
        let a = access();
        assert_eq!(a.password_of("bi").map(Secret::expose), Some("pw-bi-333"));
        assert_eq!(a.password_of("ops"), None);
        assert_eq!(a.password_of("nobody"), None);
        assert_eq!(a.grant_of("ops"), None, "ops has no password, so no pg access");
        assert!(matches!(a.grant_of("bi"), Some(Grant::Streams { .. })));
    }
}
