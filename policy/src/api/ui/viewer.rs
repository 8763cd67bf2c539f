//! Who is looking at the spend page. Every page handler takes a [`Viewer`]: the admin
//! sees everything, a user only their own usage. [`resolve`] is the one place a request
//! becomes a viewer: the login form's session (the admin token's holder), or a credential
//! the service's viewer resolver judges (`crate::viewer`: the admin token, or a company
//! JWT verified as the gateway verifies it, whose admin groups make an admin and whose
//! UUID is the one the ledger books the caller's usage under).

use axum::http::HeaderMap;

use super::session;
use crate::api::AppState;
use crate::user_id::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Admin,
    User {
        user: UserId,
        groups: Vec<String>,
        tenant: Option<String>,
    },
}

impl Viewer {
    /// Whether this viewer may see `user`'s usage.
    pub fn may_see(&self, user: &UserId) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::User { user: own, .. } => own == user,
        }
    }

    /// How the page header names the viewer.
    pub fn label(&self) -> String {
        match self {
            Viewer::Admin => "admin".to_owned(),
            Viewer::User { user, .. } => format!("user {user}"),
        }
    }
}

/// Why a request has no viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// No admin token is configured: the page is off, as the admin API is.
    Off,
    /// No credential, or one that is not valid: log in first.
    LogIn,
}

pub async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Unseen> {
    let now_ms = state.clock.now_ms();
    if let (Some(token), Some(value)) =
        (state.admin_token.as_deref(), session::from_headers(headers))
    {
        if session::valid(token, value, now_ms) {
            return Ok(Viewer::Admin);
        }
    }
    if state.admin_token.is_none() && !state.viewers.has_issuers() {
        return Err(Unseen::Off);
    }
    match state.viewers.resolve(headers, now_ms / 1000).await {
        Ok(crate::viewer::Viewer::Admin) => Ok(Viewer::Admin),
        Ok(crate::viewer::Viewer::User {
            user,
            groups,
            tenant,
        }) => UserId::parse(&user)
            .map(|user| Viewer::User {
                user,
                groups,
                tenant,
            })
            .ok_or(Unseen::LogIn),
        Err(_) => Err(Unseen::LogIn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_sees_only_their_own_usage() {
        let alice = UserId::parse("0190a6f2-7c1e-8b3a-9f00-1234567890ab").expect("uuid");
        let bob = UserId::parse("0190a6f2-7c1e-8b3a-9f00-1234567890ac").expect("uuid");
        let as_alice = Viewer::User {
            user: alice.clone(),
            groups: vec!["eng".into()],
            tenant: Some("acme".into()),
        };
        let cases = [
            (&Viewer::Admin, &alice, true),
            (&Viewer::Admin, &bob, true),
            (&as_alice, &alice, true),
            (&as_alice, &bob, false),
        ];
        for (viewer, user, expected) in cases {
            assert_eq!(viewer.may_see(user), expected, "{viewer:?} {user}");
        }
    }
}
