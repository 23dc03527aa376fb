//! The one `winsignal` binary: every capability is a subcommand.

/// Every line the binary prints goes through [`output::terminal_safe`]: data (an account name, a file
/// name, an error quoting a cell) can hold control sequences that would retitle or clear the terminal.
/// These shadow the standard macros in every module declared below.
macro_rules! println {
    () => {
        $crate::output::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}

/// `eprintln!` through [`output::terminal_safe`] (see `println!` above).
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::output::eprint_line(format_args!($($arg)*))
    };
}

mod accounts;
mod audit;
mod behaviours;
mod demo;
mod discover;
mod export;
mod features;
mod feedback;
mod forecast;
mod models;
mod monitor;
mod output;
mod parquet_out;
mod progress;
mod report;
mod reps;
mod review;
mod scoring;
mod train_export;
mod users;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use winsignal_core::{Kind, Ts};
use winsignal_ingest::{Format, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead};

/// mimalloc: ingest and replay allocate and free millions of small strings, often across threads, where
/// it is about 1.5× faster than the system allocator (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// winsignal finds the sales behaviours that go with winning deals, closing faster and closing bigger.
///
/// Data lives in a workspace directory (--data, default ./winsignal-data, or WINSIGNAL_DATA) holding the
/// embedded store; no database server is needed (`winsignal serve` offers the workspace over HTTP).
/// Start with `winsignal demo`.
#[derive(Parser)]
#[command(name = "winsignal", version, about, long_about, max_term_width = 110)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Workspace directory holding the embedded store.
    #[arg(
        long,
        global = true,
        env = "WINSIGNAL_DATA",
        default_value = "./winsignal-data",
        value_name = "DIR"
    )]
    pub data: PathBuf,
    /// No progress bars or informational messages (results and errors still print).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Load a file or folder into the store: canonical CSV/JSONL, Salesforce exports, Segment messages,
    /// or any CSV through a mapping file.
    ///
    /// Every row is accepted or quarantined with its reasons; a load is atomic (all files of one
    /// invocation commit together or not at all) and idempotent (unchanged rows add nothing). Every
    /// row is compared with the store, also in a file loaded before (a changed mapping, Salesforce
    /// config or clock reads it anew); an id is taken from its first row in an ingest, later rows
    /// giving it other values are quarantined. Waits up to WINSIGNAL_LOCK_WAIT seconds (default 30)
    /// for another process writing the workspace.
    Ingest(IngestArgs),
    /// What came in, what was refused and why, identity match rates, orphans and schema drift.
    Quality {
        /// Print the report as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Where a record came from: every version with its source, load, file, line and content hash.
    Trace {
        /// Record kind: account, contact, rep, opportunity, activity, product_event, marketing_touch,
        /// support_ticket, transcript, stage_history, opportunity_contact, product_user.
        kind: String,
        /// The record's id (Salesforce ids in either 15- or 18-character form).
        id: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Generate a realistic demo company, ingest it into the workspace, find what wins, train the win
    /// model, and show the result: what came in, the top findings, the open deals most at risk and one
    /// rep's coaching card; writes <DATA>/report.html.
    ///
    /// The files are written under <DATA>/demo-input in the Salesforce, Segment and canonical formats,
    /// so every connector runs. Re-running replaces an earlier demo workspace.
    Demo(demo::DemoArgs),
    /// Every opportunity at every landmark (stage entries, fixed ages) with its behaviours, features,
    /// controls and outcome, computed only from events known before the landmark.
    ///
    /// Without --json or --out, prints how many snapshots were computed and each behaviour's adoption.
    Snapshots(features::SnapshotsArgs),
    /// The behaviour catalog: list, show one definition, check a catalog file, or suggest a starting
    /// catalog from the workspace's attributes.
    Behaviours {
        #[command(subcommand)]
        command: features::BehavioursCommand,
    },
    /// The events (with weights) and source rows behind one feature value of one opportunity.
    ExplainFeature(features::ExplainArgs),
    /// The resolved data the engine computes from (activities, product events, touches, tickets, contacts,
    /// opportunities, landmarks) as Parquet tables.
    Export(export::ExportArgs),
    /// The knowledge graph around an entity.
    Graph {
        #[command(subcommand)]
        command: features::GraphCommand,
    },
    /// Which behaviours go with winning, closing faster and closing bigger: effects adjusted for deal mix
    /// with cluster-robust confidence intervals and false-discovery control, at every landmark.
    ///
    /// For each behaviour (and continuous feature) at each landmark: raw rates, a logistic regression of
    /// won/lost (odds ratio and average marginal effect), a Cox model of time to close-won (hazard ratio,
    /// Kaplan-Meier medians) and a regression of log amount among won deals (percent change), each on the
    /// catalog's controls, with standard errors clustered by rep and Benjamini-Hochberg q-values across
    /// every test. Too little data gives "not enough data", never a number. Methods: docs/methodology.md.
    Discover(discover::DiscoverArgs),
    /// Fit the win model, evaluate it on a time-based holdout, and save it as a versioned model.
    ///
    /// An explainable boosting machine (one learned shape per behaviour, feature and control, plus a few
    /// detected pairs) on every closed deal's snapshots, trained on deals closed before a cutoff,
    /// calibration checked (and corrected if needed) on the latest training deals, and tested on the deals
    /// closed after the cutoff against stage-only win rates and a regularised logistic regression. The
    /// same data and seed give a byte-identical model (its id is the hash of its bytes).
    Train(scoring::TrainArgs),
    /// Score every open deal: P(win), the factors behind it, the expected close window and the
    /// next-best actions.
    Score(scoring::ScoreArgs),
    /// Bookings per month or quarter from the deals themselves: won so far, the open deals' expected
    /// part (P(win) × the chance of closing within the period × amount), the deals to come, a P10–P90
    /// range from simulation, each deal's share, beside the stage-weighted pipeline. `--backtest`
    /// checks it on the workspace's own history, point in time, week by week (docs/forecast.md).
    Forecast(forecast::ForecastArgs),
    /// One deal's score explained: every factor exactly, next-best actions with evidence and people to
    /// involve, coaching prompts, and the events and source rows behind each factor.
    Explain(scoring::ExplainArgs),
    /// Rep scorecards: win rate, days to close and deal size adjusted for deal mix and pooled toward the
    /// average rep, adoption of the behaviours that go with winning against the team and the best
    /// quarter of reps, and coaching priorities ranked by the wins they could add. Methods:
    /// docs/methodology.md ("Rep scorecards").
    Reps(reps::RepsArgs),
    /// Accounts without an open deal ranked for outreach (`--prioritise`): lookalike fit, recent
    /// engagement and related customers, with the reasons in plain words.
    Accounts(accounts::AccountsArgs),
    /// Discovery, the win model and the reps as one self-contained HTML page (no network needed to
    /// view it): data summary and quality warnings, the behaviour scorecard, a forest plot of adjusted
    /// effects, Kaplan-Meier curves, adoption over time and by rep, the latest win model's quality
    /// (holdout metrics, reliability), the open deals most at risk, rep scorecards, and the
    /// methodology in plain words.
    Report(report::ReportArgs),
    /// The win models and their stages (candidate, approved, active, retired): approve (by someone
    /// other than the trainer), activate after the gate, roll back, retire, the policy for retrained
    /// models, and which model was active at a time (docs/governance.md).
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// The review queue: score changes that matter (a large move on a large deal, a next action for a
    /// strategic account, by the rules set here) wait for a person to accept, edit or reject them, with
    /// a reason code; each decision is recorded with the model version and the evidence
    /// (docs/governance.md).
    Review {
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
    /// What reps said of the next-best actions ("done", "not relevant", given in the dashboard or the
    /// API), summed per behaviour; or every piece on one deal.
    Feedback(feedback::FeedbackArgs),
    /// Monitoring: whether recent deals still look like those the win model was trained on (`monitor
    /// drift`: each feature, the score and each term's contribution per window, with a
    /// sample-size-aware test), how the model does on outcomes, estimated before they arrive
    /// (`monitor performance`), and alerts from both for webhooks and metrics (`monitor check`,
    /// `monitor alerts`).
    Monitor {
        #[command(subcommand)]
        command: monitor::MonitorCommand,
    },
    /// The audit log: every load, model trained, model stage change, review decision, policy, user
    /// and token change, who made it and when, append-only and hash-chained; `audit verify` finds any
    /// entry changed, removed or moved.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Who may use the workspace's API: add users with a role (admin, revops, manager, rep), make and
    /// revoke their tokens, list them. Tokens are shown once and stored hashed.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Where `winsignal serve` sends score changes: a JSON receiver, Slack, Salesforce or Dynamics 365,
    /// on a trigger (every change, a drop of N points, a stage entered without a proven behaviour, a
    /// deal idle for N days),
    /// signed with HMAC-SHA256 and delivered at least once. Add, remove, list.
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Serve the workspace over HTTP: events in (`POST /v1/events`, Segment's API; the same checks as
    /// `ingest`), the open deals' scores kept up to date as events arrive, the read API (deals, history,
    /// lineage, findings, reps, accounts, models and their steps, the review queue, feedback on
    /// actions, quality; OpenAPI at /openapi.json), score changes
    /// streamed and sent to the webhooks of `winsignal webhooks`, and the dashboard at /. Every API
    /// request needs a token from `winsignal users` and is answered within its role's scope. Prints the
    /// address it listens on; stops on Ctrl-C or SIGTERM after the requests in flight. docs/api.md.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address and port to listen on (port 0: any free port; the line printed says which).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// The largest request body taken, in bytes (a larger one is refused with 413 `too_large`).
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    max_body: usize,
    #[command(flatten)]
    catalog: features::CatalogArg,
    /// Which time scores are as of: `data`, the end of the data (as `winsignal score` scores; for an
    /// export or the demo, whose data stop in the past), or `wall`, the wall clock (for a workspace fed
    /// live: deals age and go idle while nothing happens to them).
    #[arg(long, default_value = "data", value_name = "data|wall")]
    clock: winsignal_workspace::live::Clock,
    /// How often every open deal is rescored as of the clock, besides the deals events touch: deals
    /// nothing touched age, and a `stalled:N` webhook is sent each deal that crosses N days idle. A
    /// number with ms, s, m, h or d (e.g. 30s, 15m, 1h).
    #[arg(long, default_value = "15m", value_name = "DURATION", value_parser = parse_every)]
    rescore_every: std::time::Duration,
    /// Run the monitoring check (`winsignal monitor check`: live performance and drift of the latest
    /// window) this often, recording alerts for webhooks with `--on alert` and the figures for
    /// `/metrics` (e.g. 1h). Off unless given; the first check runs once the service is ready.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    monitor_every: Option<std::time::Duration>,
    /// Days in the window the monitoring check compares with the training data (at least 1).
    #[arg(long, default_value_t = 30, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    monitor_window: u32,
    /// Retrain the win model this long after the last training (e.g. 15d), as `winsignal train` with
    /// the active model's own catalog (or `--catalog`, if given), recorded as by `rule:schedule`. The model is a candidate:
    /// it goes live only when approved and activated, or by the auto-approve rule (`models policy`).
    /// Off unless given.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    retrain_every: Option<std::time::Duration>,
}

/// `500ms`, `30s`, `15m`, `1h`, `15d`: at least 100 ms.
fn parse_every(text: &str) -> Result<std::time::Duration, String> {
    let expected = || format!("{text:?}: expected a number with ms, s, m, h or d, e.g. 30s or 15m");
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((t, ""), |i| t.split_at(i));
    let n: f64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(expected()),
    };
    if !seconds.is_finite() || seconds < 0.1 {
        return Err(format!("{text:?}: at least 100ms"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[derive(Args)]
struct IngestArgs {
    /// A file, or a folder (of Salesforce export CSVs, or of canonical files named after their kind).
    path: PathBuf,
    /// Connector; guessed from the path when omitted (a folder with Account.csv etc. is Salesforce,
    /// anything else canonical). Segment files need `--format segment`.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Record kind of a canonical file whose name does not say it (e.g. support_tickets).
    #[arg(long, value_parser = parse_kind)]
    kind: Option<Kind>,
    /// A TOML mapping file describing a CSV in any layout (see docs/formats.md and examples/mappings/).
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Salesforce only: TOML mapping custom fields onto canonical fields, e.g.
    /// `[fields.Account] Segment__c = "segment"`, and optionally `exported_at = "2024-06-01T00:00:00Z"`
    /// (when the export was taken: an Event ending after it had not been held yet).
    #[arg(long, value_name = "FILE")]
    salesforce_config: Option<PathBuf>,
    /// Source name for provenance and schema drift (default: format and kind, e.g. canonical:activities).
    #[arg(long)]
    source: Option<String>,
    /// Print what was loaded as JSON (warnings under `loads[].warnings`).
    #[arg(long)]
    json: bool,
    /// Fail (exit status 1, nothing written) when a load has a warning: a field whose problems
    /// quarantined at least 10% of the file's rows, or at least 10% of the deals of one outcome
    /// quarantined. Without it the warnings are printed on stderr and the load is kept.
    #[arg(long)]
    strict: bool,
}

fn parse_format(s: &str) -> std::result::Result<Format, String> {
    s.parse()
}

fn parse_kind(s: &str) -> std::result::Result<Kind, String> {
    s.parse::<Kind>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    // The server logs each request and each commit (fields, never a token or a body); other commands
    // only warnings.
    let default = match cli.command {
        Command::Serve(_) => "warn,winsignal_server=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WINSIGNAL_LOG")
        .unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: a log file or journal gets plain `key=value` fields.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `winsignal … | head` closes stdout early; stop quietly (status 141, as for SIGPIPE) instead of
/// reporting a panic.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn open_store(global: &Global) -> Result<EmbeddedStore> {
    // How long a write waits for another process writing the same workspace (default 30 s).
    let lock_wait = match std::env::var("WINSIGNAL_LOCK_WAIT") {
        Ok(v) => {
            let seconds: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .with_context(|| {
                    format!(
                        "WINSIGNAL_LOCK_WAIT: expected a number of seconds (e.g. 30), found {v:?}"
                    )
                })?;
            Some(std::time::Duration::from_secs_f64(seconds))
        }
        Err(_) => None,
    };
    winsignal_workspace::workspace::open(&global.data, lock_wait)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(args) => {
            let store = open_store(&cli.global)?;
            let req = IngestRequest {
                path: args.path,
                format: args.format,
                kind: args.kind,
                mapping: args.mapping,
                salesforce_config: args.salesforce_config,
                source: args.source,
                now: Ts::now(),
                strict: args.strict,
                origin: None,
            };
            let mut bar = progress::Bar::new(cli.global.quiet);
            let report = winsignal_workspace::audit::ingest(
                &store,
                &req,
                &winsignal_workspace::audit::local_actor(),
                &mut |p| bar.update(p),
            )?;
            bar.finish();
            if args.json {
                output::print_json(&report)?;
            } else {
                output::print_ingest(&report);
            }
            output::warn_ingest(&report);
            Ok(())
        }
        Command::Quality { json } => {
            let store = open_store(&cli.global)?;
            let report = winsignal_ingest::quality::report(&store)?;
            if json {
                output::print_json(&report)
            } else {
                output::print_quality(&report);
                Ok(())
            }
        }
        Command::Trace { kind, id, json } => {
            let kind: Kind = kind.parse()?;
            let store = open_store(&cli.global)?;
            let mut versions = store.versions(kind, &id)?;
            if versions.is_empty() {
                let long = winsignal_core::sfdc::to_18(&id);
                if long != id {
                    versions = store.versions(kind, &long)?;
                }
            }
            if versions.is_empty() {
                bail!(
                    "no {} with id {id:?} in {}",
                    kind.singular(),
                    cli.global.data.display()
                );
            }
            let loads = store.loads()?;
            if json {
                output::print_json(&output::trace_json(&versions, &loads))
            } else {
                output::print_trace(kind, &versions, &loads);
                Ok(())
            }
        }
        Command::Demo(args) => demo::run(&cli.global.data, cli.global.quiet, &args),
        Command::Snapshots(args) => {
            features::run_snapshots(&cli.global, &open_store(&cli.global)?, &args)
        }
        Command::Behaviours {
            command: features::BehavioursCommand::Suggest(args),
        } => behaviours::run_suggest(&cli.global, &open_store(&cli.global)?, &args),
        Command::Behaviours { command } => features::run_behaviours(&command),
        Command::ExplainFeature(args) => {
            features::run_explain(&cli.global, &open_store(&cli.global)?, &args)
        }
        Command::Export(args) => export::run(&cli.global, &open_store(&cli.global)?, &args),
        Command::Graph { command } => {
            features::run_graph(&cli.global, &open_store(&cli.global)?, &command)
        }
        Command::Discover(args) => discover::run(&cli.global, &open_store(&cli.global)?, &args),
        Command::Train(args) => {
            scoring::run_train(&cli.global, &mut open_store(&cli.global)?, &args)
        }
        Command::Score(args) => scoring::run_score(&cli.global, &open_store(&cli.global)?, &args),
        Command::Forecast(args) => forecast::run(&cli.global, &open_store(&cli.global)?, &args),
        Command::Explain(args) => {
            scoring::run_explain(&cli.global, &open_store(&cli.global)?, &args)
        }
        Command::Reps(args) => reps::run(&cli.global, &open_store(&cli.global)?, &args),
        Command::Accounts(args) => accounts::run(&cli.global, &open_store(&cli.global)?, &args),
        Command::Report(args) => report::run(&cli.global, &open_store(&cli.global)?, &args),
        Command::Audit { command } => audit::run(&cli.global, command),
        Command::Models { command } => models::run(&cli.global, &open_store(&cli.global)?, command),
        Command::Review { command } => review::run(&open_store(&cli.global)?, command),
        Command::Feedback(args) => feedback::run(&open_store(&cli.global)?, args),
        Command::Monitor { command } => {
            monitor::run(&cli.global, &open_store(&cli.global)?, command)
        }
        Command::Users { command } => users::run(&cli.global, command),
        Command::Webhooks { command } => webhooks::run(&cli.global, command),
        Command::Serve(args) => serve(&cli.global, &args),
    }
}

/// `winsignal serve`: the listener is bound before anything is loaded, so the printed address answers
/// `/healthz` at once and `/readyz` once the workspace is loaded.
fn serve(global: &Global, args: &ServeArgs) -> Result<()> {
    // A catalog that cannot be read stops the start, not the first findings request.
    let catalog = args.catalog.load()?;
    let store = open_store(global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = winsignal_server::bound(&listener)?;
        // The one line a caller (a script, a test) reads to find the port.
        println!("listening on http://{addr}");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        let retrain_catalog = args.catalog.catalog.is_some().then(|| catalog.clone());
        let config = winsignal_server::Config {
            data: global.data.clone(),
            max_body: args.max_body,
            catalog,
            clock: args.clock,
            rescore_every: args.rescore_every,
            monitor_every: args.monitor_every,
            monitor_window_days: args.monitor_window,
            retrain_every: args.retrain_every,
            retrain_catalog,
        };
        winsignal_server::serve(store, config, listener, shutdown_signal()).await
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
