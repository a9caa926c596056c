//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  bottle demo                          see the git-gate at work on Docker
  bottle init                          write a commented bottle.toml here
  bottle --dry-run up demo             print the commands `up demo` would run
  bottle up                            start the only (or the 'default') bottle
  bottle exec demo -- git clone ssh://git@git.example.com:2222/team/app.git
  bottle init --agent claude-code      write a bottle.toml that runs Claude Code
  bottle run -- claude --dangerously-skip-permissions
                                       up, Claude Code in the agent, down when it exits
  bottle ps --format json              list bottles and their containers, as JSON
  bottle status demo                   its containers, uptime, the gate's mirrors' last refresh
  bottle stop demo                     stop bottle 'demo', keeping its mirrors and audit log
  bottle start demo                    start it again (`bottle up demo` does too)
  bottle logs demo --container gate    the gate container's own output
  bottle down demo                     stop and remove bottle 'demo'
  bottle cleanup                       remove this project's stopped bottles and leftovers
  bottle -p web ps                     list the bottles of project 'web'
  bottle cleanup --all --yes           remove every bottle resource on the engine
  bottle render demo --out gate/       write the gate's scripts for inspection
  bottle --plugin libbottle_kube.so --backend kube up demo
                                       print (or apply) the bottle as Kubernetes objects
  bottle plugins                       list backend plugins and any that failed to load

The manifest is -f/--manifest, else BOTTLE_MANIFEST, else the first bottle.toml found in
this directory or a parent. The backend is chosen by --backend, else BOTTLE_BACKEND, else
[settings] backend in bottle.toml, else backend in $XDG_CONFIG_HOME/bottle/config.toml,
else docker.

The project is -p/--project-name, else BOTTLE_PROJECT, else [settings] project, else the
manifest's directory name (Compose's rule: lowercased, only [a-z0-9_-] kept). Resources are
named bottle-<project>-<bottle>-<role> (shortened with a hash past 63 bytes).

--dry-run changes nothing: up, down, stop, start, cleanup, exec and run print the script
they would run; init and render print what they would write; ps prints the listing
commands (not with --format json); logs, status, image build and demo are refused.

Exit codes:
  0    success
  1    a runtime failure (the engine, a file, ...)
  2    a usage or manifest error
  125  exec: the bottle's agent is not running, so the command did not run
  N    exec and run: the command's own exit code (128+N when run is stopped by signal N)";

