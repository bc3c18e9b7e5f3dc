//! The set-up half of the Compute side: a [`Logger`] holds the validated settings, the open log
//! endpoints and what the host says about this instance; [`Logger::from_config_store`] makes one
//! from a Config Store (the builder, in code, is in `builder`). Also the opt-in helpers that touch
//! process-wide state ([`Logger::install_panic_hook`], [`init_log`]).
//!
//! Invariants: nothing here installs a global logger or a panic hook unless asked; lines go to
//! named endpoints through their own handles, so an app that set up `log-fastly` keeps it; a
//! logging problem is reported on stderr and never stops the response.

use crate::record::PanicRecord;
use crate::settings::{Settings, Target};
use crate::timefmt::Micros;
use fastly::config_store::ConfigStore;
use fastly::log::Endpoint;
use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::rc::Rc;
use std::time::SystemTime;

/// A setting the [`Builder`](crate::Builder) refused, or an endpoint the Compute host refused.
///
/// Its text names the setting and says what was wrong:
///
/// ```no_run
/// # fn example() {
/// match edgelog::Logger::builder().sample_rate(1.5).build() {
///     Ok(_) => unreachable!(),
///     Err(e) => {
///         assert_eq!(e.setting(), "sample_rate");
///         assert_eq!(
///             e.to_string(),
///             "edgelog setting sample_rate: 1.5 is not a number from 0.0 to 1.0"
///         );
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    setting: &'static str,
    reason: String,
}

impl Error {
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Error {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting that was refused: `endpoint`, `format`, `sample_rate`, `error_endpoint`,
    /// `panic_endpoint` or `redact_query`.
    ///
    /// ```no_run
    /// # fn example() {
    /// if let Err(e) = edgelog::Logger::builder().format("%h %Q").build() {
    ///     assert_eq!(e.setting(), "format");
    /// }
    /// # }
    /// ```
    pub fn setting(&self) -> &str {
        self.setting
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "edgelog setting {}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for Error {}

/// Writes one access line per request to named log endpoints.
///
/// Make one per request (Compute runs each request in a fresh instance), with
/// [`Logger::builder`] or [`Logger::from_config_store`], then call [`Logger::start`] with the
/// client request. Cloning is cheap and clones share the open endpoints.
///
/// ```no_run
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use edgelog::Logger;
///
/// let logger = Logger::builder()
///     .endpoint("collector")
///     .sample_rate(0.5)
///     .error_endpoint("errors")
///     .build()?;
/// let req = fastly::Request::from_client();
/// let record = logger.start(&req);
/// let resp = req.send("origin")?;
/// record.send_to_client(resp);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Logger {
    pub(crate) inner: Rc<Inner>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("Logger")
            .field("endpoints", &s.endpoints)
            .field("sample_rate", &s.sample_rate)
            .field("error_endpoint", &s.error_endpoint)
            .field("panic_endpoint", &s.panic_endpoint)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    /// One per named target in the settings; `None` where the host refused the name.
    endpoints: Vec<(String, Option<RefCell<Endpoint>>)>,
    pub(crate) instance: Instance,
}

/// What the Compute host says about this instance, read once per logger and shared by its
/// records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Instance {
    pub(crate) trace_id: Rc<str>,
    pub(crate) pop: Rc<str>,
    pub(crate) cache_host: Rc<str>,
    pub(crate) service_id: Rc<str>,
    pub(crate) service_version: Rc<str>,
    pub(crate) server_region: Rc<str>,
}

impl Instance {
    fn from_env() -> Self {
        let env = |name: &str| Rc::from(std::env::var(name).unwrap_or_default());
        Instance {
            trace_id: env("FASTLY_TRACE_ID"),
            pop: env("FASTLY_POP"),
            cache_host: env("FASTLY_HOSTNAME"),
            service_id: env("FASTLY_SERVICE_ID"),
            service_version: env("FASTLY_SERVICE_VERSION"),
            server_region: env("FASTLY_REGION"),
        }
    }
}

impl Logger {
    /// Settings from the Config Store named `store`, under the keys `endpoints` (comma list),
    /// `format`, `sample_rate`, `anonymize_ip`, `redact_query` (comma list), `error_endpoint`
    /// and `panic_endpoint`.
    ///
    /// Never fails: a missing store or key means the default, and a bad value is reported on
    /// stderr (store, key, value and why) and its default used, so a typo in the store degrades
    /// logging, never serving.
    ///
    /// ```no_run
    /// # fn example() {
    /// let logger = edgelog::Logger::from_config_store("my_app_logging");
    /// # }
    /// ```
    pub fn from_config_store(store: &str) -> Logger {
        let opened = ConfigStore::try_open(store).ok();
        let (settings, problems) =
            Settings::load(|key| opened.as_ref().and_then(|s| s.try_get(key).ok().flatten()));
        for p in problems {
            eprintln!("edgelog: config store {store:?}: {p}");
        }
        let (logger, refused) = Logger::open(settings);
        for (name, e) in refused {
            eprintln!("edgelog: log endpoint {name:?} is unusable: {e}");
        }
        logger
    }

