//! Printing API answers: aligned tables for people, `--output json` for scripts.

use serde_json::Value;

/// How listings print (`--output`).
#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum Format {
    Table,
    Json,
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Prints an answer as JSON, or through `table` for people.
pub fn show(format: Format, body: &Value, table: impl FnOnce(&Value)) {
    match format {
        Format::Json => print_json(body),
        Format::Table => table(body),
    }
}

/// Prints rows under headers, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn targets(v: &Value) -> String {
    v.as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let version = format!("v{}", t["version"]);
                    let weight = t["weight"].as_f64().unwrap_or(0.0);
                    if ts.len() == 1 {
                        version
                    } else {
                        format!("{version}={weight}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "-".into())
}

pub fn functions(v: &Value, format: Format) {
    if format == Format::Json {
        return print_json(v);
    }
    let rows: Vec<Vec<String>> = v["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            vec![
                f["name"].as_str().unwrap_or_default().to_string(),
                targets(&f["latest"]),
                f["url"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no functions deployed; deploy one with `glint deploy PATH`");
        return;
    }
    table(&["NAME", "LATEST", "URL"], &rows);
}

pub fn info(v: &Value, format: Format) {
    if format == Format::Json {
        return print_json(v);
    }
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    println!("name:   {}", s("name"));
    println!("route:  {}", s("route"));
    println!("url:    {}", s("url"));
    if let Some(l) = v["limits"].as_object() {
        println!(
            "limits: memory {} MiB, timeout {} ms, cpu {} ms, body {} bytes",
            l["memory_mb"], l["timeout_ms"], l["cpu_ms"], l["max_body_bytes"]
        );
    }
    let env: Vec<&str> = v["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .collect();
    println!(
        "env:    {}",
        if env.is_empty() {
            "-".to_string()
        } else {
            env.join(", ")
        }
    );
    println!("\naliases:");
    aliases(&v["aliases"]);
    println!("\nversions:");
    versions(&v["versions"]);
}

pub fn versions(v: &Value) {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                x["version"].as_str().unwrap_or_default().to_string(),
                format!("{:.1} KiB", x["size"].as_f64().unwrap_or(0.0) / 1024.0),
                x["world"].as_str().unwrap_or("-").to_string(),
                x["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
                time(x["created_at_ms"].as_i64().unwrap_or(0)),
            ]
        })
        .collect();
    table(&["VERSION", "SIZE", "WORLD", "SHA256", "CREATED"], &rows);
}

pub fn aliases(v: &Value) {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                a["name"].as_str().unwrap_or_default().to_string(),
                targets(&a["targets"]),
            ]
        })
        .collect();
    table(&["ALIAS", "VERSIONS"], &rows);
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        // Beyond jiff's years -9999..=9999: no node writes such a time.
        Err(_) => format!("{ms} ms"),
    }
}

pub fn log_line(l: &Value) {
    println!(
        "{} {:<5} v{} {} {}",
        time(l["ts_ms"].as_i64().unwrap_or(0)),
        l["level"].as_str().unwrap_or("?").to_uppercase(),
        l["version"],
        l["execution_id"].as_str().unwrap_or("?"),
        l["message"].as_str().unwrap_or_default()
    );
}

pub fn status(v: &Value) {
    println!("function: {}", v["name"].as_str().unwrap_or_default());
    println!("url:      {}", v["url"].as_str().unwrap_or_default());
    println!("ready:    {}", v["ready"]);
    let rows: Vec<Vec<String>> = v["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                x["version"].as_str().unwrap_or_default().to_string(),
                if x["loaded"].as_bool() == Some(true) {
                    "loaded".into()
                } else {
                    "cold".into()
                },
                x["in_flight"].to_string(),
            ]
        })
        .collect();
    println!();
    table(&["VERSION", "STATE", "IN FLIGHT"], &rows);
}

/// Bytes as B, KiB or MiB.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// Usage per period, as `glint metrics` prints it.
pub fn usage(v: &Value) {
    let rows: Vec<Vec<String>> = v["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| usage_row(time(b["start_ms"].as_i64().unwrap_or(0)), b))
        .collect();
    if rows.is_empty() {
        println!("no usage in this range yet");
        return;
    }
    let mut rows = rows;
    rows.push(usage_row("total".to_string(), &v["totals"]));
    // With regions, each region's total too.
    for region in v["regions"].as_array().into_iter().flatten() {
        let name = region["region"].as_str().unwrap_or("?");
        rows.push(usage_row(format!("region {name}"), &region["totals"]));
    }
    table(
        &[
            "PERIOD", "REQUESTS", "ERRORS", "REQ/S", "WALL MS", "CPU MS", "GB-S", "IN", "OUT",
        ],
        &rows,
    );
}

fn usage_row(label: String, b: &Value) -> Vec<String> {
    let n = |k: &str| b[k].as_u64().unwrap_or(0);
    let f = |k: &str| b[k].as_f64().unwrap_or(0.0);
    vec![
        label,
        n("requests").to_string(),
        n("errors").to_string(),
        format!("{:.3}", f("requests_per_second")),
        n("wall_ms").to_string(),
        format!("{:.1}", f("cpu_ms")),
        format!("{:.6}", f("gb_seconds")),
        size(n("bytes_in")),
        size(n("bytes_out")),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_format_as_utc() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_795_703_011_747), "2026-11-26 14:23:31");
        assert_eq!(super::time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
