//! shipit: build a static Linux binary, package it, render its systemd unit and ship it.
//!
//! The modules follow the pipeline: [`config`] → [`build`] → [`package`] → [`unit`] →
//! [`remote`] → [`hosts`] → [`rollout`]; [`ops`], [`exec`] and [`logs`] work with what is
//! deployed; [`sandbox`] boots local hosts to rehearse deploys on; [`generate`] describes the
//! same service for Docker, Kubernetes and supervisord. ARCHITECTURE.md has the map.

pub mod actions;
pub mod build;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod env_file;
pub mod error;
pub mod events;
pub mod exec;
pub mod generate;
pub mod hosts;
pub mod init;
pub mod logs;
#[cfg(test)]
mod module_graph;
pub mod names;
pub mod notify;
pub mod ops;
pub mod package;
pub mod paths;
pub mod process;
pub mod project;
pub mod remote;
pub mod rollout;
pub mod sandbox;
// Public for the integration tests, which shellcheck each script (or report that they cannot).
#[doc(hidden)]
pub mod scripts_check;
pub mod service_run;
pub mod shell;
pub mod systemd;
pub mod template;
pub mod timings;
pub mod ui;
pub mod unit;
pub mod validate;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command, UnitCommand};

/// Entry point used by `main.rs`: parse, run, and turn an error into its documented exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(error::PassThrough(status)) = error::find(&err) {
                return ExitCode::from(*status);
            }
            error::report(&err);
            ExitCode::from(
                error::category_of(&err).map_or(error::EXIT_INTERNAL, error::Category::exit_code),
            )
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let ui = ui::Ui::new(cli.global.quiet);
    ui::set_verbose(cli.global.verbose);
    // The commands without a project first; every other one reads shipit.toml, once.
    match &cli.command {
        Command::Init(args) => return init::run(&cli.global.path, &args.options(), &ui),
        Command::Sandbox(command) => return sandbox::run(&command.request(), &ui),
        Command::Completions(args) => {
            let mut cmd = Cli::command();
            clap_complete::generate(
                args.shell.generator(),
                &mut cmd,
                "shipit",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let config = config::load(
        &cli.global.path,
        cli.global.config.as_deref(),
        cli.global.environment.as_deref(),
    )?;
    match &cli.command {
        Command::Build(args) => {
            let archive = package::build_and_package(&config, &args.options(), &ui)?;
            println!("{}", archive.display());
            Ok(())
        }
        Command::Deploy(args) => rollout::run(&config, &args.request(&config)?, &ui),
        Command::Status(args) => ops::status::run(&config, &args.request(&config)?, &ui),
        Command::Diff(args) => ops::diff::run(&config, &args.request(&config)?, &ui),
        Command::Logs(args) => logs::run(&config, &args.request(&config)?, &ui),
        Command::Exec(args) => exec::run(&config, &args.request(&config)?, &ui),
        Command::Releases(args) => ops::releases::run(&config, &args.request(&config)?, &ui),
        Command::History(args) => ops::history::run(&config, &args.request(&config)?, &ui),
        Command::Rollback(args) => ops::rollback::run(&config, &args.request(&config)?, &ui),
        Command::Lock(command) => ops::lock::run(&config, &command.request(&config)?, &ui),
        Command::Config(args) => {
            let shown = if args.json {
                config::show_json(&config)
            } else {
                config::show_text(&config)
            };
            print!("{shown}");
            Ok(())
        }
        Command::Unit(UnitCommand::Generate(args)) => unit::generate(&config, &args.options(), &ui),
        Command::Generate(command) => {
            let (what, output) = command.what();
            generate::run(&config, what, output, &ui)
        }
        Command::Init(_) | Command::Sandbox(_) | Command::Completions(_) | Command::Man => {
            unreachable!("handled before reading shipit.toml")
        }
    }
}
