//! `carelake cert`: a self-signed certificate and key for trying TLS (`serve --tls-cert`,
//! `--mllp-tls`), valid for the names given.
//!
//! Written with `x509-certificate` (already in the build through pgwire): an ECDSA P-256 key
//! made by ring, a certificate for the server only (not a CA) with the names as subject
//! alternative names, which clients check.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use x509_certificate::certificate::KeyUsage;
use x509_certificate::{EcdsaCurve, KeyAlgorithm, X509CertificateBuilder};

/// `carelake cert`.
#[derive(Debug, Args)]
pub(crate) struct CertArgs {
    /// Folder for `cert.pem` and `key.pem` (the key readable by its owner only).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Host names and IP addresses the certificate is for (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1,::1")]
    names: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

/// DER length octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// The subjectAltName extension's value: DNS names and IP addresses (RFC 5280 4.2.1.6).
fn subject_alt_names(names: &[String]) -> Result<Vec<u8>> {
    let mut general_names = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match name.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => general_names.extend(der(0x87, &ip.octets())),
            Ok(IpAddr::V6(ip)) => general_names.extend(der(0x87, &ip.octets())),
            Err(_) => {
                if !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b))
                {
                    bail!("'{name}' is neither a host name nor an IP address");
                }
                general_names.extend(der(0x82, name.as_bytes()));
            }
        }
    }
    if general_names.is_empty() {
        bail!("--names needs at least one host name or address");
    }
    Ok(der(0x30, &general_names))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn run(args: &CertArgs) -> Result<()> {
    if !(1..=3650).contains(&args.days) {
        bail!("--days must be between 1 and 3650");
    }
    let mut builder = X509CertificateBuilder::default();
    builder
        .subject()
        .append_common_name_utf8_string(args.names.first().map_or("carelake", |n| n.trim()))
        .map_err(|e| anyhow::anyhow!("the certificate's name: {e:?}"))?;
    builder
        .subject()
        .append_organization_utf8_string("carelake (self-signed, for trials)")
        .map_err(|e| anyhow::anyhow!("the certificate's organisation: {e:?}"))?;
    let mut serial = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
        .map_err(|_| anyhow::anyhow!("no random source"))?;
    builder.serial_number(i64::from_be_bytes(serial) & i64::MAX);
    builder.validity_duration(chrono::Duration::days(args.days));
    builder.constraint_not_ca();
    builder.key_usage(KeyUsage::DigitalSignature);
    // subjectAltName (2.5.29.17) and extendedKeyUsage (2.5.29.37) = serverAuth.
    builder.add_extension_der_data(
        bcder::Oid(bytes::Bytes::from_static(&[0x55, 0x1d, 0x11])),
        false,
        subject_alt_names(&args.names)?,
    );
    builder.add_extension_der_data(
        bcder::Oid(bytes::Bytes::from_static(&[0x55, 0x1d, 0x25])),
        false,
        der(
            0x30,
            &der(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]),
        ),
    );
    let (cert, key) = builder
        .create_with_random_keypair(KeyAlgorithm::Ecdsa(EcdsaCurve::Secp256r1))
        .map_err(|e| anyhow::anyhow!("making the certificate: {e}"))?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let cert_path = args.out_dir.join("cert.pem");
    let key_path = args.out_dir.join("key.pem");
    let cert_pem = cert.encode_pem();
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    write_file(
        &key_path,
        pem("PRIVATE KEY", &key.to_pkcs8_one_asymmetric_key_der()).as_bytes(),
        0o600,
    )?;
    println!(
        "A self-signed certificate for {} (valid {} days) is in {}, its key in {}.\n\
         Use them with `carelake serve --tls-cert {} --tls-key {}`; clients trust it with the\n\
         certificate as their CA (psql sslrootcert=, curl --cacert). For trials only: in\n\
         production use a certificate from your CA.",
        args.names.join(", "),
        args.days,
        cert_path.display(),
        key_path.display(),
        cert_path.display(),
        key_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_names_are_der() {
        let der = subject_alt_names(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(
            der,
            [
                0x30, 17, 0x82, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0x87, 4,
                127, 0, 0, 1
            ]
        );
        assert!(subject_alt_names(&["bad name".into()]).is_err());
        let mut long = Vec::new();
        der_len(300, &mut long);
        assert_eq!(long, [0x82, 0x01, 0x2c]);
    }
}
