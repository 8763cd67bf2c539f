//! Who is looking at the spend page. Every page handler takes a [`Viewer`]: the admin
//! sees everything, a user only their own usage. [`resolve`] is the one place a request
//! becomes a viewer: today the admin token (as a bearer token or through the login
//! form's session cookie); a company JWT resolves to a [`Viewer::User`] (or to the admin,
//! for an admin group) here as well.

use axum::http::HeaderMap;

use super::session;
use crate::api::{admin_auth, AppState};
use crate::user_id::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Admin,
    // Built by the company-JWT resolution in `resolve`, and by tests until then.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "a company JWT resolves to it, not yet wired")
    )]
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

pub fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Unseen> {
    let Some(token) = state.admin_token.as_deref() else {
        return Err(Unseen::Off);
    };
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return admin_auth::check(Some(token), headers)
            .map(|()| Viewer::Admin)
            .map_err(|_| Unseen::LogIn);
    }
    match session::from_headers(headers) {
        Some(value) if session::valid(token, value, state.clock.now_ms()) => Ok(Viewer::Admin),
        _ => Err(Unseen::LogIn),
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
