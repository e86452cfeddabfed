//! `Package::open` against archives built here entry by entry: what shipit writes opens, and
//! each kind of entry no package may hold is refused, saying which entry and why.

use tar::EntryType::{self, Block, Char, Directory, Fifo, Link, Regular, Symlink};

use super::*;

type Raw = (tar::Header, Vec<u8>);
/// A file as a manifest lists it: path, mode, contents.
type Listed<'a> = (&'a str, u32, &'a [u8]);

const UNIT: &str = "[Service]\nExecStart=/opt/app/current/app\n";

/// What shipit packs for app "app": the binary, its unit and a config file in a directory.
const FILES: [Listed; 3] = [
    ("app", 0o755, b"\x7fELF the binary"),
    ("app.service", 0o644, UNIT.as_bytes()),
    ("conf/app.yaml", 0o644, b"port: 8080\n"),
];

/// An entry named exactly `name` (`Header::set_path` would tidy it).
fn entry(name: &str, kind: EntryType, mode: u32, data: &[u8]) -> Raw {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_cksum();
    (header, data.to_vec())
}

fn link(name: &str, kind: EntryType, target: &str) -> Raw {
    let (mut header, data) = entry(name, kind, 0o777, b"");
    header.set_link_name(target).unwrap();
    header.set_cksum();
    (header, data)
}

/// A pax header giving the next entry the path `path`.
fn pax_path(path: &str) -> Raw {
    let record = format!(" path={path}\n");
    let mut length = record.len() + 2;
    if format!("{length}{record}").len() != length {
        length += 1;
    }
    entry(
        "PaxHeaders/x",
        EntryType::XHeader,
        0o644,
        format!("{length}{record}").as_bytes(),
    )
}

fn manifest(files: &[Listed]) -> Raw {
    let manifest = Manifest {
        app: "app".into(),
        version: "1.0.0".into(),
        commit: None,
        build_time: "2025-01-02T03:04:05Z".into(),
        target: "linux-amd64".into(),
        builder: "go".into(),
        files: files
            .iter()
            .map(|(path, mode, data)| FileEntry {
                path: path.to_string(),
                mode: format!("{mode:04o}"),
                size: data.len() as u64,
                sha256: hex::encode(Sha256::digest(data)),
            })
            .collect(),
    };
    entry(
        MANIFEST,
        Regular,
        0o644,
        &serde_json::to_vec(&manifest).unwrap(),
    )
}

/// The package as shipit writes it, with `extra` after its files.
fn package(extra: Vec<Raw>) -> Vec<Raw> {
    let mut entries = vec![manifest(&FILES)];
    entries.extend(FILES.map(|(name, mode, data)| entry(name, Regular, mode, data)));
    entries.extend(extra);
    entries
}

