//! The model route table: which models a caller may use, under which names, through which
//! providers. Exact names and aliases resolve first, then globs in configured order.

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::providers::glob::glob_match;
use crate::providers::registry::Provider;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutes {
    #[serde(default)]
    aliases: std::collections::BTreeMap<String, String>,
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    /// An exact model name, or a glob with `*` (e.g. `claude-*`).
    model: String,
    /// Provider names, in fallback order.
    providers: Vec<String>,
    #[serde(default)]
    allow_groups: Vec<String>,
    #[serde(default)]
    allow_tenants: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: String,
    pub glob: bool,
    /// Indexes into the configured providers, in order.
    pub providers: Vec<usize>,
    pub allow_groups: Vec<String>,
    pub allow_tenants: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub aliases: Vec<(String, String)>,
    pub routes: Vec<Route>,
}

/// Why a model cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    UnknownModel,
    Forbidden,
}

impl RouteTable {
    pub fn parse(raw: RawRoutes, providers: &[Provider]) -> Result<RouteTable, ConfigError> {
        let err = |field: String, message: String| ConfigError { field, message };
        if raw.routes.is_empty() {
            return Err(err(
                "models.routes".into(),
                "at least one route is required".into(),
            ));
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let field = |f: &str| format!("models.routes[{i}].{f}");
            if r.model.is_empty()
                || r.model
                    .chars()
                    .any(|c| c.is_control() || c == '?' || c == '[')
            {
                return Err(err(
                    field("model"),
                    format!("{:?} is not a model name or a `*` glob", r.model),
                ));
            }
            if r.providers.is_empty() {
                return Err(err(
                    field("providers"),
                    "at least one provider is required".into(),
                ));
            }
            let mut idx = Vec::with_capacity(r.providers.len());
            for name in &r.providers {
                let Some(p) = providers.iter().position(|p| &p.name == name) else {
                    return Err(err(
                        field("providers"),
                        format!("{name:?} is not a configured provider"),
                    ));
                };
                idx.push(p);
            }
            routes.push(Route {
                glob: r.model.contains('*'),
                pattern: r.model,
                providers: idx,
                allow_groups: r.allow_groups,
                allow_tenants: r.allow_tenants,
            });
        }
        let table = RouteTable {
            aliases: raw.aliases.into_iter().collect(),
            routes,
        };
        for (alias, target) in &table.aliases {
            if table.find(target).is_none() {
                return Err(err(
                    format!("models.aliases.{alias}"),
                    format!("target {target:?} matches no route"),
                ));
            }
        }
        Ok(table)
    }

    fn find(&self, model: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| !r.glob && r.pattern == model)
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| r.glob && glob_match(&r.pattern, model))
            })
    }

    /// Whether `model` is an exact (non-glob) route of the table.
    pub fn has_exact(&self, model: &str) -> bool {
        self.routes.iter().any(|r| !r.glob && r.pattern == model)
    }

    /// The model to send upstream and its route, if the caller may use it.
    pub fn resolve<'a>(
        &'a self,
        requested: &'a str,
        tenant: Option<&str>,
        groups: &[String],
    ) -> Result<(&'a str, &'a Route), RouteError> {
        let model = self
            .aliases
            .iter()
            .find(|(a, _)| a == requested)
            .map_or(requested, |(_, t)| t.as_str());
        let route = self.find(model).ok_or(RouteError::UnknownModel)?;
        if !allowed(route, tenant, groups) {
            return Err(RouteError::Forbidden);
        }
        Ok((model, route))
    }

    /// The model names (exact routes and aliases) this caller may use, for `/v1/models`.
    pub fn visible_models(&self, tenant: Option<&str>, groups: &[String]) -> Vec<(&str, usize)> {
        let mut out: Vec<(&str, usize)> = Vec::new();
        for r in self
            .routes
            .iter()
            .filter(|r| !r.glob && allowed(r, tenant, groups))
        {
            out.push((&r.pattern, r.providers.first().copied().unwrap_or(0)));
        }
        for (alias, _) in &self.aliases {
            if let Ok((_, r)) = self.resolve(alias, tenant, groups) {
                out.push((alias, r.providers.first().copied().unwrap_or(0)));
            }
        }
        out
    }
}

