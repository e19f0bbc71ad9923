//! Keys and certificates the registry tests make for themselves with the
//! `openssl` CLI: a CA with a server certificate for 127.0.0.1 (what a
//! registry over TLS presents), and the token server's signing key with its
//! self-signed certificate (what the registry's `rootcertbundle` trusts).
//! Every test makes its own, so no test trusts another's CA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Host names besides 127.0.0.1 that test server certificates are valid for:
/// the forward proxy maps `registry.hoist.test` onto a loopback registry.
pub const SERVER_DNS_NAMES: &[&str] = &["localhost", "registry.hoist.test", "registry-1.docker.io"];

/// Runs `openssl ARGS…` in `dir`, panicking with its output unless it succeeds.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl runs ({e}): install Debian's openssl"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate it signed, all PEM files in one directory.
pub struct ServerCertificate {
    /// The CA certificate clients trust (`ca.crt`).
    pub ca_cert: PathBuf,
    /// The server's certificate (`server.crt`), for 127.0.0.1 and `SERVER_DNS_NAMES`.
    pub cert: PathBuf,
    /// The server's private key (`server.key`).
    pub key: PathBuf,
}

impl ServerCertificate {
    /// Makes a fresh P-256 CA and a server certificate for 127.0.0.1 in `dir`.
    pub fn generate(dir: &Path) -> ServerCertificate {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=hoist test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        let names: Vec<String> = SERVER_DNS_NAMES.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName=IP:127.0.0.1,{}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                names.join(",")
            ),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        ServerCertificate {
            ca_cert: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// The token server's ES256 signing key and its self-signed certificate.
pub struct TokenSigningKey {
    /// The certificate in PEM: the registry's `rootcertbundle`.
    pub cert_pem: PathBuf,
    /// The certificate in DER: the one entry of every token's `x5c` header.
    pub cert_der: Vec<u8>,
    /// The private key as PKCS#8 DER, the form `ring` loads.
    pub pkcs8_der: Vec<u8>,
}

impl TokenSigningKey {
    /// Makes a fresh P-256 key and a self-signed CA certificate for it in `dir`.
    pub fn generate(dir: &Path) -> TokenSigningKey {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "signer.key",
                "-out",
                "signer.crt",
                "-days",
                "2",
                "-subj",
                "/CN=hoist test token signer",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,digitalSignature,keyCertSign",
            ],
        );
        openssl(dir, &["x509", "-in", "signer.crt", "-outform", "DER", "-out", "signer.der"]);
        openssl(
            dir,
            &["pkcs8", "-topk8", "-nocrypt", "-in", "signer.key", "-outform", "DER", "-out", "signer.p8"],
        );
        TokenSigningKey {
            cert_pem: dir.join("signer.crt"),
            cert_der: std::fs::read(dir.join("signer.der")).unwrap(),
            pkcs8_der: std::fs::read(dir.join("signer.p8")).unwrap(),
        }
    }
}