fn gzipped_tar(entries: &[Raw]) -> Vec<u8> {
    let gzip = GzBuilder::new().write(Vec::new(), Compression::fast());
    let mut tar = tar::Builder::new(gzip);
    for (header, data) in entries {
        tar.append(header, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn open(bytes: &[u8]) -> (tempfile::NamedTempFile, Result<Package>) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let opened = Package::open(file.path(), "app");
    (file, opened)
}

#[track_caller]
fn refused(bytes: &[u8], why: &str) {
    let error = open(bytes).1.expect_err(why);
    let said = error.to_string();
    assert!(said.contains(why), "expected {why:?} in {said:?}");
    assert!(said.contains("\n  help: build the package again"), "{said}");
    assert_eq!(crate::error::category_of(&error), Some(Category::Usage));
}

#[test]
fn a_package_as_shipit_writes_it_opens() {
    let (file, opened) = open(&gzipped_tar(&package(vec![])));
    let package = opened.unwrap();
    assert_eq!(package.sha256, sha256_file(file.path()).unwrap());
    assert_eq!(package.unit, UNIT);
    assert_eq!(package.socket, None);
    assert_eq!(package.binary().unwrap().mode, "0755");
    assert_eq!(
        package.names(),
        ["manifest.json", "app", "app.service", "conf/app.yaml"]
    );
}

#[test]
fn entries_the_manifest_does_not_list_are_refused_each_saying_why() {
    let script: &[u8] = b"#!/bin/sh\nexec sleep 1000\n";
    let cases = [
        (
            entry("extra.txt", Regular, 0o644, b"x"),
            "entry \"extra.txt\" is not listed in manifest.json",
        ),
        (
            entry("./app", Regular, 0o755, script),
            "entry \"./app\" is another name for app, which unpacking it would replace",
        ),
        (
            entry("app/", Regular, 0o755, script),
            "entry \"app/\" is another name for app",
        ),
        (
            entry("conf//app.yaml", Regular, 0o644, b"port: 1\n"),
            "entry \"conf//app.yaml\" is another name for conf/app.yaml",
        ),
        (
            entry("./manifest.json", Regular, 0o644, b"{}"),
            "is another name for manifest.json",
        ),
        (
            entry("../app", Regular, 0o755, script),
            "entry \"../app\" has a `..` component",
        ),
        (
            entry("/usr/bin/app", Regular, 0o755, script),
            "entry \"/usr/bin/app\" is an absolute path",
        ),
        (
            entry("app", Regular, 0o755, script),
            "entry \"app\" appears twice",
        ),
    ];
    for (extra, why) in cases {
        refused(&gzipped_tar(&package(vec![extra])), why);
    }
}

#[test]
fn links_devices_fifos_and_directories_are_refused() {
    let cases = [
        (link("app.link", Symlink, "/etc/shadow"), "a symbolic link"),
        (link("app.hard", Link, "app"), "a hard link"),
        (entry("null", Char, 0o666, b""), "a device node"),
        (entry("disk", Block, 0o666, b""), "a device node"),
        (entry("pipe", Fifo, 0o644, b""), "a FIFO"),
        (entry("conf/", Directory, 0o755, b""), "a directory"),
        (
            entry("contiguous", EntryType::Continuous, 0o644, b""),
            "a tar entry of type '7'",
        ),
    ];
    for (extra, what) in cases {
        let name = String::from_utf8_lossy(&extra.0.path_bytes()).into_owned();
        refused(
            &gzipped_tar(&package(vec![extra])),
            &format!("entry {name:?} is {what}; a package holds regular files only"),
        );
    }
    // Where the checked file would be, too: the first entry of a name is checked as well.
    let mut linked = package(vec![]);
    linked[1] = link("app", Symlink, "/bin/sh");
    refused(&gzipped_tar(&linked), "entry \"app\" is a symbolic link");
}

#[test]
fn what_tar_programs_read_differently_is_refused() {
    let script: &[u8] = b"#!/bin/sh\n";
    refused(
        &gzipped_tar(&package(vec![
            pax_path("app"),
            entry("x", Regular, 0o755, script),
        ])),
        "entry \"app\" comes with a pax extended header",
    );
    // A second gzip member: gzip -d on the host unpacks it after the first.
    let mut appended = gzipped_tar(&package(vec![]));
    appended.extend(gzipped_tar(&[entry("app", Regular, 0o755, script)]));
    refused(&appended, "data follows the end of its tar archive");
    let (mut header, data) = entry("x", Regular, 0o644, b"");
    header.as_old_mut().name[0] = 0xff;
    header.set_cksum();
    refused(
        &gzipped_tar(&package(vec![(header, data)])),
        "is not named in UTF-8",
    );
}

#[test]
fn files_that_differ_from_the_manifest_are_refused() {
    let mut changed = package(vec![]);
    changed[3] = entry("conf/app.yaml", Regular, 0o644, b"port: 9999\n");
    refused(
        &gzipped_tar(&changed),
        "entry \"conf/app.yaml\" differs from what manifest.json says",
    );
    let mut setuid = package(vec![]);
    setuid[1] = entry("app", Regular, 0o4755, FILES[0].2);
    refused(
        &gzipped_tar(&setuid),
        "entry \"app\" has mode 4755, but manifest.json says 0755",
    );
    let mut missing = package(vec![]);
    missing.pop();
    refused(
        &gzipped_tar(&missing),
        "manifest.json lists \"conf/app.yaml\", which the package does not hold",
    );
}

#[test]
fn a_manifest_that_lists_what_no_release_may_hold_is_refused() {
    let binary = FILES[0].2;
    let cases: [(Vec<Listed>, &str); 4] = [
        (
            vec![("app", 0o755, binary), ("conf//app.yaml", 0o644, b"")],
            "manifest.json lists \"conf//app.yaml\", which tar unpacks as \"conf/app.yaml\"",
        ),
        (
            vec![("app", 0o4755, binary)],
            "manifest.json gives \"app\" mode \"4755\"",
        ),
        (
            vec![("app", 0o755, binary), ("app", 0o755, binary)],
            "manifest.json lists \"app\" twice",
        ),
        (
            vec![("app.service", 0o644, UNIT.as_bytes())],
            "manifest.json does not list the app's binary, \"app\"",
        ),
    ];
    for (files, why) in cases {
        // Each listed file once in the archive, so only the manifest is at fault.
        let mut entries = vec![manifest(&files)];
        for (name, mode, data) in &files {
            if !entries
                .iter()
                .any(|(h, _)| *h.path_bytes() == *name.as_bytes())
            {
                entries.push(entry(name, Regular, *mode, data));
            }
        }
        refused(&gzipped_tar(&entries), why);
    }
}