/// Run an AI coding agent in a sandboxed container whose only ways out are sidecars you
/// control, starting with a git-gate that scans every push for secrets.
#[derive(Debug, Parser)]
#[command(name = "bottle", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    /// The backend to use (docker, podman, dry-run, dry-run-podman, ...).
    #[arg(long, global = true, value_name = "NAME")]
    pub backend: Option<String>,

    /// Shorthand for --backend dry-run: print the commands, change nothing.
    #[arg(long, global = true, conflicts_with = "backend")]
    pub dry_run: bool,

    /// For a backend that prints what it would do unless asked (the kube plugin): do it.
    /// Engines (docker, podman) always do; plugins see it as BOTTLE_APPLY=1.
    #[arg(long, global = true, conflicts_with = "dry_run")]
    pub apply: bool,

    /// The manifest to read [default: BOTTLE_MANIFEST, else the nearest bottle.toml in
    /// this directory or a parent].
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Same as --manifest, before the command only (after it, `logs -f` is --follow).
    #[arg(short = 'f', value_name = "PATH", conflicts_with = "manifest")]
    pub manifest_short: Option<PathBuf>,

    /// The project the bottles belong to: their resources' names and labels carry it, and
    /// every command acts within it (but ps --all and cleanup --all) [default: BOTTLE_PROJECT, else
    /// [settings] project, else the manifest's directory name, normalised as Compose does].
    #[arg(short = 'p', long = "project-name", global = true, value_name = "NAME")]
    pub project_name: Option<String>,

    /// Load a backend plugin from this library (or every *.so in this directory); repeatable.
    /// Also searched: BOTTLE_PLUGIN_PATH (':'-separated) and $XDG_DATA_HOME/bottle/plugins/.
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    pub plugins: Vec<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a bottle: its networks, its git-gate, its agent.
    Up {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
        /// Keep what a failed `up` created, to debug it.
        #[arg(long)]
        keep_on_failure: bool,
    },
    /// Stop and remove a bottle's containers and networks (nothing to remove is fine),
    /// saving its audit log under $XDG_STATE_HOME/bottle/ first.
    Down {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
    },
    /// Stop a bottle's containers and keep them: its networks, the gate's mirrors and the
    /// audit log stay; `bottle start` (or `bottle up`) starts it again.
    Stop {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
    },
    /// Start a stopped (or partly stopped) bottle's containers again, in the order `up`
    /// starts them (the sidecars, then the agent). Needs the manifest.
    Start {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
    },
    /// Show a bottle's containers (state, health, uptime, restarts), the gate's mirrors with
    /// their last refresh, and what to do when it is stopped or incomplete.
    Status {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
        /// `json`: the status as one JSON object.
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Show the bottle's audit log: every decision of its sidecars (what the egress proxy
    /// let through or refused, the gate's verdicts), merged by time. When the bottle is not
    /// up, the log `down` saved last. With --container, one container's own output instead.
    Logs {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
        /// Instead of the audit log, everything this container wrote (its engine logs, standard
        /// output and error), by role: gate, proxy, cred, agent.
        #[arg(long, value_name = "ROLE", conflicts_with_all = ["denied", "follow", "since", "json", "format"])]
        container: Option<String>,
        /// Only refusals.
        #[arg(long)]
        denied: bool,
        /// `json`: the records as JSON lines (the stable schema); `table`: one line each.
        #[command(flatten)]
        format: FormatArgs,
        /// Keep printing new records as they come (Ctrl-C stops).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only records newer than this, e.g. 10m, 2h, 1d.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Check the manifest as `up` would (identity files, host keys, route keys read; nothing
    /// created, no secret printed) and summarise each bottle.
    Validate {
        /// Only this bottle [default: every bottle].
        bottle: Option<String>,
    },
    /// Print the manifest as `up` reads it: defaults filled in, the env_file merged, secrets
    /// hidden (values from the host as their ${VAR} references). TOML, or --format json.
    Config {
        /// Only this bottle [default: every bottle].
        bottle: Option<String>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// List the project's bottles and their containers (and any made by a bottle older than
    /// projects, shown as project '-').
    Ps {
        /// Only this bottle.
        bottle: Option<String>,
        /// Every project's bottles.
        #[arg(long)]
        all: bool,
        /// `json`: the bottles and their containers as a JSON array.
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Remove the project's leftovers: the containers and networks of its bottles that have
    /// nothing running and cannot be resumed (a failed up, an orphan). A complete stopped
    /// bottle (`bottle stop`'s) is kept: name it or pass --all to remove it. `down` takes a
    /// running bottle down.
    Cleanup {
        /// Only this bottle, if nothing of it runs, stopped or not (also one made by a bottle
        /// older than projects).
        #[arg(conflicts_with = "all")]
        bottle: Option<String>,
        /// Every container and network labelled by bottle on the engine: every project's,
        /// running ones included. Asks first on a terminal; elsewhere needs --yes.
        #[arg(long)]
        all: bool,
        /// Do not ask before `--all` removes.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Run a command in a bottle's agent container.
    Exec(ExecArgs),
    /// Bring a bottle up (unless it is up already), run a command in its agent, and take
    /// the bottle down when the command ends, or on Ctrl-C or SIGTERM, if `run` brought it
    /// up (the audit log is saved first). Exits with the command's code.
    Run(RunArgs),
    /// Write the git-gate's rendered scripts for a bottle into a directory, for inspection.
    Render {
        /// The bottle [default: the only one, or 'default'].
        bottle: Option<String>,
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Show the git-gate at work on the local engine (docker, or --backend podman): a local
    /// upstream, a bottle, a clone, a clean push, a push with a secret blocked. Needs
    /// nothing but the engine.
    Demo {
        /// Leave the bottle and its upstream running afterwards (`bottle -p demo down demo`
        /// removes them).
        #[arg(long)]
        keep: bool,
    },
    /// Check what the host must provide for the backend, and print how to fix what is missing.
    Doctor,
    /// Print a shell completion script for bottle on standard output.
    #[command(after_help = COMPLETIONS)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// List the backend plugins found (--plugin, BOTTLE_PLUGIN_PATH, the plugin directory),
    /// with their ABI version and backend name, and why any could not be used.
    Plugins {
        /// `json`: the plugins as JSON.
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Build bottle's images (its sidecars', the agents', the demo's fixtures).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Write a commented example bottle.toml, or one that runs an agent (--agent).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Write a manifest that runs this agent, its bottle named after the manifest's
        /// directory.
        #[arg(long, value_enum, value_name = "AGENT")]
        agent: Option<InitAgent>,
    },
}

/// The agents `bottle init --agent` writes a manifest for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitAgent {
    /// Claude Code (image bottle-claude:latest), its API key kept in a credential route.
    ClaudeCode,
}

/// `bottle image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build images that are missing or whose inputs changed.
    Build {
        /// Which images [default: all].
        #[arg(value_parser = image_names())]
        images: Vec<String>,
        /// Build even when up to date.
        #[arg(long)]
        force: bool,
    },
}

/// `bottle exec`.
#[derive(Debug, Args)]
#[command(after_help = EXEC_HELP)]
pub struct ExecArgs {
    /// The bottle [default: the only one, or 'default']; the command comes after `--`.
    #[arg(value_name = "BOTTLE")]
    pub bottle: Option<String>,
    /// Whether to allocate a terminal.
    #[command(flatten)]
    pub tty: TtyArgs,
    /// User, working directory, environment.
    #[command(flatten)]
    pub options: ExecOptionArgs,
    /// The command and its arguments, after `--` [default: sh].
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

const EXEC_HELP: &str = "\
Everything before `--` is bottle's: the options and the bottle's name. The command comes
after `--`, so `bottle exec ls` means the bottle 'ls'; `bottle exec -- ls` runs ls.

Examples:
  bottle exec -- git status
  bottle exec demo -u root -w /work -e GIT_TRACE=1 -- git fetch

Exits with the command's code; when the bottle's agent is not running, says so and exits
125 (the command did not run; `bottle up` or `bottle start` starts the bottle).";

const COMPLETIONS: &str = "\
Examples:
  bottle completions bash > ~/.local/share/bash-completion/completions/bottle
  bottle completions zsh > ~/.zfunc/_bottle     # with fpath+=(~/.zfunc) in ~/.zshrc
  bottle completions fish > ~/.config/fish/completions/bottle.fish";

/// `-u`, `-w` and `-e` of `exec` and `run`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExecOptionArgs {
    /// Run the command as this user (name or uid, optionally :group) [default: the image's].
    #[arg(short = 'u', long, value_name = "USER", value_parser = non_empty_user)]
    pub user: Option<String>,
    /// Run the command in this directory, absolute [default: the image's].
    #[arg(short = 'w', long, value_name = "DIR", value_parser = absolute_dir)]
    pub workdir: Option<String>,
    /// Set an environment variable for the command; repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
}

impl ExecOptionArgs {
    /// As the backends take them.
    pub fn to_options(&self) -> bottle_core::backend::ExecOptions {
        bottle_core::backend::ExecOptions {
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
        }
    }
}

fn non_empty_user(s: &str) -> Result<String, String> {
    if s.is_empty() || s.starts_with('-') || s.chars().any(char::is_whitespace) {
        return Err("expected a user name or uid, optionally followed by :group".to_owned());
    }
    Ok(s.to_owned())
}

fn absolute_dir(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "'{s}' is not an absolute path; the directory is inside the agent, e.g. /work"
        ));
    }
    Ok(s.to_owned())
}

