//! The spend page's static files, compiled in: its stylesheet, its script and the one
//! vendored chart library (policy/ui/VENDORED). Their URLs carry a hash of their content,
//! so they are cached for a year and a new build's files are fetched afresh.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const UI_CSS: &str = include_str!("../../../ui/ui.css");
const UI_JS: &str = include_str!("../../../ui/ui.js");
pub const UPLOT_JS: &str = include_str!("../../../ui/uPlot.iife.min.js");

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: String,
    /// The first 16 hex digits of the body's SHA-256.
    version: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "ui.css",
            "text/css; charset=utf-8",
            format!("{UI_CSS}{}", super::html::bar_widths()),
        ),
        ("ui.js", "text/javascript; charset=utf-8", UI_JS.to_owned()),
        (
            "uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
            UPLOT_JS.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, body)| {
        let digest = hmac_sha256::Hash::hash(body.as_bytes());
        let version = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            name,
            content_type,
            body,
            version,
        }
    })
    .collect()
});

/// Where a page links the file `name`: its path with its content's version.
pub fn url(name: &str) -> String {
    let version = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map_or("", |asset| asset.version.as_str());
    format!("/ui/static/{name}?v={version}")
}

/// `GET /ui/static/<name>`: public (no figures in it), cached for a year.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            asset.body.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// policy/ui/VENDORED's `sha256:` is the upstream file's, and the vendored copy is
    /// that file after one prepended licence comment.
    #[test]
    fn the_vendored_chart_library_is_the_recorded_file() {
        let manifest = include_str!("../../../ui/VENDORED");
        let recorded = manifest
            .lines()
            .find_map(|line| line.strip_prefix("sha256: "))
            .expect("VENDORED names a sha256");
        let start = UPLOT_JS
            .find("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
            .expect("the upstream file's own first line");
        assert!(UPLOT_JS[..start].starts_with("/*!\n * uPlot 1.6.32"));
        assert!(UPLOT_JS[..start].contains("The MIT License (MIT)"));
        let digest = hmac_sha256::Hash::hash(&UPLOT_JS.as_bytes()[start..]);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, recorded);
    }

    #[test]
    fn urls_carry_each_files_version() {
        for name in ["ui.css", "ui.js", "uPlot.iife.min.js"] {
            let url = url(name);
            let version = url.rsplit("?v=").next().unwrap_or_default();
            assert_eq!(version.len(), 16, "{url}");
        }
    }
}
