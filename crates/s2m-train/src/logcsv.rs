//! Append-only CSV logs of training scalars, and a reader for them.
//!
//! A log is a plain CSV file: the header `step,<col1>,<col2>,...` is fixed when the file is
//! created, then one row per logged step, steps strictly increasing. A value may be missing
//! (empty cell, e.g. a regulariser only computed every 16 steps); non-finite values are written
//! as `NaN`, `inf`, `-inf`. Values are written in Rust's shortest round-trip form, so reading
//! gives back the exact `f64`.
//!
//! Resuming a run from a checkpoint at step `s` ([`CsvLogger::resume`]) drops the rows with
//! step `> s` (logged after that checkpoint by the interrupted run), so the curves have no
//! duplicated or out-of-order steps. A torn last line (no newline: the process died mid-write)
//! is dropped by the resume and ignored by the reader.
//!
//! Each row is written with one `write` call and flushed, so another process (a plotting
//! script, [`read_csv_log`]) can read the file while training runs.

use s2m_core::error::{CoreError, Result};
use s2m_core::fsio::atomic_write;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Checks column names: non-empty, unique, not `step`, no `,`, quote or line break.
fn check_columns(columns: &[&str]) -> Result<()> {
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty()
            || *c == "step"
            || c.contains([',', '"', '\n', '\r'])
            || c.trim() != *c
            || columns[..i].contains(c)
        {
            return Err(CoreError::invalid(
                "CSV log column",
                format!(
                    "`{c}`: names must be unique, non-empty, not `step`, without `,`, quotes, \
                     line breaks or surrounding spaces"
                ),
            ));
        }
    }
    Ok(())
}

/// The header line (without newline) for `columns`.
fn header_line(columns: &[&str]) -> String {
    std::iter::once("step")
        .chain(columns.iter().copied())
        .collect::<Vec<_>>()
        .join(",")
}

/// Formats one value: shortest round-trip decimal; `NaN`, `inf`, `-inf`; empty if missing.
fn format_value(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) if x.is_nan() => "NaN".into(),
        Some(x) => format!("{x}"),
    }
}

/// A CSV log open for appending. See the [module docs](self).
#[derive(Debug)]
pub struct CsvLogger {
    path: PathBuf,
    columns: Vec<String>,
    file: std::fs::File,
    last_step: Option<u64>,
}

impl CsvLogger {
    /// Creates (or replaces) the log at `path` with the header `step,<columns>`.
    pub fn create(path: impl AsRef<Path>, columns: &[&str]) -> Result<Self> {
        let path = path.as_ref();
        check_columns(columns)?;
        atomic_write(path, format!("{}\n", header_line(columns)).as_bytes())?;
        Self::open_append(path, columns, None)
    }

    /// Reopens the log at `path` to continue a run resumed at `step`: rows with a step
    /// greater than `step` (and a torn last line) are removed. The header must be exactly
    /// `step,<columns>` (a changed set of scalars is an error naming the file). A file that
    /// does not exist is created as by [`CsvLogger::create`].
    pub fn resume(path: impl AsRef<Path>, columns: &[&str], step: u64) -> Result<Self> {
        let path = path.as_ref();
        check_columns(columns)?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Self::create(path, columns);
            }
            Err(e) => return Err(CoreError::io(path, e)),
        };
        let log = parse(&text).map_err(|e| e.in_file(path))?;
        let want: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        if log.columns != want {
            return Err(CoreError::Shape {
                what: format!("CSV log header of {}", path.display()),
                expected: header_line(columns),
                got: header_line(&log.columns.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
            });
        }
        // Keep the header and every complete row with row step <= step, byte for byte.
        let mut kept = String::with_capacity(text.len());
        let mut last_step = None;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if !line.ends_with('\n') {
                break; // torn last line
            }
            if i > 0 {
                let row_step = log.steps.get(i - 1).copied().ok_or_else(|| {
                    CoreError::invalid(format!("CSV log {}", path.display()), "row count")
                })?;
                if row_step > step {
                    break; // steps are increasing: everything after is newer too
                }
                last_step = Some(row_step);
            }
            kept.push_str(line);
        }
        if kept.len() != text.len() {
            atomic_write(path, kept.as_bytes())?;
        }
        Self::open_append(path, columns, last_step)
    }

    fn open_append(path: &Path, columns: &[&str], last_step: Option<u64>) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| CoreError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            file,
            last_step,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value columns (without `step`).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The step of the last row in the file, if any.
    pub fn last_step(&self) -> Option<u64> {
        self.last_step
    }

    /// Appends a row with one value per column, in column order.
    pub fn log(&mut self, step: u64, values: &[f64]) -> Result<()> {
        if values.len() != self.columns.len() {
            return Err(CoreError::Shape {
                what: format!("values logged to {}", self.path.display()),
                expected: format!("{} values ({})", self.columns.len(), self.columns.join(",")),
                got: format!("{} values", values.len()),
            });
        }
        let row: Vec<Option<f64>> = values.iter().map(|&v| Some(v)).collect();
        self.write_row(step, &row)
    }

    /// Appends a row with some of the columns by name; the others are left empty. An unknown
    /// name is an error.
    pub fn log_named(&mut self, step: u64, values: &[(&str, f64)]) -> Result<()> {
        let mut row = vec![None; self.columns.len()];
        for (name, v) in values {
            let i = self.columns.iter().position(|c| c == name).ok_or_else(|| {
                CoreError::invalid(
                    format!("CSV log {}", self.path.display()),
                    format!("no column `{name}` (columns: {})", self.columns.join(",")),
                )
            })?;
            row[i] = Some(*v);
        }
        self.write_row(step, &row)
    }

    fn write_row(&mut self, step: u64, row: &[Option<f64>]) -> Result<()> {
        if let Some(last) = self.last_step
            && step <= last
        {
            return Err(CoreError::invalid(
                format!("CSV log {}", self.path.display()),
                format!("step {step} logged after step {last}: steps must increase"),
            ));
        }
        let mut line = step.to_string();
        for v in row {
            line.push(',');
            line.push_str(&format_value(*v));
        }
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| CoreError::io(&self.path, e))?;
        self.last_step = Some(step);
        Ok(())
    }
}

