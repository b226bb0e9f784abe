//! `glint`: the command line for Glint. It parses arguments and calls the node library
//! (`glint serve`), the developer loop (`new`, `build`, `run`) or the admin API
//! (everything else).
//!
//! Each group of commands is a module that holds its arguments and its handler; this
//! file holds only the global flags, the list of groups and the dispatch to them.

mod client;
mod dev;
mod env;
mod execute;
mod keys;
mod kv;
mod lifecycle;
mod login;
mod logs;
mod metrics;
mod output;
mod profiles;
mod project;
mod remote;
mod scaffold;
mod secret;
mod serve;
mod spin;
mod status;
mod tenants;
mod toolchain;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use client::{Client, Connect};
use output::Format;

#[derive(Parser)]
#[command(name = "glint", version, about = "Glint: WebAssembly functions at the edge", long_about = None)]
struct Cli {
    /// Admin API of the node to talk to [default: the profile's, else http://127.0.0.1:9090]
    #[arg(long, global = true, env = "GLINT_API_URL")]
    url: Option<String>,
    /// API key [default: the profile's, else the local node's admin-key file]
    #[arg(long, global = true, env = "GLINT_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Extra CA certificate (PEM) to trust, for a node with a self-signed certificate.
    #[arg(long, global = true, env = "GLINT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// A profile saved by `glint login`.
    #[arg(long, global = true, env = "GLINT_PROFILE")]
    profile: Option<String>,
    /// Output format for listings.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

// `glint`'s commands, in the order `glint --help` lists them. A group of several
// top-level commands is flattened in; every other group is one command, whose help text
// sits on the group's type. (Plain comments: clap turns doc comments here into help.)
#[derive(Subcommand)]
enum Command {
    Serve(Box<serve::ServeArgs>),
    // new, build, run
    #[command(flatten)]
    Dev(dev::DevCommand),
    // deploy, list, info, delete, versions, alias, rollback, download
    #[command(flatten)]
    Function(lifecycle::FunctionCommand),
    #[command(subcommand)]
    Env(env::EnvCommand),
    #[command(subcommand)]
    Kv(kv::KvCommand),
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    Logs(logs::LogsArgs),
    Status(status::StatusArgs),
    Nodes(status::NodesArgs),
    Regions(status::RegionsArgs),
    Metrics(metrics::MetricsArgs),
    Execute(execute::ExecuteArgs),
    Login(login::LoginArgs),
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  glint completions bash > /etc/bash_completion.d/glint")]
    Completions {
        shell: clap_complete::Shell,
    },
    #[command(subcommand)]
    Remote(remote::RemoteCommand),
}

/// The command tree, where a subcommand without examples of its own shows its parent's,
/// so every `--help` ends with an example.
fn command() -> clap::Command {
    fn inherit(cmd: clap::Command, parent: Option<clap::builder::StyledStr>) -> clap::Command {
        let own = cmd.get_after_help().cloned();
        let examples = own.clone().or(parent);
        let cmd = match (&own, &examples) {
            (None, Some(e)) => cmd.after_help(e.clone()),
            _ => cmd,
        };
        cmd.mut_subcommands(|sub| inherit(sub, examples.clone()))
    }
    inherit(Cli::command(), None)
}

/// mimalloc: the request path allocates and frees many small objects across threads
/// (hyper's, wasmtime's, the capabilities'), which glibc's malloc served slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Like other command-line tools, end quietly when stdout's reader goes away
    // (`glint kv list cache | head`) instead of panicking in `println!`. Not for the
    // commands that run a node: there a client hanging up must not end the process.
    #[cfg(unix)]
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Dev(dev::DevCommand::Run { .. })
    ) {
        // SAFETY: called once, before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let format = cli.output;
    let (login_url, login_key, login_ca) = (cli.url.clone(), cli.key.clone(), cli.ca_cert.clone());
    let target = profiles::resolve(cli.url, cli.key, cli.ca_cert, cli.profile.as_deref());
    let connect = || -> Result<Client> {
        let target = target.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Client::new(&target.url, target.key.clone(), target.ca_cert.as_deref())
    };
    let connect: Connect = &connect;
    match cli.command {
        Command::Serve(args) => serve::run(*args).await?,
        Command::Dev(command) => dev::run(command).await?,
        Command::Function(command) => lifecycle::run(command, connect, format).await?,
        Command::Env(command) => env::run(command, connect, format).await?,
        Command::Kv(command) => kv::run(command, connect, format).await?,
        Command::Secret(command) => secret::run(command, connect, format).await?,
        Command::Logs(args) => logs::run(args, connect, format).await?,
        Command::Status(args) => status::run(args, connect, format).await?,
        Command::Nodes(_) => status::nodes(connect, format).await?,
        Command::Regions(_) => status::regions(connect, format).await?,
        Command::Metrics(args) => metrics::run(args, connect, format).await?,
        Command::Execute(args) => return execute::run(args, connect).await,
        Command::Login(_) => login::run(login_url, login_key, login_ca, cli.profile).await?,
        Command::Keys(command) => keys::run(command, connect, format).await?,
        Command::Tenants(command) => tenants::run(command, connect, format).await?,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "glint", &mut std::io::stdout());
        }
        Command::Remote(command) => return remote::run(command, connect, format).await,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn every_command_shows_an_example() {
        fn check(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(help.contains("Example"), "`{path} --help` has no example");
                check(sub, &path);
            }
        }
        check(&super::command(), "glint");
    }
}
