/// A message with its quoted literals blanked: an engine error quotes the value it could not
/// read (a failed cast, a bad date), and a value in a patient table may be a name or an
/// identifier. Every message that leaves carelake (logs, terminals, HTTP and Postgres errors,
/// the run history) goes through this.
///
/// ```
/// assert_eq!(
///     carelake_common::redact_literals("Cannot cast string 'Smith, John' to Int64"),
///     "Cannot cast string '…' to Int64"
/// );
/// ```
pub fn redact_literals(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '\'' {
            if quoted {
                out.push_str("…'");
            } else {
                out.push('\'');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}
