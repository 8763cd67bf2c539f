//! One request's path through the gateway, as an explicit state machine held by value:
//! strip, authenticate, read the body, authorize (one callout), inject, forward.

use std::rc::Rc;

use crate::authorize::{self, AuthorizeRequest, Decision};
use crate::credentials;
use crate::host::{Counter, Host, HostError};
use crate::identity;
use crate::jwt::{AuthError, Verifier};
use crate::reply::{self, Reply};
use crate::request_body::{self, RequestFields};
use crate::runtime::Runtime;

/// Header carrying the anonymous user id to the provider.
pub const USER_HEADER: &str = "x-chokepoint-user";
/// Header carrying the caller's tenant, when the token names one.
pub const TENANT_HEADER: &str = "x-chokepoint-tenant";

/// What the host should do with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Pause,
}

/// The verified caller, as the rest of the request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub request_id: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Headers,
    ReadingBody {
        caller: Caller,
    },
    Authorizing {
        token: u32,
        caller: Caller,
    },
    Forwarding,
    /// A local reply was sent; nothing more happens to this request.
    Replied,
}

pub struct Flow {
    rt: Rc<Runtime>,
    phase: Phase,
}

impl Flow {
    pub fn new(rt: Rc<Runtime>) -> Flow {
        Flow {
            rt,
            phase: Phase::Headers,
        }
    }

    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Next {
        let result = self.headers(host, end_of_stream);
        self.settle(host, result)
    }

