//! Settings given in code: [`Builder`], which checks each one as it is given and opens the
//! endpoints when it is built.

use crate::logger::{Error, Logger};
use crate::settings::{query_names, valid_sample_rate, LineFormat, Settings, Target};

impl Logger {
    /// Settings in code. Without any call, the logger writes JSON lines to the endpoint
    /// `collector`, every request, addresses and query strings as received.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let logger = edgelog::Logger::builder().build()?; // JSON lines to `collector`
    /// # Ok(()) }
    /// ```
    pub fn builder() -> Builder {
        Builder {
            settings: Settings::default(),
            endpoints_set: false,
            error: None,
        }
    }
}

/// Builds a [`Logger`] from settings given in code; [`Builder::build`] checks them all.
///
/// ```no_run
/// # fn example() -> Result<(), edgelog::Error> {
/// let logger = edgelog::Logger::builder()
///     .endpoint("collector")
///     .endpoint("stdout")
///     .format(r#"%h "%r" %>s %b %{tier}n"#)
///     .anonymize_ip(true)
///     .redact_query(["token", "email"])
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct Builder {
    settings: Settings,
    /// Whether `endpoint` was called: the first call replaces the default endpoint.
    endpoints_set: bool,
    /// The first refused setting.
    error: Option<Error>,
}

impl Builder {
    fn refuse(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Adds a log endpoint every logged request is written to: a named endpoint of the
    /// service, or `stdout` / `stderr` (what `fastly log-tail` streams and Viceroy prints).
    /// Call it once per endpoint; the first call replaces the default, `collector`. The first
    /// endpoint also gets panic lines unless [`Builder::panic_endpoint`] says otherwise.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let logger = edgelog::Logger::builder()
    ///     .endpoint("collector")
    ///     .endpoint("stdout")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn endpoint(mut self, name: &str) -> Self {
        match Target::parse(name) {
            Ok(t) => {
                if !self.endpoints_set {
                    self.settings.endpoints.clear();
                    self.settings.panic_endpoint = t.clone();
                    self.endpoints_set = true;
                }
                if !self.settings.endpoints.contains(&t) {
                    self.settings.endpoints.push(t);
                }
            }
            Err(e) => self.refuse(Error::new("endpoint", e)),
        }
        self
    }

