//! The gateway's gate on `/v1/authorize` and `/v1/usage`: `Authorization: Bearer
//! <gateway token>`, the secret Envoy's filter sends on every callout. Without it anyone
//! who can reach the service could book spend on another team, drain its budget with
//! reservations, or post a zero-token record under a request id the gateway will use.
//!
//! A middleware, so an unauthenticated caller is turned away before its body is read.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::bearer::{self, Gate};
use super::AppState;

const GATEWAY: Gate = Gate {
    missing_code: "missing_gateway_token",
    missing_message: "only the gateway may call this endpoint: it needs an \
                      `Authorization: Bearer <gateway token>` header",
    invalid_code: "invalid_gateway_token",
    invalid_message: "the gateway token is not valid",
};

pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match bearer::check(&GATEWAY, &state.gateway_token, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(err) => {
            state.metrics.record_gateway_refusal(err.code);
            err.into_response()
        }
    }
}
