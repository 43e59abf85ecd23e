//! Every line every function writes, plus the host's own platform lines, in one place.
//!
//! Functions log JSON (one object per line); the host adds Lambda-style
//! `platform.report` lines after each invocation. `make dev` prints them as readable
//! coloured lines as they come; `make demo` keeps them to build its timeline.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::Value;

/// One line of output.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// The function (logical id) that wrote it, or `host`.
    pub function: String,
    /// When the host received it.
    pub at: SystemTime,
    /// The line as written.
    pub text: String,
}

impl LogLine {
    /// The line as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }
}

type Echo = Box<dyn Fn(&LogLine) + Send + Sync>;

/// The shared log of a host.
#[derive(Clone, Default)]
pub struct Logs {
    lines: Arc<Mutex<Vec<LogLine>>>,
    echo: Arc<Mutex<Option<Echo>>>,
}

impl Logs {
    /// Records a line (and echoes it, if an echo is set).
    pub fn push(&self, function: &str, text: String) {
        let line = LogLine {
            function: function.to_owned(),
            at: SystemTime::now(),
            text,
        };
        if let Some(echo) = self
            .echo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            echo(&line);
        }
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Calls `echo` for every line from now on.
    pub fn set_echo(&self, echo: impl Fn(&LogLine) + Send + Sync + 'static) {
        *self.echo.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(echo));
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A line for a human: `function LEVEL [correlation] message key=value...`, coloured
/// when `colour` is on. Non-JSON lines are shown as they are.
pub fn readable(line: &LogLine, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let Some(json) = line.json() else {
        return format!(
            "{} {}",
            paint("36", &format!("{:<22}", line.function)),
            line.text
        );
    };
    if json["type"] == "platform.report" {
        let m = &json["record"]["metrics"];
        let init = m["initDurationMs"]
            .as_f64()
            .map(|i| format!(" init={i:.1}ms (cold start)"))
            .unwrap_or_default();
        return format!(
            "{} {} {} duration={:.1}ms max_memory={}MB{init}",
            paint("36", &format!("{:<22}", line.function)),
            paint("2", "REPORT"),
            json["record"]["status"].as_str().unwrap_or_default(),
            m["durationMs"].as_f64().unwrap_or_default(),
            m["maxMemoryUsedMB"],
        );
    }
    if let Some(metrics) = json["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array() {
        // An EMF line: show the values, not the envelope CloudWatch reads them from.
        let values: Vec<String> = metrics
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .map(|name| format!("{name}={}", compact(&json[name])))
            .collect();
        return format!(
            "{} {} {}",
            paint("36", &format!("{:<22}", line.function)),
            paint("34", "METRIC"),
            values.join(" "),
        );
    }
    let level = json["level"].as_str().unwrap_or("INFO");
    let level_colour = match level {
        "ERROR" => "31",
        "WARN" => "33",
        "DEBUG" | "TRACE" => "2",
        _ => "32",
    };
    let span = &json["span"];
    let correlation = json["correlation_id"]
        .as_str()
        .or_else(|| span["correlation_id"].as_str())
        .unwrap_or("-");
    let mut extra = String::new();
    if let Some(object) = json.as_object() {
        for (key, value) in object {
            if !matches!(
                key.as_str(),
                "timestamp"
                    | "level"
                    | "message"
                    | "span"
                    | "correlation_id"
                    | "target"
                    | "function"
                    | "cold_start"
                    | "invocation"
                    | "requestId"
                    | "xrayTraceId"
            ) {
                extra.push_str(&format!(" {key}={}", compact(value)));
            }
        }
    }
    format!(
        "{} {} {} {}{}",
        paint("36", &format!("{:<22}", line.function)),
        paint(level_colour, &format!("{level:<5}")),
        paint(
            "35",
            &format!("[{}]", correlation.chars().take(13).collect::<String>())
        ),
        json["message"].as_str().unwrap_or_default(),
        paint("2", &extra),
    )
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
