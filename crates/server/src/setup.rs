//! What every session a listener opens gets before its first statement.

use std::fmt;
use std::sync::Arc;

use carelake_sql::Session;

/// A step run on every session a listener opens, before its first statement: `carelake serve
/// --cluster` attaches each one to a Ballista scheduler with it. A step that fails refuses
/// the session (the client sees a server error, the log the reason).
#[derive(Clone)]
pub struct SessionSetup(Arc<SetupStep>);

/// The step: `Err` with the reason refuses the session.
type SetupStep = dyn Fn(&Session) -> Result<(), String> + Send + Sync;

impl SessionSetup {
    /// A setup running `step`.
    pub fn new(step: impl Fn(&Session) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(step))
    }

    /// Runs it on `session`.
    pub(crate) fn apply(&self, session: &Session) -> Result<(), String> {
        (self.0)(session)
    }
}

impl fmt::Debug for SessionSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSetup")
    }
}