/// A CSV log read back: `values[row][column]`, `None` for an empty cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvLog {
    /// The value columns (without `step`).
    pub columns: Vec<String>,
    /// The step of each row.
    pub steps: Vec<u64>,
    /// The values of each row, one per column.
    pub values: Vec<Vec<Option<f64>>>,
}

impl CsvLog {
    /// The `(step, value)` points of a column, skipping empty cells (the form
    /// [`crate::plot::plot_curves`] takes). `None` if there is no such column.
    pub fn series(&self, column: &str) -> Option<Vec<(f64, f64)>> {
        let i = self.columns.iter().position(|c| c == column)?;
        Some(
            self.steps
                .iter()
                .zip(&self.values)
                .filter_map(|(s, row)| row[i].map(|v| (*s as f64, v)))
                .collect(),
        )
    }
}

/// Parses a log's text; errors name the line. A final line without newline is ignored.
fn parse(text: &str) -> Result<CsvLog> {
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let header = lines
        .next()
        .ok_or_else(|| CoreError::invalid("CSV log", "empty file (no header line)"))?;
    let mut fields = header.trim_end_matches(['\n', '\r']).split(',');
    if fields.next() != Some("step") {
        return Err(CoreError::invalid(
            "CSV log header",
            format!("`{}` does not start with `step`", header.trim_end()),
        ));
    }
    let columns: Vec<String> = fields.map(|f| f.to_string()).collect();
    let mut steps = Vec::new();
    let mut values = Vec::new();
    let mut last: Option<u64> = None;
    for (i, line) in lines.enumerate() {
        let lineno = i + 2;
        let bad = |m: String| CoreError::invalid(format!("CSV log line {lineno}"), m);
        let line = line.trim_end_matches(['\n', '\r']);
        let mut fields = line.split(',');
        let step_field = fields.next().unwrap_or("");
        let step: u64 = step_field
            .parse()
            .map_err(|_| bad(format!("step `{step_field}` is not an integer")))?;
        if last.is_some_and(|l| step <= l) {
            return Err(bad(format!("step {step} does not increase")));
        }
        last = Some(step);
        let row: Vec<Option<f64>> = fields
            .map(|f| {
                if f.is_empty() {
                    Ok(None)
                } else {
                    f.parse::<f64>()
                        .map(Some)
                        .map_err(|_| bad(format!("value `{f}` is not a number")))
                }
            })
            .collect::<Result<_>>()?;
        if row.len() != columns.len() {
            return Err(bad(format!(
                "{} values, the header has {} columns",
                row.len(),
                columns.len()
            )));
        }
        steps.push(step);
        values.push(row);
    }
    Ok(CsvLog {
        columns,
        steps,
        values,
    })
}

