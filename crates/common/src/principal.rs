use std::fmt;

/// Who is acting: every query [`Session`](../carelake_sql/struct.Session.html) and every write
/// carries one, so that grants, row policies, masking and the audit trail have a single source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user or service name, as authenticated by the interface that opened the session.
    pub name: String,
    /// Roles granted to the principal.
    pub roles: Vec<String>,
}

impl Principal {
    /// A principal with the given name and roles.
    pub fn new(name: impl Into<String>, roles: Vec<String>) -> Self {
        Self {
            name: name.into(),
            roles,
        }
    }

    /// The operating-system user running the command line, who owns the lake folder.
    pub fn local_admin() -> Self {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "local".to_string());
        Self::new(name, vec!["admin".to_string()])
    }

    /// carelake itself, for background work (catalog upkeep, pipelines).
    pub fn system() -> Self {
        Self::new("carelake", vec!["admin".to_string()])
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
