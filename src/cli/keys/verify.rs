//! `keys verify`: asking the server about a key as a service would; the
//! only command without an admin key.

use std::{net::IpAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::{
    cli::{
        client::{self, ConnectArgs, ResponseExt},
        output,
    },
    proto::v1 as pb,
};

pub(super) const KEY_ENV: &str = "KEYWARD_KEY";

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    /// Scope the call needs; repeat for more. Without any, every valid key
    /// is allowed.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(super) scopes: Vec<String>,

    /// IP address of the caller, for keys limited to some sources.
    #[arg(long, value_name = "IP")]
    pub(super) client_ip: Option<IpAddr>,

    /// Read the key from the first line of this file (`-` for stdin) instead
    /// of KEYWARD_KEY.
    #[arg(long, value_name = "PATH")]
    pub(super) key_file: Option<PathBuf>,
}

pub(super) async fn run_verify(
    connect: &ConnectArgs,
    json: bool,
    args: VerifyArgs,
) -> Result<ExitCode> {
    let key = match &args.key_file {
        Some(path) => client::read_secret(path).context("cannot read the key to verify")?,
        None => client::env_secret(KEY_ENV).ok_or_else(|| {
            anyhow!("no key to verify: set {KEY_ENV} or pass --key-file PATH (`-` for stdin)")
        })?,
    };
    let request = pb::VerifyRequest {
        key,
        required_scopes: args.scopes,
        client_ip: args.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    };
    let mut client = client::connect(connect).await?;
    let response = client.verify(request).await.into_message()?;
    output::print(&if json {
        output::message_json(&response)
    } else {
        output::verify_details(&response)
    })?;
    Ok(if response.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