fn allowed(route: &Route, tenant: Option<&str>, groups: &[String]) -> bool {
    if route.allow_groups.is_empty() && route.allow_tenants.is_empty() {
        return true;
    }
    route.allow_groups.iter().any(|g| groups.contains(g))
        || tenant.is_some_and(|t| route.allow_tenants.iter().any(|a| a == t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::api::Api;

    fn providers() -> Vec<Provider> {
        ["openai", "azure", "anthropic"]
            .iter()
            .map(|n| Provider {
                name: n.to_string(),
                api: if *n == "anthropic" {
                    Api::Anthropic
                } else {
                    Api::OpenAi
                },
                cluster: format!("c_{n}"),
                key_env: "K".into(),
                key_header: "authorization".into(),
                key_prefix: String::new(),
                deployments: None,
                internal: false,
            })
            .collect()
    }

    fn table() -> RouteTable {
        let raw: RawRoutes = serde_json::from_value(serde_json::json!({
            "aliases": {"default": "gpt-4.1-mini", "smart": "claude-sonnet-4-5"},
            "routes": [
                {"model": "gpt-4.1-mini", "providers": ["openai", "azure"]},
                {"model": "gpt-*", "providers": ["openai"]},
                {"model": "claude-*", "providers": ["anthropic"], "allow_groups": ["ml"], "allow_tenants": ["acme"]},
            ]
        }))
        .unwrap();
        RouteTable::parse(raw, &providers()).unwrap()
    }

    #[test]
    fn resolution_table() {
        let t = table();
        let ml = vec!["ml".to_string()];
        let none: Vec<String> = vec![];
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a Vec<String>,
            Result<(&'a str, &'a str), RouteError>,
        );
        let cases: Vec<Case> = vec![
            (
                "gpt-4.1-mini",
                None,
                &none,
                Ok(("gpt-4.1-mini", "gpt-4.1-mini")),
            ),
            ("default", None, &none, Ok(("gpt-4.1-mini", "gpt-4.1-mini"))),
            ("gpt-4o", None, &none, Ok(("gpt-4o", "gpt-*"))),
            (
                "claude-sonnet-4-5",
                None,
                &ml,
                Ok(("claude-sonnet-4-5", "claude-*")),
            ),
            (
                "claude-sonnet-4-5",
                Some("acme"),
                &none,
                Ok(("claude-sonnet-4-5", "claude-*")),
            ),
            (
                "claude-sonnet-4-5",
                Some("other"),
                &none,
                Err(RouteError::Forbidden),
            ),
            ("smart", None, &none, Err(RouteError::Forbidden)),
            ("llama-3", None, &ml, Err(RouteError::UnknownModel)),
            ("", None, &ml, Err(RouteError::UnknownModel)),
        ];
        for (model, tenant, groups, want) in cases {
            let got = t
                .resolve(model, tenant, groups)
                .map(|(m, r)| (m, r.pattern.as_str()));
            assert_eq!(got, want, "{model}");
        }
        let visible: Vec<&str> = t
            .visible_models(None, &none)
            .iter()
            .map(|(m, _)| *m)
            .collect();
        assert_eq!(visible, ["gpt-4.1-mini", "default"]);
        let visible: Vec<&str> = t
            .visible_models(None, &ml)
            .iter()
            .map(|(m, _)| *m)
            .collect();
        assert_eq!(visible, ["gpt-4.1-mini", "default", "smart"]);
    }

    #[test]
    fn bad_tables_name_the_field() {
        let bad = |v: serde_json::Value| {
            let raw: RawRoutes = serde_json::from_value(v).unwrap();
            RouteTable::parse(raw, &providers()).unwrap_err().field
        };
        assert_eq!(bad(serde_json::json!({"routes": []})), "models.routes");
        assert_eq!(
            bad(serde_json::json!({"routes": [{"model": "m", "providers": ["nope"]}]})),
            "models.routes[0].providers"
        );
        assert_eq!(
            bad(serde_json::json!({"routes": [{"model": "m[0]", "providers": ["openai"]}]})),
            "models.routes[0].model"
        );
        assert_eq!(
            bad(
                serde_json::json!({"aliases": {"d": "x"}, "routes": [{"model": "m", "providers": ["openai"]}]})
            ),
            "models.aliases.d"
        );
    }
}
