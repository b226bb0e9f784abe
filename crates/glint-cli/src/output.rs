//! Printing API answers: aligned tables for people, `--output json` for scripts.

use serde_json::Value;

use crate::Format;

fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
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

fn targets(v: &Value) -> String {
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
        return json(v);
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
        return json(v);
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
    let rows: Vec<Vec<String>> = v["aliases"]
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
    println!("\nversions:");
    let rows: Vec<Vec<String>> = v["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                x["version"].as_str().unwrap_or_default().to_string(),
                format!("{:.1} KiB", x["size"].as_f64().unwrap_or(0.0) / 1024.0),
                x["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
            ]
        })
        .collect();
    table(&["VERSION", "SIZE", "SHA256"], &rows);
}
