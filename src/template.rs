//! Handlebars templates built into shipit, each replaceable by a file at the same relative path
//! in the project. Rendered in strict mode from typed data, never HTML-escaped.

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;

use crate::config::Config;
use crate::error::{Category, Tag};

/// A built-in template and the path of a project's own replacement, relative to its root.
pub struct Template {
    pub path: &'static str,
    pub builtin: &'static str,
}

/// Renders `template` (or the project's copy of it) with `data`; a template error is a usage
/// error naming the template.
pub fn render<T: Serialize>(config: &Config, template: &Template, data: &T) -> Result<String> {
    let project_copy = config.root.join(template.path);
    let (source, origin) = if project_copy.is_file() {
        let text = std::fs::read_to_string(&project_copy)
            .with_context(|| format!("cannot read {}", project_copy.display()))
            .tag(Category::Usage)?;
        (text, project_copy.display().to_string())
    } else {
        (
            template.builtin.to_string(),
            format!("built-in {}", template.path),
        )
    };
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(true);
    // HTML escaping would turn quotes into &quot; (Environment="A=B", YAML and JSON strings).
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars
        .register_template_string(template.path, source)
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
        .tag(Category::Usage)?;
    handlebars
        .render(template.path, data)
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
        .tag(Category::Usage)
}