/// Reads a CSV log (see the [module docs](self)); errors name the file and line.
pub fn read_csv_log(path: impl AsRef<Path>) -> Result<CsvLog> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    parse(&text).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_round_trip_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.csv");
        let mut log = CsvLogger::create(&p, &["loss_g", "loss_d", "r1"]).unwrap();
        log.log(0, &[0.1 + 0.2, -1e-300, f64::NAN]).unwrap();
        log.log_named(16, &[("loss_g", 1.0 / 3.0), ("r1", f64::INFINITY)])
            .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("step,loss_g,loss_d,r1\n"), "{text}");
        let back = read_csv_log(&p).unwrap();
        assert_eq!(back.steps, vec![0, 16]);
        assert_eq!(back.values[0][0], Some(0.1 + 0.2));
        assert_eq!(back.values[0][1], Some(-1e-300));
        assert!(back.values[0][2].unwrap().is_nan());
        assert_eq!(
            back.values[1],
            vec![Some(1.0 / 3.0), None, Some(f64::INFINITY)]
        );
        assert_eq!(
            back.series("loss_g").unwrap(),
            vec![(0.0, 0.1 + 0.2), (16.0, 1.0 / 3.0)]
        );
        assert_eq!(back.series("loss_d").unwrap().len(), 1);
        assert!(back.series("nope").is_none());
    }

    #[test]
    fn misuse_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.csv");
        assert!(CsvLogger::create(&p, &["a", "a"]).is_err());
        assert!(CsvLogger::create(&p, &["step"]).is_err());
        assert!(CsvLogger::create(&p, &["a,b"]).is_err());
        let mut log = CsvLogger::create(&p, &["a"]).unwrap();
        assert!(log.log(1, &[1.0, 2.0]).is_err());
        log.log(5, &[1.0]).unwrap();
        let err = log.log(5, &[1.0]).unwrap_err().to_string();
        assert!(err.contains("log.csv") && err.contains("step 5"), "{err}");
        assert!(log.log_named(6, &[("b", 1.0)]).is_err());
    }

    #[test]
    fn resume_truncates_newer_rows_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.csv");
        let mut log = CsvLogger::create(&p, &["a", "b"]).unwrap();
        for s in 0..10u64 {
            log.log(s * 10, &[s as f64, -(s as f64)]).unwrap();
        }
        drop(log);
        // A crash mid-write leaves a torn line.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"100,9.5").unwrap();
        drop(f);
        assert_eq!(
            read_csv_log(&p).unwrap().steps.len(),
            10,
            "torn line ignored"
        );

        let mut log = CsvLogger::resume(&p, &["a", "b"], 45).unwrap();
        assert_eq!(log.last_step(), Some(40));
        assert!(log.log(40, &[0.0, 0.0]).is_err());
        log.log(50, &[100.0, 200.0]).unwrap();
        drop(log);
        let back = read_csv_log(&p).unwrap();
        assert_eq!(back.steps, vec![0, 10, 20, 30, 40, 50]);
        assert_eq!(back.values[5], vec![Some(100.0), Some(200.0)]);
        assert_eq!(back.values[4], vec![Some(4.0), Some(-4.0)]);

        // Resuming past the end keeps everything; resuming before the start keeps the header.
        CsvLogger::resume(&p, &["a", "b"], 1000).unwrap();
        assert_eq!(read_csv_log(&p).unwrap().steps.len(), 6);
        let log = CsvLogger::resume(&p, &["a", "b"], 0).unwrap();
        assert_eq!(log.last_step(), Some(0));
        assert_eq!(read_csv_log(&p).unwrap().steps, vec![0]);
    }

    #[test]
    fn resume_checks_the_header_and_creates_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.csv");
        CsvLogger::create(&p, &["a", "b"]).unwrap();
        let err = CsvLogger::resume(&p, &["a", "c"], 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.csv") && err.contains("step,a,c"), "{err}");
        let q = dir.path().join("new.csv");
        let mut log = CsvLogger::resume(&q, &["x"], 7).unwrap();
        assert_eq!(log.last_step(), None);
        log.log(8, &[1.0]).unwrap();
        assert_eq!(read_csv_log(&q).unwrap().steps, vec![8]);
    }

    #[test]
    fn reader_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        std::fs::write(&p, "step,a\n1,2\n2,x\n").unwrap();
        let err = read_csv_log(&p).unwrap_err().to_string();
        assert!(err.contains("bad.csv") && err.contains("line 3"), "{err}");
        std::fs::write(&p, "step,a\n1,2,3\n").unwrap();
        assert!(read_csv_log(&p).is_err());
        std::fs::write(&p, "time,a\n").unwrap();
        assert!(read_csv_log(&p).is_err());
        std::fs::write(&p, "step,a\n2,1\n1,1\n").unwrap();
        assert!(read_csv_log(&p).is_err());
    }
}