    /// The line format: `json` (the default), `clf` (Apache's Common Log Format), or a format
    /// string of Apache placeholders and `%{...}V` VCL expressions, such as
    /// `%h %t "%r" %>s %b %{tier}n` (`%{name}n` is one of the app's own fields).
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let clf = edgelog::Logger::builder().format("clf").build()?;
    /// let vcl = edgelog::Logger::builder()
    ///     .format(r#"%{if(resp.status >= 500, "server error", "ok")}V %U"#)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn format(mut self, spec: &str) -> Self {
        match LineFormat::parse(spec) {
            Ok(f) => self.settings.format = f,
            Err(e) => self.refuse(Error::new("format", e.to_string())),
        }
        self
    }

    /// The fraction of requests logged, 0.0 to 1.0 (default 1.0). Kept or dropped by the
    /// request id, so every endpoint sees the same requests. Errors (5xx, or a request marked
    /// with [`Record::error`](crate::Record::error)) still reach the error endpoint.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let logger = edgelog::Logger::builder()
    ///     .sample_rate(0.01)
    ///     .error_endpoint("errors")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn sample_rate(mut self, rate: f64) -> Self {
        if valid_sample_rate(rate) {
            self.settings.sample_rate = rate;
        } else {
            self.refuse(Error::new(
                "sample_rate",
                format!("{rate} is not a number from 0.0 to 1.0"),
            ));
        }
        self
    }

    /// Logs client addresses with their last octet (IPv4) or last 80 bits (IPv6) zeroed, also
    /// in `Fastly-Client-IP` and `X-Forwarded-For`.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let logger = edgelog::Logger::builder().anonymize_ip(true).build()?;
    /// # Ok(()) }
    /// ```
    pub fn anonymize_ip(mut self, on: bool) -> Self {
        self.settings.anonymize_ip = on;
        self
    }

    /// Query parameters whose values are logged as `REDACTED`, in the URL and the Referer.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// // `/login?user=ann&token=abc` is logged as `/login?user=ann&token=REDACTED`.
    /// let logger = edgelog::Logger::builder().redact_query(["token"]).build()?;
    /// # Ok(()) }
    /// ```
    pub fn redact_query<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        let names: Vec<S> = names.into_iter().collect();
        if names.iter().any(|n| n.as_ref().trim().is_empty()) {
            self.refuse(Error::new("redact_query", "a parameter name is empty"));
        }
        self.settings.redact_query = query_names(names);
        self
    }

    /// An endpoint that also gets the line of every 5xx or failed request, whatever the sample
    /// rate.
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let logger = edgelog::Logger::builder()
    ///     .endpoint("collector")
    ///     .error_endpoint("errors")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn error_endpoint(mut self, name: &str) -> Self {
        match Target::parse(name) {
            Ok(t) => self.settings.error_endpoint = Some(t),
            Err(e) => self.refuse(Error::new("error_endpoint", e)),
        }
        self
    }

    /// The endpoint [`Logger::install_panic_hook`] writes to (default: the first endpoint).
    ///
    /// ```no_run
    /// # fn example() -> Result<(), edgelog::Error> {
    /// let logger = edgelog::Logger::builder().panic_endpoint("crashes").build()?;
    /// logger.install_panic_hook();
    /// # Ok(()) }
    /// ```
    pub fn panic_endpoint(mut self, name: &str) -> Self {
        match Target::parse(name) {
            Ok(t) => self.settings.panic_endpoint = t,
            Err(e) => self.refuse(Error::new("panic_endpoint", e)),
        }
        self
    }

    /// Checks the settings and opens the endpoints. Fails with the first setting refused
    /// (named in the [`Error`]), or an endpoint name the host refuses. On Fastly any
    /// well-formed name opens, including one the service does not have: see
    /// [misspelt endpoint names](https://github.com/edgelog/edgelog/blob/main/docs/edge-library.md#misspelt-endpoint-names-cannot-be-caught-by-the-app).
    ///
    /// ```no_run
    /// # fn example() {
    /// match edgelog::Logger::builder().endpoint("a:b").build() {
    ///     Ok(_) => unreachable!(),
    ///     Err(e) => eprintln!("{e}"), // edgelog setting endpoint: endpoint name "a:b" may not ...
    /// }
    /// # }
    /// ```
    pub fn build(self) -> Result<Logger, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (logger, refused) = Logger::open(self.settings);
        match refused.into_iter().next() {
            Some((name, e)) => Err(Error::new(
                "endpoint",
                format!("the host refused {name:?}: {e}"),
            )),
            None => Ok(logger),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refusals_name_the_setting() {
        let cases: Vec<(Builder, &str, &str)> = vec![
            (
                Logger::builder().endpoint("a:b"),
                "endpoint",
                "may not contain ':'",
            ),
            (
                Logger::builder().endpoint(""),
                "endpoint",
                "empty endpoint name",
            ),
            (
                Logger::builder().endpoint("fst_managed_x"),
                "endpoint",
                "reserved",
            ),
            (
                Logger::builder().format("%h %Q"),
                "format",
                "placeholder %Q at position 4",
            ),
            (
                Logger::builder().format("%{if(}V"),
                "format",
                "placeholder %{if(}V at position",
            ),
            (
                Logger::builder().sample_rate(-0.1),
                "sample_rate",
                "-0.1 is not",
            ),
            (
                Logger::builder().sample_rate(f64::NAN),
                "sample_rate",
                "NaN is not",
            ),
            (
                Logger::builder().redact_query(["a", " "]),
                "redact_query",
                "empty",
            ),
            (
                Logger::builder().error_endpoint("x\ny"),
                "error_endpoint",
                "newline",
            ),
            (
                Logger::builder().panic_endpoint(" "),
                "panic_endpoint",
                "empty",
            ),
        ];
        for (builder, setting, text) in cases {
            let e = builder.error.expect("refused");
            assert_eq!(e.setting(), setting, "{e}");
            assert!(e.to_string().contains(text), "{e}");
            assert!(e
                .to_string()
                .starts_with(&format!("edgelog setting {setting}: ")));
        }
    }

    #[test]
    fn the_readme_s_example_refusal_reads_as_written() {
        let e = Logger::builder().sample_rate(1.5).error.expect("refused");
        assert_eq!(
            e.to_string(),
            "edgelog setting sample_rate: 1.5 is not a number from 0.0 to 1.0"
        );
    }

    #[test]
    fn the_first_refusal_is_kept_and_later_settings_still_apply() {
        let b = Logger::builder()
            .sample_rate(2.0)
            .format("%Q")
            .endpoint("stdout")
            .endpoint("collector")
            .endpoint("stdout");
        assert_eq!(b.error.as_ref().map(Error::setting), Some("sample_rate"));
        assert_eq!(
            b.settings.endpoints,
            vec![Target::Stdout, Target::Named("collector".into())]
        );
        assert_eq!(b.settings.panic_endpoint, Target::Stdout);
    }

    #[test]
    fn builder_settings_are_the_store_settings() {
        let b = Logger::builder()
            .endpoint("collector")
            .endpoint("stdout")
            .format("clf")
            .sample_rate(0.25)
            .anonymize_ip(true)
            .redact_query(vec![" token".to_string(), "email".to_string()])
            .error_endpoint("errors")
            .panic_endpoint("panics");
        assert!(b.error.is_none());
        let pairs = [
            ("endpoints", "collector,stdout"),
            ("format", "clf"),
            ("sample_rate", "0.25"),
            ("anonymize_ip", "true"),
            ("redact_query", "token,email"),
            ("error_endpoint", "errors"),
            ("panic_endpoint", "panics"),
        ];
        let (from_store, problems) = Settings::load(|k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        });
        assert!(problems.is_empty());
        assert_eq!(b.settings, from_store);
        assert_eq!(Logger::builder().settings, Settings::default());
    }
}
