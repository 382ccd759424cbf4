//! The `keyward` command line: the server, its database chores, and a client
//! for the admin API.

mod audit;
mod client;
pub mod keys;
mod limits;
mod output;
mod scan;
mod usage;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    admin::Admin,
    cache::{KeyLookup, LocalOptions},
    config::{Config, DatabaseArgs},
    startup::Application,
    store,
    telemetry::{self, LogFormat},
};

#[derive(Parser, Debug)]
#[command(
    name = "keyward",
    version,
    about = "An API-key authority for microservices"
)]
pub struct Cli {
    /// Log format: json, pretty, or auto (json unless stderr is a terminal).
    #[arg(long, global = true, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax, e.g. `info` or `keyward=debug,info`
    /// (default: RUST_LOG, else `info`).
    #[arg(long, global = true, env = "KEYWARD_LOG")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gRPC server (KeyService, Envoy ext_authz, health, reflection).
    Serve(Config),
    /// Create or upgrade the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Administrative commands that work on the database directly.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage and verify keys through a running server.
    Keys(keys::KeysArgs),
    /// Show the audit trail of admin actions, from a running server.
    Audit(audit::AuditArgs),
    /// Find keyward keys in files, directories or stdin (`-`), offline; exits
    /// 1 when it finds any.
    Scan(scan::ScanArgs),
    /// Check settings without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate what `keyward serve` would start with (its flags, KEYWARD_*
    /// variables and the --config file) without opening the database or any
    /// port: prints one OK line, or the error and exits non-zero.
    Check(Config),
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Write an all-projects admin key straight to the database (migrating it
    /// first if needed) and print only the key on stdout.
    Bootstrap(BootstrapArgs),
}

#[derive(clap::Args, Debug)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Label of the admin key (default: `admin-` and the current UTC time).
    #[arg(long)]
    pub label: Option<String>,
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Client commands print results on stdout; keep their logs quiet.
    let default_filter = match cli.command {
        Command::Keys(_) | Command::Audit(_) | Command::Scan(_) => {
            Some(cli.log.as_deref().unwrap_or("warn"))
        }
        _ => cli.log.as_deref(),
    };
    let telemetry = telemetry::init(cli.log_format, default_filter);
    let code = match run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(config) => {
            let app = Application::build(config).await?;
            app.run_until_stopped(crate::shutdown::signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(database) => {
            let store = store::connect(database.url().expose(), &database.store_options()).await?;
            store.migrate().await.context("migration failed")?;
            eprintln!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(AdminCommand::Bootstrap(args)) => {
            let store =
                store::connect(args.database.url().expose(), &args.database.store_options())
                    .await?;
            store.migrate().await.context("migration failed")?;
            let lookup = std::sync::Arc::new(KeyLookup::local(
                store.clone(),
                &LocalOptions {
                    capacity: 0,
                    ..Default::default()
                },
            ));
            let admin = Admin::new(store, lookup);
            let label = args.label.unwrap_or_else(|| {
                format!("admin-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))
            });
            crate::validate::name("label", &label)?;
            let (secret, key) = admin.bootstrap(label).await?;
            eprintln!(
                "created admin key {} ({}); it is shown once:",
                key.id, key.hint
            );
            println!("{}", secret.expose());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(args) => keys::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Config(ConfigCommand::Check(config)) => {
            println!("{}", config.check()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => scan::run(args).await,
    }
}
