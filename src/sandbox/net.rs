//! Each host's network: subnet 10.213.N.0/30, this machine at .1 on the veth `shsb-N`, the
//! container at .2 on `host0` inside the network namespace `shipit-sbx-N`.
//!
//! A host behind a bastion (`up --behind`) has `shsb-N` in the bastion's namespace instead, so
//! only the bastion reaches it; here the subnet is routed nowhere (`unreachable`), so nothing
//! meant for it leaves through this machine's default route.
//!
//! N is claimed machine-wide by creating `/run/shipit/sandbox-net/N` exclusively, because
//! shipits with different state directories (parallel tests) allocate at the same time. /run
//! empties on reboot, as network namespaces and links do.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::host::Host;
use super::paths::state_dir;
use crate::process::run_tool;

const CLAIMS: &str = "/run/shipit/sandbox-net";

/// Who holds a subnet: the host `name` of the sandbox in `state_dir`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    state_dir: PathBuf,
    name: String,
}

impl Claim {
    fn of(name: &str) -> Claim {
        Claim {
            state_dir: state_dir(),
            name: name.to_string(),
        }
    }
}

fn claim_path(index: u8) -> PathBuf {
    Path::new(CLAIMS).join(index.to_string())
}

/// Claims the first free subnet for host `name` and returns its N.
pub(super) fn claim(name: &str) -> Result<u8> {
    fs::create_dir_all(CLAIMS).with_context(|| format!("cannot create {CLAIMS}"))?;
    let claim = serde_json::to_vec(&Claim::of(name))?;
    let taken = subnets_in_use()?;
    for index in 1..=254 {
        if taken.contains(&index) || leftover_network(index) {
            continue;
        }
        let path = claim_path(index);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(&claim)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok(index);
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot create {}", path.display()));
            }
        }
    }
    anyhow::bail!(
        "all 254 sandbox subnets (10.213.1-254.0/30) are in use\n  \
         help: remove hosts with `shipit sandbox down`; claims are in {CLAIMS}"
    )
}

/// A namespace or link of this N that someone left behind would break the new host's network.
fn leftover_network(index: u8) -> bool {
    Path::new(&format!("/run/netns/shipit-sbx-{index}")).exists()
        || link_exists(&format!("shsb-{index}"))
}

/// N of every 10.213.N.x address already on an interface here, whoever configured it.
fn subnets_in_use() -> Result<BTreeSet<u8>> {
    let output = run_tool(
        "list the addresses in use",
        Command::new("ip").args(["-o", "-4", "addr", "show"]),
    )?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|word| {
            word.strip_prefix("10.213.")?
                .split('.')
                .next()?
                .parse()
                .ok()
        })
        .collect())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub(super) fn owns_claim(host: &Host) -> bool {
    fs::read(claim_path(host.index))
        .ok()
        .and_then(|json| serde_json::from_slice::<Claim>(&json).ok())
        .is_some_and(|claim| claim == Claim::of(&host.name))
}

pub(super) fn release(host: &Host) -> Result<()> {
    let path = claim_path(host.index);
    fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
}

pub(super) fn set_up(host: &Host) -> Result<()> {
    let (ns, veth) = (host.netns.as_str(), host.veth.as_str());
    let gateway = format!("{}/30", gateway(host));
    let address = format!("{}/30", host.address);
    ip(&["netns", "add", ns])?;
    // `ip -n NS` runs in NS; with no bastion, "" keeps it in this machine's namespace.
    let side: &[&str] = match &host.behind {
        Some(bastion) => &["-n", &bastion.netns],
        None => &[],
    };
    let link = [
        "link", "add", veth, "type", "veth", "peer", "name", "host0", "netns", ns,
    ];
    ip(&[side, &link].concat())?;
    ip(&[side, &["addr", "add", &gateway, "dev", veth]].concat())?;
    ip(&[side, &["link", "set", veth, "up"]].concat())?;
    if host.behind.is_some() {
        ip(&["route", "replace", "unreachable", &subnet(host)])?;
    }
    ip(&["-n", ns, "addr", "add", &address, "dev", "host0"])?;
    ip(&["-n", ns, "link", "set", "host0", "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])
}

/// Deleting the veth takes its peer `host0` with it; the namespace goes last. Behind a bastion,
/// deleting the namespace takes the veth in the bastion's namespace with it.
pub(super) fn tear_down(host: &Host) -> Result<()> {
    if link_exists(&host.veth) {
        ip(&["link", "del", &host.veth])?;
    }
    if host.behind.is_some() && unreachable_route_exists(host)? {
        ip(&["route", "del", "unreachable", &subnet(host)])?;
    }
    if Path::new("/run/netns").join(&host.netns).exists() {
        ip(&["netns", "del", &host.netns])?;
    }
    Ok(())
}

fn unreachable_route_exists(host: &Host) -> Result<bool> {
    let output = run_tool(
        "list the sandbox routes",
        Command::new("ip").args([
            "route",
            "show",
            "type",
            "unreachable",
            "exact",
            &subnet(host),
        ]),
    )?;
    Ok(!output.stdout.is_empty())
}

fn subnet(host: &Host) -> String {
    format!("10.213.{}.0/30", host.index)
}

fn gateway(host: &Host) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, host.index, 1)
}

fn ip(args: &[&str]) -> Result<()> {
    run_tool(
        "configure the sandbox network",
        Command::new("ip").args(args),
    )
    .map(drop)
}