    /// Opens the named endpoints; returns the logger and the names the host refused.
    pub(crate) fn open(settings: Settings) -> (Logger, Vec<(String, fastly::log::LogError)>) {
        let mut names: Vec<&str> = settings.endpoints.iter().map(Target::name).collect();
        names.extend(settings.error_endpoint.as_ref().map(Target::name));
        names.push(settings.panic_endpoint.name());
        let mut endpoints: Vec<(String, Option<RefCell<Endpoint>>)> = Vec::new();
        let mut refused = Vec::new();
        for name in names {
            if name == "stdout" || name == "stderr" || endpoints.iter().any(|(n, _)| n == name) {
                continue;
            }
            let opened = match Endpoint::try_from_name(name) {
                Ok(endpoint) => Some(RefCell::new(endpoint)),
                Err(e) => {
                    refused.push((name.to_string(), e));
                    None
                }
            };
            endpoints.push((name.to_string(), opened));
        }
        let inner = Inner {
            settings,
            endpoints,
            instance: Instance::from_env(),
        };
        (
            Logger {
                inner: Rc::new(inner),
            },
            refused,
        )
    }

    /// Writes one line to one target. Problems go to stderr.
    pub(crate) fn write(&self, target: &Target, line: &str) {
        match target {
            Target::Stdout => write_stdio(std::io::stdout().lock(), line),
            Target::Stderr => write_stdio(std::io::stderr().lock(), line),
            Target::Named(name) => {
                let found = self.inner.endpoints.iter().find(|(n, _)| n == name);
                if let Some((_, Some(endpoint))) = found {
                    // One write call is one log line on Fastly.
                    if let Err(e) = endpoint.borrow_mut().write_all(line.as_bytes()) {
                        eprintln!("edgelog: writing to log endpoint {name:?} failed: {e}");
                    }
                }
            }
        }
    }

    /// Sends a JSON line describing any later panic (`"event":"panic"`, the message, where it
    /// happened and the request id) to the panic endpoint and to stderr. This replaces the
    /// process's panic hook, so it is only done when the app asks.
    ///
    /// ```no_run
    /// let logger = edgelog::Logger::builder().panic_endpoint("crashes").build().unwrap();
    /// logger.install_panic_hook();
    /// ```
    pub fn install_panic_hook(&self) {
        let target = self.inner.settings.panic_endpoint.clone();
        let trace_id = self.inner.instance.trace_id.to_string();
        std::panic::set_hook(Box::new(move |info| {
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic".to_string()
            };
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let now = Micros::from_system_time(SystemTime::now());
            let line = PanicRecord::new(now, &trace_id, &message, location).line();
            eprintln!("edgelog: panic: {line}");
            match &target {
                Target::Stdout => write_stdio(std::io::stdout().lock(), &line),
                Target::Stderr => {}
                Target::Named(name) => {
                    if let Ok(mut endpoint) = Endpoint::try_from_name(name) {
                        let _ = endpoint.write_all(line.as_bytes());
                    }
                }
            }
        }));
    }

    /// The names of the named endpoints the host accepted.
    #[cfg(all(test, target_arch = "wasm32"))]
    pub(crate) fn usable(&self) -> Vec<&str> {
        self.inner
            .endpoints
            .iter()
            .filter(|(_, e)| e.is_some())
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Makes `log-fastly` the global `log` logger, so the app's own `log::info!` and friends are
/// written to `endpoint` (at `level` and above). Opt in: edgelog itself never needs it, and an
/// app that sets up `log-fastly` its own way can leave this out.
///
/// ```no_run
/// # fn example() -> Result<(), edgelog::Error> {
/// edgelog::init_log("app_messages", log::LevelFilter::Info)?;
/// log::warn!("cache key missing");
/// # Ok(()) }
/// ```
pub fn init_log(endpoint: &str, level: log::LevelFilter) -> Result<(), Error> {
    let target = Endpoint::try_from_name(endpoint)
        .map_err(|e| Error::new("endpoint", format!("the host refused {endpoint:?}: {e}")))?;
    log_fastly::Logger::builder()
        .max_level(level)
        .default_endpoint(target)
        .try_init()
        .map_err(|e| Error::new("endpoint", format!("cannot set the global logger: {e}")))
}

fn write_stdio(mut out: impl Write, line: &str) {
    // One write per line so concurrent writers cannot interleave within a line.
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    if let Err(e) = out.write_all(buf.as_bytes()) {
        eprintln!("edgelog: writing a log line to stdio failed: {e}");
    }
}
