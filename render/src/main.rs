//! `chokepoint-config`: validate the policy file and render what runs from it.

use std::path::PathBuf;
use std::process::ExitCode;

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::policy::Policy;
use clap::{Parser, Subcommand};

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
        /// plugin-config, injector-config, bootstrap, ecds, limits, istio-wasmplugin,
        /// istio-trafficextension, istio-envoyfilter, envoy-gateway
        target: String,
        #[arg(long)]
        out: Option<PathBuf>,
        /// bootstrap: address Envoy listens on (gateway and admin).
        #[arg(long, default_value = "127.0.0.1")]
        listen: String,
        #[arg(long, default_value_t = 10000)]
        port: u16,
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
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
            wasm,
            ecds,
            version,
        } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            let o = Options {
                listen,
                port,
                admin_port,
                wasm,
                ecds,
                version,
            };
            let text = bundle::render(&p, &target, &o)?;
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
            let mut drift = Vec::new();
            for (path, text) in chokepoint_render::compose::files(&p, &dir)? {
                if check {
                    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                        drift.push(path.display().to_string());
                    }
                } else {
                    bundle::write_atomically(&path, &text)?;
                }
            }
            if drift.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "compose files differ from the renderer's output (re-run `chokepoint-config compose {} {}`): {}",
                    file.display(),
                    dir.display(),
                    drift.join(", ")
                ))
            }
        }
        Command::Examples { file, dir, check } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            let drift = bundle::examples(&p, &dir, check)?;
            if drift.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "rendered output differs from the committed files (re-run `chokepoint-config examples {} {}`): {}",
                    file.display(),
                    dir.display(),
                    drift.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
}
