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

/// The interface a session or a write came through, recorded in the audit log and deciding
/// what a session may reach beyond the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// The command line, run by the operating-system user who owns the lake folder.
    Cli,
    /// The HTTP API.
    Http,
    /// The web UI.
    Ui,
    /// The Postgres wire protocol.
    Postgres,
    /// The MLLP listener for HL7 v2.
    Mllp,
    /// carelake's own background work (schedules, catalog upkeep).
    Internal,
}

impl Interface {
    /// The name used in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Cli => "cli",
            Interface::Http => "http",
            Interface::Ui => "ui",
            Interface::Postgres => "postgres",
            Interface::Mllp => "mllp",
            Interface::Internal => "internal",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a session comes from: its interface, the peer's address and whether it acts for the
/// operating-system user who owns the lake (the only caller trusted with the file system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The interface.
    pub interface: Interface,
    /// The peer's address, for network interfaces.
    pub peer: Option<String>,
    /// Whether the principal is the local operating-system user (the command line without
    /// `--as`, and carelake's own background work). Such a session acts as the lake's owner;
    /// every other session acts as a lake user, whose roles are read from the lake.
    pub local: bool,
}

impl Origin {
    /// The command line, acting as the lake's owner.
    pub fn local_cli() -> Self {
        Self {
            interface: Interface::Cli,
            peer: None,
            local: true,
        }
    }

    /// A signed-in lake user on `interface`, from `peer`.
    pub fn network(interface: Interface, peer: Option<String>) -> Self {
        Self {
            interface,
            peer,
            local: false,
        }
    }
}
