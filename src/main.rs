use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use pgdba::cli::{Cli, commands};
use pgdba::output::{Envelope, ErrorBody, Format};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Verbosity raises pgdba's own logs only: libraries' debug output (tokio-postgres prints
    // statements) stays out.
    let filter = match cli.global.verbose {
        0 => "warn",
        1 => "pgdba=info,warn",
        _ => "pgdba=debug,warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGDBA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let format = cli
        .global
        .format
        .unwrap_or(if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        });
    let name = commands::command_name(&cli.command);
    let outcome = if !commands::supports(&cli.command, format) {
        commands::Failure {
            code: "USAGE",
            message: format!("{name} does not print --format {}", format.as_str()),
            hint: None,
            data: serde_json::Value::Null,
        }
        .into_outcome()
    } else {
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(commands::run(cli.command, &cli.global, format)),
            Err(e) => commands::Failure {
                code: "INTERNAL",
                message: format!("cannot start the runtime: {e}"),
                hint: None,
                data: serde_json::Value::Null,
            }
            .into_outcome(),
        }
    };
    print(name, format, &outcome);
    ExitCode::from(outcome.exit)
}

/// Print the result; a closed stdout or stderr (`pgdba plan | head`) is not an error worth a panic.
fn print(name: &str, format: Format, o: &commands::Outcome) {
    let text = match format {
        Format::Json | Format::Yaml => {
            let env = Envelope::new(
                name,
                o.data.clone(),
                o.error.as_ref().map(|e| ErrorBody {
                    code: e.code.clone(),
                    message: e.message.clone(),
                    hint: e.hint.clone(),
                }),
            );
            let text = if format == Format::Json {
                serde_json::to_string_pretty(&env).unwrap_or_default()
            } else {
                serde_yaml::to_string(&env).unwrap_or_default()
            };
            format!("{text}\n")
        }
        _ => o.human.clone(),
    };
    let result = if o.error.is_some() && !matches!(format, Format::Json | Format::Yaml) {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    };
    drop(result);
}
