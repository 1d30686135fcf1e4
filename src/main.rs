use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use pgdba::cli::{Cli, commands};
use pgdba::output::{Envelope, ErrorBody, Format};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let global = cli.resolve();
    // Verbosity raises pgdba's own logs only: libraries' debug output (tokio-postgres prints
    // statements) stays out.
    let filter = match global.verbose {
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
        // Colours only for a person at a terminal, not in a CI log or a file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let format = global.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let name = commands::command_name(&cli.command);
    let outcome = if !commands::supports(&cli.command, format) {
        commands::Failure {
            code: commands::codes::USAGE,
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
            Ok(rt) => rt.block_on(commands::run(cli.command, &global, format)),
            Err(e) => commands::Failure {
                code: commands::codes::INTERNAL,
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

/// A command line that cannot be parsed is an error like any other: exit 1 (never 2, which
/// means "changes pending" to scripts), and the JSON envelope with `USAGE` when the output is
/// JSON (`--format json` or `yaml`, or stdout not a terminal). `--help` and `--version` print
/// and exit 0.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let asked = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--format=").or_else(|| {
            (a == "--format")
                .then(|| args.get(i + 1).map(String::as_str))
                .flatten()
        })
    });
    let format = match asked {
        Some("json") => Format::Json,
        Some("yaml") => Format::Yaml,
        Some(_) => Format::Table,
        None if std::io::stdout().is_terminal() => Format::Table,
        None => Format::Json,
    };
    if format == Format::Table {
        let _ = e.print();
        return ExitCode::from(1);
    }
    // The subcommand (and its subcommand), when the words before the error name them.
    let words: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let root = <Cli as clap::CommandFactory>::command();
    let name = match words
        .first()
        .and_then(|w| root.get_subcommands().find(|c| c.get_name() == *w))
    {
        Some(c) => match words
            .get(1)
            .and_then(|w| c.get_subcommands().find(|s| s.get_name() == *w))
        {
            Some(s) => format!("{} {}", c.get_name(), s.get_name()),
            None => c.get_name().to_owned(),
        },
        None => "pgdba".to_owned(),
    };
    let message = e.render().to_string();
    let message = message.trim().trim_start_matches("error: ").to_owned();
    let outcome = commands::Failure {
        code: commands::codes::USAGE,
        message,
        hint: Some("see `pgdba --help` and `pgdba <command> --help`".to_owned()),
        data: serde_json::Value::Null,
    }
    .into_outcome();
    print(&name, format, &outcome);
    ExitCode::from(1)
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