/// `KEY=VALUE`: a key of letters, digits and `_`, not starting with a digit.
fn env_pair(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!(
            "expected KEY=VALUE; to pass a variable of yours, write -e {s}=\"${s}\""
        ));
    };
    let valid = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "'{key}' is not a variable name: use letters, digits and _, not starting with a digit"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// How a listing is printed: `--format table|json`, `--json` short for `--format json`.
#[derive(Debug, Clone, Args)]
pub struct FormatArgs {
    /// The output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    pub format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl FormatArgs {
    /// Whether JSON is asked for.
    pub fn json(&self) -> bool {
        self.json || self.format == Format::Json
    }
}

/// The values of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    #[value(alias = "text")]
    Table,
    /// For programs.
    Json,
}

/// `bottle run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The bottle, then `--`, then the command [default: the only one, or 'default'].
    #[arg(value_name = "BOTTLE")]
    pub bottle: Option<String>,
    /// Leave the bottle up when the command ends (`bottle down` removes it).
    #[arg(long)]
    pub keep: bool,
    /// Keep what a failed `up` created, to debug it.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Whether to allocate a terminal.
    #[command(flatten)]
    pub tty: TtyArgs,
    /// User, working directory, environment.
    #[command(flatten)]
    pub options: ExecOptionArgs,
    /// The command and its arguments [default: the agent image's command, e.g. `claude`].
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `--tty` and `--no-tty` of `exec` and `run`.
#[derive(Debug, Args)]
pub struct TtyArgs {
    /// Allocate a terminal [default: when stdin and stdout are terminals].
    #[arg(short = 't', long, overrides_with = "no_tty")]
    pub tty: bool,
    /// Never allocate a terminal.
    #[arg(short = 'T', long)]
    pub no_tty: bool,
}

impl TtyArgs {
    /// Whether to allocate a terminal: as asked, else when stdin and stdout are terminals.
    pub fn wanted(&self) -> bool {
        use std::io::IsTerminal;
        if self.no_tty {
            false
        } else {
            self.tty || (std::io::stdin().is_terminal() && std::io::stdout().is_terminal())
        }
    }
}

/// The names `bottle image build` takes: one per image recipe.
fn image_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        bottle_core::images::ALL
            .iter()
            .map(|r| clap::builder::PossibleValue::new(r.name).help(r.about)),
    )
}
