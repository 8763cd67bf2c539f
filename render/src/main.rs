//! `chokepoint-config`: validate the policy file and render what runs from it.

use std::path::PathBuf;
use std::process::ExitCode;

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::policy::Policy;
use clap::{Parser, Subcommand};
use guard_cli::GuardCommand;

mod guard_cli;

#[derive(Parser)]
#[command(
    name = "chokepoint-config",
    about = "Validate chokepoint's policy file and render Envoy, Istio and Envoy Gateway configuration from it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the policy file; errors name the field and line. Exit 1 on any error.
    Validate { file: PathBuf },
    /// Render one target to stdout or --out (written atomically).
    Render {
        file: PathBuf,
        /// plugin-config, injector-config, bootstrap, ecds, limits, policy-identity,
        /// istio-wasmplugin, istio-trafficextension, istio-envoyfilter, istio-meshconfig,
        /// istio-networkpolicy, istio-gateway-keys, envoy-gateway, envoy-gateway-networkpolicy,
        /// kubernetes-policy, kubernetes-redis, istio-lockdown, envoy-gateway-lockdown
        target: String,
        #[arg(long)]
        out: Option<PathBuf>,
        /// bootstrap: address the gateway listener binds (not the admin interface's).
        #[arg(long, default_value = "127.0.0.1")]
        listen: String,
        #[arg(long, default_value_t = 10000)]
        port: u16,
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        /// bootstrap: where Envoy's admin interface listens, IP or IP:PORT (default
        /// 127.0.0.1, whatever --listen says). It can shut Envoy down, change its runtime
        /// and turn on debug logs that show tokens: anything but loopback prints a warning.
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<String>,
        /// The filter's .wasm as Envoy will see it.
        #[arg(long, default_value = "/etc/chokepoint/chokepoint.wasm")]
        wasm: String,
        /// bootstrap: take the filter from this ECDS file (render it with `ecds`), so
        /// re-rendering it changes the running Envoy without a restart.
        #[arg(long)]
        ecds: Option<String>,
        /// ecds: the version_info to stamp.
        #[arg(long, default_value = "1")]
        version: String,
    },
    /// Render the compose stack into DIR (envoy/): docker-compose.yml and compose/*,
    /// or --check for drift.
    Compose {
        file: PathBuf,
        dir: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// Render every example manifest into DIR (envoy/examples), or --check for drift.
    Examples {
        file: PathBuf,
        dir: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// The guardrail detectors over files (see `guardrails scan --help`).
    #[command(subcommand)]
    Guardrails(GuardCommand),
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Validate { file } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            println!(
                "{}: ok ({} issuers, {} providers, {} limit sets)",
                file.display(),
                p.issuers.len(),
                p.providers.len(),
                p.limits.len()
            );
            Ok(())
        }
        Command::Render {
            file,
            target,
            out,
            listen,
            port,
            admin_port,
            admin_listen,
            wasm,
            ecds,
            version,
        } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            let o = Options {
                listen,
                port,
                admin_port,
                admin_listen,
                wasm,
                ecds,
                version,
            };
            let text = bundle::render(&p, &target, &o)?;
            if target == "bootstrap" {
                if let Some(warning) = o.admin()?.warning() {
                    eprintln!("warning: {warning}");
                }
            }
            for note in chokepoint_render::delivery::notes(&p, &target) {
                eprintln!("note: {note}");
            }
            match out {
                Some(path) => bundle::write_atomically(&path, &text),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        Command::Compose { file, dir, check } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            let files = chokepoint_render::compose::files(&p, &dir)?;
            drift_report(
                "compose",
                &file,
                &dir,
                bundle::write_or_check(files, check)?,
            )
        }
        Command::Examples { file, dir, check } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            drift_report("examples", &file, &dir, bundle::examples(&p, &dir, check)?)
        }
        Command::Guardrails(g) => guard_cli::run(g),
    }
}

/// Ok when nothing drifted; else an error naming the files and the command that fixes it.
fn drift_report(
    command: &str,
    file: &std::path::Path,
    dir: &std::path::Path,
    drift: Vec<PathBuf>,
) -> Result<(), String> {
    if drift.is_empty() {
        return Ok(());
    }
    Err(format!(
        "rendered output differs from the committed files (re-run `chokepoint-config {command} {} {}`): {}",
        file.display(),
        dir.display(),
        drift
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