    pub fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        let Phase::ReadingBody { .. } = self.phase else {
            return Next::Continue;
        };
        if body_size > self.rt.config.max_request_body_bytes {
            host.count(Counter::BadRequest);
            let r = reply::payload_too_large(self.rt.config.max_request_body_bytes);
            return self.settle(host, Err(r));
        }
        if !end_of_stream {
            // Envoy keeps buffering until the whole body is there.
            return Next::Pause;
        }
        let result = self.body(host, body_size);
        self.settle(host, result)
    }

    /// The policy service answered (or the callout failed: `status` is `None`).
    pub fn on_authorize_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        status: Option<u32>,
        body: &[u8],
    ) {
        let phase = std::mem::replace(&mut self.phase, Phase::Forwarding);
        let Phase::Authorizing {
            token: expected,
            caller,
        } = phase
        else {
            self.phase = phase;
            return;
        };
        if expected != token {
            self.phase = Phase::Authorizing {
                token: expected,
                caller,
            };
            return;
        }
        let result = match authorize::decide(status, body) {
            Decision::Allow => {
                host.count(Counter::Allowed);
                self.forward(host, &caller)
            }
            Decision::Deny {
                reason,
                message,
                retry_after_secs,
            } => {
                host.count(Counter::Denied);
                Err(reply::rate_limited(&reason, &message, retry_after_secs))
            }
            Decision::Unavailable(why) => {
                log::warn!(
                    "policy service unavailable ({why}) for request {}; failing closed",
                    caller.request_id
                );
                host.count(Counter::PolicyUnavailable);
                Err(reply::policy_unavailable())
            }
        };
        match result {
            Ok(()) => {
                if host.resume_request().is_err() {
                    host.count(Counter::HostFailure);
                }
            }
            Err(r) => {
                self.reply(host, &r);
            }
        }
    }

    fn headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Result<Next, Reply> {
        let headers = host
            .request_headers()
            .map_err(|e| self.host_failed(host, e))?;

        let cfg = &self.rt.config;
        let mut token_values = Vec::with_capacity(1);
        let mut request_id = None;
        let mut content_type = None;
        let mut to_strip: Vec<&str> = Vec::new();
        for (name, value) in &headers {
            if *name == cfg.token_header {
                token_values.push(value.as_str());
            }
            match name.as_str() {
                "x-request-id" => request_id = Some(value.as_str()),
                "content-type" => content_type = Some(value.as_str()),
                _ => {}
            }
            if (credentials::must_strip(name) || *name == cfg.token_header)
                && !to_strip.contains(&name.as_str())
            {
                to_strip.push(name);
            }
        }
        // Strip before anything else can read or forward what the client sent.
        for name in &to_strip {
            host.set_request_header(name, None)
                .map_err(|e| self.host_failed(host, e))?;
        }

        let caller = self.authenticate(host, &token_values, request_id)?;

        if end_of_stream {
            self.authorize(host, caller, &RequestFields::default())?;
            return Ok(Next::Pause);
        }
        if content_type.is_some_and(|ct| !request_body::is_json_content_type(ct)) {
            host.count(Counter::BadRequest);
            return Err(reply::unsupported_media_type());
        }
        self.phase = Phase::ReadingBody { caller };
        Ok(Next::Pause)
    }

    fn authenticate(
        &self,
        host: &mut dyn Host,
        token_values: &[&str],
        request_id: Option<&str>,
    ) -> Result<Caller, Reply> {
        let cfg = &self.rt.config;
        let token = match token_values {
            [] => Err(AuthError::Missing),
            [one] => credentials::bearer_token(one, cfg.token_header == "authorization")
                .ok_or(AuthError::Malformed),
            // Two credentials is an attempt to confuse whichever component reads which one.
            _ => Err(AuthError::Malformed),
        };
        let verifier = Verifier {
            issuers: &cfg.issuers,
            max_token_bytes: cfg.max_token_bytes,
            skew: cfg.clock_skew,
        };
        let verified = token
            .and_then(|t| verifier.verify(t, host.now_secs()))
            .map_err(|e| {
                host.count(Counter::AuthFailed(e));
                reply::unauthorized(e.code(), e.message())
            })?;
        Ok(Caller {
            user: identity::user_uuid(&self.rt.salt, &verified.issuer, &verified.subject),
            tenant: verified.tenant,
            groups: verified.groups,
            request_id: request_id.unwrap_or("").to_string(),
        })
    }

    fn body(&mut self, host: &mut dyn Host, body_size: usize) -> Result<Next, Reply> {
        let Phase::ReadingBody { caller } = std::mem::replace(&mut self.phase, Phase::Forwarding)
        else {
            return Ok(Next::Continue);
        };
        let body = host
            .request_body(body_size)
            .map_err(|e| self.host_failed(host, e))?;
        let fields = request_body::parse(&body).map_err(|e| {
            host.count(Counter::BadRequest);
            reply::bad_request("invalid_body", &e.message())
        })?;
        self.authorize(host, caller, &fields)?;
        Ok(Next::Pause)
    }

    fn authorize(
        &mut self,
        host: &mut dyn Host,
        caller: Caller,
        fields: &RequestFields,
    ) -> Result<(), Reply> {
        let policy = &self.rt.config.policy;
        let request = AuthorizeRequest {
            request_id: &caller.request_id,
            user: &caller.user,
            tenant: caller.tenant.as_deref(),
            groups: &caller.groups,
            model: fields.model.as_deref(),
            provider: &self.rt.config.provider.name,
            stream: fields.stream,
        };
        let body = serde_json::to_vec(&request).map_err(|_| reply::internal("encode_failed"))?;
        let headers = [
            (":method", "POST"),
            (":path", "/v1/authorize"),
            (":authority", policy.authority.as_str()),
            ("content-type", "application/json"),
            ("x-request-id", caller.request_id.as_str()),
        ];
        match host.dispatch(&policy.cluster, &headers, &body, policy.timeout) {
            Ok(token) => {
                self.phase = Phase::Authorizing { token, caller };
                Ok(())
            }
            Err(e) => {
                log::warn!("cannot reach policy cluster {}: {}", policy.cluster, e.0);
                host.count(Counter::PolicyUnavailable);
                Err(reply::policy_unavailable())
            }
        }
    }

    /// The request may go: give the provider the gateway's key and the anonymous id.
    fn forward(&mut self, host: &mut dyn Host, caller: &Caller) -> Result<(), Reply> {
        let rt = Rc::clone(&self.rt);
        let provider = &rt.config.provider;
        let key = format!("{}{}", provider.key_prefix, rt.provider_key);
        host.set_request_header(&provider.key_header, Some(&key))
            .and_then(|()| host.set_request_header(USER_HEADER, Some(&caller.user)))
            .and_then(|()| match &caller.tenant {
                Some(t) => host.set_request_header(TENANT_HEADER, Some(t)),
                None => Ok(()),
            })
            .map_err(|e| self.host_failed(host, e))?;
        self.phase = Phase::Forwarding;
        Ok(())
    }

    fn host_failed(&self, host: &mut dyn Host, e: HostError) -> Reply {
        log::error!("hostcall failed: {}", e.0);
        host.count(Counter::HostFailure);
        reply::internal("gateway_error")
    }

    fn settle(&mut self, host: &mut dyn Host, result: Result<Next, Reply>) -> Next {
        match result {
            Ok(next) => next,
            Err(r) => {
                self.reply(host, &r);
                Next::Pause
            }
        }
    }

    fn reply(&mut self, host: &mut dyn Host, r: &Reply) {
        self.phase = Phase::Replied;
        if host.send_reply(r).is_err() {
            host.count(Counter::HostFailure);
        }
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
