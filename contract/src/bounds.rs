//! How large a field may be. The filter keeps within these before it sends (a JWT claim
//! past a bound is dropped, a model name past it refused with 400), so the policy
//! service meeting a value past one has met a filter bug: authorize refuses it with 400
//! and the ledger dead-letters the record.

/// Longest request, reservation or trace id, in bytes. A request id becomes the
/// idempotency key of its usage record, so it must stay small; Envoy's own ids are 36
/// characters.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// Longest name, in bytes: a tenant, cost centre, model, model key, provider, group,
/// format, decision or error label, and any scope id an operator may set limits for.
/// Redis keys and ranking members are built from scope names, so this also bounds every
/// per-scope key.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest calling tool in a record (`claude-code/2.1.332`), in bytes. The filter
/// derives it from the request's `user-agent` and the tool's own headers, never trusts it
/// for anything but attribution, and keeps only `<name>/<version>` of ASCII letters,
/// digits and `.`, `_`, `-`, `+`.
pub const MAX_CLIENT_BYTES: usize = 64;

/// Longest agent session id in a record, in bytes (Claude Code's and Codex's are UUIDs,
/// 36 characters), of ASCII letters, digits and `.`, `_`, `-`, `:`.
pub const MAX_SESSION_BYTES: usize = 128;

/// Most groups a request or record may name (the filter keeps at most this many of a
/// token's).
pub const MAX_GROUPS: usize = 64;

/// Largest token count or cost in a record: 2^53, the largest integer every JSON reader
/// (JavaScript included) and Redis's Lua (doubles) hold exactly. Reservations past it
/// are clamped to it.
pub const MAX_USAGE_COUNT: u64 = 1 << 53;

/// Most records, and most lease slots to release, in one usage batch: each is a Redis
/// script call behind one response.
pub const MAX_USAGE_RECORDS: usize = 1000;

/// Most slots one lease may hold (a larger ask is cut to it): each is a reservation
/// record written in the decision.
pub const MAX_LEASE_SLOTS: u64 = 64;

/// The longest lease return taken from a filter (a larger one is cut to it): a minute,
/// a rate window's length.
pub const MAX_LEASE_RETURN_MS: u64 = 60_000;

/// Longest policy or price version in a record, in bytes (`sha256:` and 16 hex digits as
/// the renderer writes them), of ASCII letters, digits and `.`, `_`, `-`, `:`.
pub const MAX_VERSION_BYTES: usize = 64;

/// Most guardrail verdicts in one record: one per (check, category, stage), and a policy
/// names a handful of checks. The filter keeps the strongest past it.
pub const MAX_GUARD_VERDICTS: usize = 16;

/// Longest guardrail check name or category in a record, in bytes (`[a-z0-9-]`, as the
/// policy file allows them).
pub const MAX_GUARD_NAME_BYTES: usize = 64;
