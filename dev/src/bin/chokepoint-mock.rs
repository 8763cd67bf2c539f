//! Mock AI provider (OpenAI, Anthropic, Gemini, Azure OpenAI wire formats)
//! for the local stack and end-to-end tests.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chokepoint_dev::mock::{self, MockConfig};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

const FAULT_HELP: &str = "\
Endpoints (the same --api-key in each provider's own header):
  OpenAI      Authorization: Bearer KEY
    POST /v1/chat/completions          chat; \"stream\": true for SSE (data: ... [DONE])
    POST /v1/responses                 Responses API; stream: event: response.* (no [DONE])
    POST /v1/embeddings                list of embedding objects (float or base64)
    GET  /v1/models
  Anthropic   x-api-key: KEY, plus anthropic-version (required)
    POST /v1/messages                  max_tokens required; stream: message_start..message_stop
  Gemini      x-goog-api-key: KEY or ?key=KEY
    POST /v1beta/models/MODEL:generateContent
    POST /v1beta/models/MODEL:streamGenerateContent?alt=sse   SSE with CRLF line endings
    POST /v1beta/models/MODEL:streamGenerateContent           streamed JSON array
  Azure OpenAI   api-key: KEY, ?api-version=YYYY-MM-DD[-preview] (else 404)
    POST /openai/deployments/DEPLOYMENT/chat/completions?api-version=...
    POST /openai/deployments/DEPLOYMENT/embeddings?api-version=...

Errors come in each provider's own envelope. Prompt tokens = prompt chars / 4
(min 1); completion tokens = words.

Fault-injection request headers (all formats):
  x-mock-status: N           answer N with the provider's error body (429 adds retry-after: 1;
                             Anthropic also takes 529 overloaded)
  x-mock-delay-ms: N         wait N ms before sending response headers
  x-mock-event-delay-ms: N   wait N ms between stream events
  x-mock-pause-after: K      with x-mock-pause-ms: N, pause N ms once after K events
  x-mock-cut-after: K        abort the connection after K events (no clean end)
  x-mock-words: N            completion length in words (default 8)
  x-mock-cache-read: N       report N cached prompt tokens (Anthropic cache_read_input_tokens,
                             on top of input_tokens; OpenAI cached_tokens and Gemini
                             cachedContentTokenCount, as part of the prompt tokens)

Guardrail service (LiteLLM's Generic Guardrail API; Authorization: Bearer GUARDRAIL-KEY
when --guardrail-key is set):
  POST /guardrail/beta/litellm_basic_guardrail_api
    verdict by markers in the texts: GUARD-BLOCK (BLOCKED), GUARD-MASK:WORD
    (GUARDRAIL_INTERVENED, WORD replaced by [MASKED]), GUARD-SLOW (answers after 2 s),
    GUARD-500 (HTTP 500), GUARD-GARBAGE (200, not JSON); otherwise NONE

Request log (no key needed): GET /__mock/requests, DELETE /__mock/requests";

const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Mock AI provider speaking OpenAI (chat completions, Responses, embeddings),
/// Anthropic Messages, Gemini and Azure OpenAI, streaming and not, with fault
/// injection via x-mock-* request headers and a request log at
/// /__mock/requests.
#[derive(Parser)]
#[command(version, after_help = FAULT_HELP)]
struct Args {
    /// Address to listen on; port 0 picks a free port (see --addr-file).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// API key clients must send, in each provider's own header:
    /// `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or `api-key`.
    #[arg(long, env = "CHOKEPOINT_MOCK_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Bearer key the guardrail service at /guardrail/... requires (none: open).
    #[arg(long, env = "CHOKEPOINT_MOCK_GUARDRAIL_KEY", hide_env_values = true)]
    guardrail_key: Option<String>,
    /// Name echoed in the x-mock-name response header.
    #[arg(long, default_value = "openai-mock")]
    name: String,
    /// After binding, write the bound address (IP:PORT) to this file.
    #[arg(long, value_name = "PATH")]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    log::set_logger(&StderrLogger).expect("no other logger is installed");
    log::set_max_level(log::LevelFilter::Info);

    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "chokepoint-mock: cannot listen on {}: {}",
                args.listen,
                describe(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chokepoint-mock: cannot read bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.addr_file {
        if let Err(e) = write_atomically(path, &addr.to_string()) {
            eprintln!("chokepoint-mock: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!("chokepoint-mock: {} listening on {addr}", args.name);

    let config = MockConfig {
        api_key: args.api_key,
        name: args.name,
        guardrail_key: args.guardrail_key,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let served = tokio::select! {
        r = mock::serve(listener, config, stopped(stop_rx.clone())) => r,
        // Graceful shutdown waits for open streams, which a paused fault
        // stream can hold for long; a supervisor stopping us should not.
        _ = async {
            stopped(stop_rx).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chokepoint-mock: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The supervisor polls for this file; writing it whole then renaming means
/// it never reads a half-written address.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// io::Error's Display adds "(os error N)" and capitalizes; the common
/// bind failures read better plainly.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One line per request; the library never logs keys or bodies.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("chokepoint-mock: {}", record.args());
        }
    }

    fn flush(&self) {}
}
